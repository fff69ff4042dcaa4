"""The interop server: ``python -m puregrpc.interop.server --port=PORT``.

Serves ``grpc.testing.TestService`` (:mod:`._service`) with the flags of the
grpc interop servers (doc/interop-test-descriptions.md, "Server"):
``--port`` and ``--use_tls``. ``--port=0`` picks a free port; either way the
bound port is printed alone on the first line of stdout, so a harness can
read it. By default the server listens on every interface, IPv4 and IPv6, on
the same port; ``--host`` narrows that to one address.

TLS (``--use_tls=true``) needs ``--tls_cert_file`` and ``--tls_key_file``:
puregrpc does not ship the grpc test certificate (server1.pem).

SIGINT or SIGTERM stops it gracefully (calls in flight get a second), exit 0.
"""

from __future__ import annotations

import argparse
import signal
import ssl
import sys
from collections.abc import Sequence

import trio

from ..server import Server, ServerOptions
from ._service import TestService
from .client import parse_bool

#: Seconds calls in flight may take to finish once a stop is asked for.
STOP_GRACE = 1.0


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The command line of the interop server."""
    parser = argparse.ArgumentParser(
        prog="python -m puregrpc.interop.server",
        description="Serve grpc.testing.TestService for the gRPC interop test cases.",
    )
    parser.add_argument("--port", type=_port, required=True, help="port to listen on (0: any)")
    parser.add_argument(
        "--host", default=None, help="address to listen on (default: every interface)"
    )
    parser.add_argument("--use_tls", type=parse_bool, default=False, metavar="BOOL")
    parser.add_argument("--tls_cert_file", default=None, help="certificate chain (PEM) for TLS")
    parser.add_argument("--tls_key_file", default=None, help="private key (PEM) for TLS")
    return parser


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.use_tls:
        return None
    if args.tls_cert_file is None or args.tls_key_file is None:
        raise ValueError(
            "--use_tls=true needs --tls_cert_file and --tls_key_file "
            "(puregrpc does not ship the grpc test certificate)"
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.tls_cert_file, args.tls_key_file)
    return context


def make_server(
    *, options: ServerOptions | None = None, ssl_context: ssl.SSLContext | None = None
) -> Server:
    """A :class:`Server` with the interop TestService (not yet listening)."""
    return Server([TestService()], options=options, ssl_context=ssl_context)


async def listen(server: Server, nursery: trio.Nursery, host: str | None, port: int) -> int:
    """Start ``server`` listening in ``nursery``; return the bound port.

    With no ``host`` it listens on IPv4 and IPv6 alike, on one port even when
    ``port`` is 0 (a plain wildcard bind would give each family its own).
    """
    if host is not None:
        bound: int = await nursery.start(server.serve, host, port)
        return bound
    bound = await nursery.start(server.serve, "0.0.0.0", port)
    try:
        await nursery.start(server.serve, "::", bound)
    except OSError:
        pass  # no IPv6 on this machine: IPv4 alone still serves every case
    return bound


async def _main(args: argparse.Namespace, ssl_context: ssl.SSLContext | None) -> int:
    server = make_server(ssl_context=ssl_context)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            try:
                port = await listen(server, nursery, args.host, args.port)
            except OSError as exc:
                print(f"cannot listen on port {args.port}: {exc}", file=sys.stderr)
                nursery.cancel_scope.cancel()
                return 1
            print(port, flush=True)
            async for _ in signals:
                break
            await server.stop(grace=STOP_GRACE)
            nursery.cancel_scope.cancel()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags and serve until SIGINT/SIGTERM; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ssl_context = _ssl_context(args)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    return trio.run(_main, args, ssl_context)


if __name__ == "__main__":
    sys.exit(main())
