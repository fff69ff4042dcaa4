"""The ``puregrpc`` command: ``trace-proxy`` and ``trace-view``.

::

    puregrpc trace-proxy --listen 127.0.0.1:50052 --upstream 127.0.0.1:50051 [-o trace.jsonl]
    puregrpc trace-view trace.jsonl -o timeline.html      # or timeline.svg

``trace-proxy`` writes text to standard output unless ``-o`` names a file
(``.jsonl`` for JSON Lines, anything else for text). Also runnable as
``python -m puregrpc.trace``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from ._env import sink_for_destination
from ._event import read_jsonl
from ._proxy import TraceProxy, parse_address
from ._timeline import render_html, render_svg
from ._tracer import Trace


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="puregrpc", description="See gRPC on the wire: a tracing proxy and a timeline viewer."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    proxy = commands.add_parser(
        "trace-proxy", help="forward a gRPC connection unchanged and trace both directions"
    )
    proxy.add_argument("--listen", required=True, help="HOST:PORT to accept clients on")
    proxy.add_argument("--upstream", required=True, help="HOST:PORT of the real server")
    proxy.add_argument(
        "-o",
        "--output",
        default="stdout",
        help="where the trace goes: stdout (default), stderr, FILE.jsonl, FILE (text)",
    )
    view = commands.add_parser("trace-view", help="draw a JSON Lines trace as a timeline")
    view.add_argument("trace", type=Path, help="a JSON Lines trace (PUREGRPC_TRACE=FILE.jsonl)")
    view.add_argument("-o", "--output", type=Path, required=True, help="timeline.html or .svg")
    view.add_argument("--title", default=None, help="title of the picture")
    return parser


def _trace_proxy(args: argparse.Namespace) -> int:
    try:
        listen_host, listen_port = parse_address(args.listen, what="--listen")
        upstream_host, upstream_port = parse_address(args.upstream, what="--upstream")
        sink = sink_for_destination(args.output)
    except ValueError as exc:
        print(f"puregrpc trace-proxy: {exc}", file=sys.stderr)
        return 2
    trace = Trace([sink])
    proxy = TraceProxy(upstream_host, upstream_port, trace)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(proxy.serve, listen_host, listen_port)
            print(
                f"tracing {listen_host}:{port} -> {upstream_host}:{upstream_port}",
                file=sys.stderr,
                flush=True,
            )

    try:
        trio.run(run)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"puregrpc trace-proxy: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return 1
    finally:
        trace.close()
    return 0


def _trace_view(args: argparse.Namespace) -> int:
    out: Path = args.output
    if out.suffix not in (".html", ".htm", ".svg"):
        print(f"puregrpc trace-view: -o must end in .html or .svg, got {out}", file=sys.stderr)
        return 2
    try:
        events = read_jsonl(args.trace.read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"puregrpc trace-view: cannot read {args.trace}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"puregrpc trace-view: {args.trace}: {exc}", file=sys.stderr)
        return 1
    title = args.title or f"gRPC on the wire: {args.trace.name}"
    text = (
        render_svg(events, title=title)
        if out.suffix == ".svg"
        else render_html(events, title=title)
    )
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(events)} events)", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``puregrpc`` command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "trace-proxy":
        return _trace_proxy(args)
    return _trace_view(args)
