"""``puregrpc-streaming serve``: its options, and running the server until a signal."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

import trio

from ._cli_common import (
    DEFAULT_PORT,
    Streams,
    UsageError,
    count_arg,
    positive_float_arg,
    size_arg,
)
from .backends.base import Retention
from .identity import Identity, load_token_file, parse_token_spec

__all__ = ["add_serve_parser", "run_serve"]


def add_serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` subcommand and its options to ``commands``."""
    serve = commands.add_parser("serve", help="run the server until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    serve.add_argument(
        "--port",
        type=count_arg,
        default=DEFAULT_PORT,
        help="0 picks a free port (default %(default)s)",
    )
    serve.add_argument("--data-dir", type=Path, required=True, help="files and SQLite live here")
    serve.add_argument("--max-upload-bytes", type=size_arg, default=1 << 30, metavar="BYTES")
    serve.add_argument(
        "--heartbeat-interval", type=positive_float_arg, default=15.0, metavar="SECONDS"
    )
    serve.add_argument(
        "--chunk-size", type=size_arg, default=64 * 1024, help="download chunk size, 16K-64K"
    )
    serve.add_argument("--dataset-rows", type=count_arg, default=1_000_000, metavar="N")
    serve.add_argument("--batch-size", type=count_arg, default=100, metavar="N", help="list page")
    serve.add_argument("--query-timeout", type=positive_float_arg, default=5.0, metavar="SECONDS")
    serve.add_argument(
        "--query-row-limit", type=size_arg, default=1 << 20, metavar="BYTES", help="per query row"
    )
    serve.add_argument(
        "--chat-rate",
        type=positive_float_arg,
        default=20.0,
        metavar="N",
        help="messages/s a caller",
    )
    serve.add_argument("--chat-burst", type=count_arg, default=50, metavar="N")
    for kind, default, what in (
        ("sql", 4, "the stores' SQL"),
        ("query", 4, "InteractiveQuery"),
        ("file", 8, "file I/O"),
    ):
        serve.add_argument(
            f"--{kind}-threads",
            type=count_arg,
            default=default,
            metavar="N",
            help=f"worker threads for {what} (default %(default)s)",
        )
    history = Retention()
    serve.add_argument(
        "--retain-events", type=count_arg, default=history.max_events, metavar="N", help="event log"
    )
    serve.add_argument(
        "--retain-bytes",
        type=size_arg,
        default=history.max_bytes,
        metavar="BYTES",
        help="event log",
    )
    serve.add_argument(
        "--retain-seconds",
        type=positive_float_arg,
        default=history.max_age,
        metavar="SECONDS",
        help="event log: oldest event kept (default 7 days)",
    )
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain (enables TLS)")
    serve.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    serve.add_argument(
        "--client-ca",
        type=Path,
        metavar="PEM",
        help="mutual TLS: accept client certificates of this CA (user id = CN or SAN)",
    )
    serve.add_argument(
        "--tokens", type=Path, metavar="FILE", help="bearer tokens: token:user:roles lines or TOML"
    )
    serve.add_argument(
        "--token",
        dest="token_specs",
        action="append",
        default=[],
        metavar="TOKEN:USER[:ROLES]",
        help="a bearer token (repeatable; prefer --tokens, command lines are visible)",
    )
    serve.add_argument(
        "--admin", dest="admins", action="append", default=[], metavar="USER", help="admin role"
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def _token_table(args: argparse.Namespace) -> dict[str, Identity]:
    """The bearer tokens of ``--tokens FILE`` and ``--token`` flags together."""
    table = load_token_file(args.tokens) if args.tokens is not None else {}
    for index, spec in enumerate(args.token_specs, 1):
        token, identity = parse_token_spec(spec, f"--token #{index}")
        if token in table:
            raise UsageError(f"--token #{index}: this token is already given to {table[token]}")
        table[token] = identity
    return table


async def run_serve(args: argparse.Namespace, io: Streams) -> int:
    """Run ``serve`` until SIGINT or SIGTERM; returns the exit status."""
    # Imported here: client subcommands need none of the server's backends.
    from .server import ServeConfig, serve

    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.client_ca is not None and args.tls_cert is None:
        raise UsageError("--client-ca (mutual TLS) needs --tls-cert and --tls-key")
    tokens = _token_table(args)
    logging.basicConfig(
        level=args.log_level,
        stream=io.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = ServeConfig(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        max_upload_bytes=args.max_upload_bytes,
        heartbeat_interval=args.heartbeat_interval,
        chunk_size=args.chunk_size,
        dataset_rows=args.dataset_rows,
        batch_size=args.batch_size,
        query_timeout=args.query_timeout,
        max_query_row_bytes=args.query_row_limit,
        chat_rate=args.chat_rate,
        chat_burst=args.chat_burst,
        sql_threads=args.sql_threads,
        query_threads=args.query_threads,
        file_threads=args.file_threads,
        retention=Retention(
            max_events=args.retain_events,
            max_bytes=args.retain_bytes,
            max_age=args.retain_seconds,
        ),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
        tokens=tokens,
        admins=frozenset(args.admins),
    )
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for signum in signals:
                    io.note(f"{signal.Signals(signum).name} received, stopping")
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(stop_on_signal)
            address = await nursery.start(serve, config)
            io.out(f"listening on {address}")
    io.out("server stopped")
    return 0
