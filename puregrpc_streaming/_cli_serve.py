"""``puregrpc-streaming serve``: its options, and running the server until a signal."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ._cli_common import (
    DEFAULT_PORT,
    Streams,
    UsageError,
    count_arg,
    nonnegative_float_arg,
    positive_float_arg,
    size_arg,
)
from ._serve_sources import CONFIG_VARIABLE, ENV_PREFIX, GivenAppend, GivenStore, layered
from .backends.base import Retention
from .backends.events import DEFAULT_QUEUE_BYTES
from .backends.sqlite import BUSY_TIMEOUT, CACHE_KIB
from .backends.upload_sessions import SessionPolicy
from .handlers._common import SHUTDOWN_GRACE
from .identity import Identity, load_token_file, parse_token_spec
from .logs import configure_logging
from .memory import DEFAULT_ARENAS, tune_malloc

if TYPE_CHECKING:
    from .server import ServeConfig

__all__ = ["SERVE_OPTIONS", "ServeCommand", "add_serve_parser", "resolve_serve", "run_serve"]


#: The options of ``serve`` (filled by :func:`add_serve_parser`), for :func:`.layered`.
SERVE_OPTIONS: list[argparse.Action] = []

_EPILOG = f"""\
Every option may also come from an environment variable ({ENV_PREFIX}
and the flag's name in capitals, e.g. {ENV_PREFIX}MAX_UPLOAD_BYTES=2G; a
repeatable option takes a comma-separated list; --token has none) or from
the TOML file of --config (or ${CONFIG_VARIABLE}), keys named as the flags
(max-upload-bytes = "2G"). A flag wins over the environment, the
environment over the file, the file over the default."""


def add_serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` subcommand and its options to ``commands``."""
    serve = commands.add_parser(
        "serve",
        help="run the server until interrupted",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    SERVE_OPTIONS.clear()

    def option(*flags: str, **settings: Any) -> None:
        repeatable = settings.pop("action", None) == "append"
        settings["action"] = GivenAppend if repeatable else GivenStore
        SERVE_OPTIONS.append(serve.add_argument(*flags, **settings))

    option("--config", type=Path, metavar="FILE", help="a TOML file of settings (see below)")
    option("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    option(
        "--port",
        type=count_arg,
        default=DEFAULT_PORT,
        help="0 picks a free port (default %(default)s)",
    )
    option("--data-dir", type=Path, help="files and SQLite live here (required)")
    option(
        "--workers",
        type=count_arg,
        default=1,
        metavar="N",
        help="serve from N processes sharing the port (SO_REUSEPORT, Linux; default 1)",
    )
    option(
        "--max-upload-bytes",
        type=size_arg,
        default=1 << 30,
        metavar="BYTES",
        help="largest file an upload may store (default 1G)",
    )
    option(
        "--heartbeat-interval",
        type=positive_float_arg,
        default=15.0,
        metavar="SECONDS",
        help="a watch with no event this long gets a heartbeat (default %(default)s)",
    )
    option(
        "--chunk-size",
        type=size_arg,
        default=64 * 1024,
        metavar="BYTES",
        help="download chunk size, 16K-64K (default 64K)",
    )
    option(
        "--dataset-rows",
        type=count_arg,
        default=1_000_000,
        metavar="N",
        help="rows of the dataset seeded on first start (default %(default)s)",
    )
    option(
        "--batch-size",
        type=count_arg,
        default=100,
        metavar="N",
        help="list page of a ListRequest without page_size (default %(default)s)",
    )
    option(
        "--query-timeout",
        type=positive_float_arg,
        default=5.0,
        metavar="SECONDS",
        help="time limit of one InteractiveQuery statement (default %(default)s)",
    )
    option(
        "--query-row-limit",
        type=size_arg,
        default=1 << 20,
        metavar="BYTES",
        help="largest InteractiveQuery row, as JSON (default 1M)",
    )
    option(
        "--chat-rate",
        type=positive_float_arg,
        default=20.0,
        metavar="N",
        help="chat messages a second a caller may send (default %(default)s)",
    )
    option(
        "--chat-burst",
        type=count_arg,
        default=50,
        metavar="N",
        help="chat messages a caller may send at once (default %(default)s)",
    )
    for kind, default, what in (
        ("sql", 4, "the stores' SQL"),
        ("query", 4, "InteractiveQuery"),
        ("file", 8, "file I/O"),
    ):
        option(
            f"--{kind}-threads",
            type=count_arg,
            default=default,
            metavar="N",
            help=f"worker threads for {what} (default %(default)s)",
        )
    option(
        "--sql-busy-timeout",
        type=positive_float_arg,
        default=BUSY_TIMEOUT,
        metavar="SECONDS",
        help="a write waits this long for another process's lock on the database "
        "(default %(default)s)",
    )
    option(
        "--sql-cache-size",
        type=size_arg,
        default=CACHE_KIB << 10,
        metavar="BYTES",
        help="SQLite page cache of each connection (default 256K)",
    )
    option(
        "--malloc-arenas",
        type=count_arg,
        default=DEFAULT_ARENAS,
        metavar="N",
        help="glibc malloc arenas of the process, with large blocks always mapped on their "
        "own; 0 keeps glibc's defaults (default %(default)s; see puregrpc_streaming.memory)",
    )
    history = Retention()
    option(
        "--retain-events",
        type=count_arg,
        default=history.max_events,
        metavar="N",
        help="event log: most events kept (default %(default)s)",
    )
    option(
        "--retain-bytes",
        type=size_arg,
        default=history.max_bytes,
        metavar="BYTES",
        help="event log: most bytes kept (default 256M)",
    )
    option(
        "--retain-seconds",
        type=positive_float_arg,
        default=history.max_age,
        metavar="SECONDS",
        help="event log: oldest event kept (default 7 days)",
    )
    option(
        "--watch-queue-bytes",
        type=size_arg,
        default=DEFAULT_QUEUE_BYTES,
        metavar="BYTES",
        help="events queued for one watcher before it is cut off as too slow (default 16M)",
    )
    sessions = SessionPolicy()
    option(
        "--upload-session-ttl",
        type=positive_float_arg,
        default=sessions.ttl,
        metavar="SECONDS",
        help="an idle resumable upload expires after this (default %(default)s)",
    )
    option(
        "--max-upload-sessions",
        type=count_arg,
        default=sessions.max_sessions,
        metavar="N",
        help="resumable uploads kept at once (default %(default)s)",
    )
    option(
        "--shutdown-grace",
        type=nonnegative_float_arg,
        default=SHUTDOWN_GRACE,
        metavar="SECONDS",
        help="calls in flight get this long to finish on SIGTERM (default %(default)s)",
    )
    option(
        "--redis-url",
        metavar="URL",
        help="redis://HOST:PORT/DB: events and chat on this Redis, shared by every instance "
        "on it (default: the embedded event bus; needs the redis extra)",
    )
    option(
        "--redis-stream",
        default="puregrpc-streaming:events",
        metavar="KEY",
        help="the Redis stream of the events (default %(default)s)",
    )
    option(
        "--postgres-url",
        metavar="URL",
        help="postgresql://USER@HOST:PORT/DB: records (GetData, SyncData), metrics and the dataset "
        "(ListLargeDataset, InteractiveQuery) in this "
        "PostgreSQL, shared by every instance on it (default: SQLite; needs the postgres extra)",
    )
    option(
        "--postgres-query-url",
        metavar="URL",
        help="postgresql://ROLE:PASSWORD@HOST:PORT/DB: InteractiveQuery logs in as this role, "
        "which must read the dataset table only (default: a role the service creates if "
        "--postgres-url's user may create roles; see docs/postgres.md)",
    )
    option(
        "--web",
        type=yes_no_arg,
        nargs="?",
        const=True,
        default=False,
        metavar="yes|no",
        help="serve the browser console at / on the same port (gRPC-Web; default no)",
    )
    option(
        "--freeze-heap",
        type=yes_no_arg,
        nargs="?",
        const=True,
        default=True,
        metavar="yes|no",
        help="once started, move the startup heap out of the garbage collector's full passes "
        "(their 10 ms stalls were the unary p99 under load; default yes)",
    )
    option("--tls-cert", type=Path, help="PEM certificate chain (enables TLS)")
    option("--tls-key", type=Path, help="PEM private key of --tls-cert")
    option(
        "--client-ca",
        type=Path,
        metavar="PEM",
        help="mutual TLS: accept client certificates of this CA (user id = CN or SAN)",
    )
    option(
        "--tokens", type=Path, metavar="FILE", help="bearer tokens: token:user:roles lines or TOML"
    )
    option(
        "--token",
        dest="token_specs",
        action="append",
        default=[],
        metavar="TOKEN:USER[:ROLES]",
        help="a bearer token (repeatable; prefer --tokens, command lines are visible)",
    )
    option("--admin", dest="admins", action="append", default=[], metavar="USER", help="admin role")
    option(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the least severe log lines written (default %(default)s)",
    )
    option(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="json: one JSON object a line, the call log's fields as keys (default text)",
    )


def yes_no_arg(text: str) -> bool:
    """A switch's value: yes/no, true/false, on/off or 1/0."""
    value = text.strip().lower()
    if value in ("yes", "true", "on", "1"):
        return True
    if value in ("no", "false", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


def _token_table(args: argparse.Namespace) -> dict[str, Identity]:
    """The bearer tokens of ``--tokens FILE`` and ``--token`` flags together."""
    table = load_token_file(args.tokens) if args.tokens is not None else {}
    for index, spec in enumerate(args.token_specs, 1):
        token, identity = parse_token_spec(spec, f"--token #{index}")
        if token in table:
            raise UsageError(f"--token #{index}: this token is already given to {table[token]}")
        table[token] = identity
    return table


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeCommand:
    """What ``serve``'s options, environment and config file say, resolved."""

    config: ServeConfig
    #: DEBUG, INFO, WARNING or ERROR.
    log_level: str
    #: ``text`` or ``json`` (JSON lines).
    log_format: str
    #: glibc malloc arenas for the process (0: glibc's defaults; see :mod:`.memory`).
    malloc_arenas: int = DEFAULT_ARENAS
    #: Worker processes (1: this process serves; more: it supervises them).
    workers: int = 1


def resolve_serve(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ServeCommand:
    """The :class:`ServeCommand` of parsed ``serve`` arguments.

    Options the command line did not give come from ``environ`` (default
    ``os.environ``) or the config file (:mod:`._serve_sources`). Bad input is
    a :class:`UsageError` naming the option and where its value came from.
    """
    from .server import ServeConfig

    args = layered(args, SERVE_OPTIONS, environ)
    if args.data_dir is None:
        raise UsageError(
            f"serve needs --data-dir (or ${ENV_PREFIX}DATA_DIR, or data-dir in the config file)"
        )
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if not 1 <= args.workers <= 256:
        raise UsageError(f"--workers must be 1..256, got {args.workers}")
    if args.client_ca is not None and args.tls_cert is None:
        raise UsageError("--client-ca (mutual TLS) needs --tls-cert and --tls-key")
    tokens = _token_table(args)
    try:
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
            watch_queue_bytes=args.watch_queue_bytes,
            upload_sessions=SessionPolicy(
                ttl=args.upload_session_ttl, max_sessions=args.max_upload_sessions
            ),
            shutdown_grace=args.shutdown_grace,
            sql_busy_timeout=args.sql_busy_timeout,
            sql_cache_kib=max(args.sql_cache_size >> 10, 1),
            redis_url=args.redis_url,
            redis_stream=args.redis_stream,
            postgres_url=args.postgres_url,
            postgres_query_url=args.postgres_query_url,
            web_console=args.web,
            freeze_heap=args.freeze_heap,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return ServeCommand(
        config=config,
        log_level=args.log_level,
        log_format=args.log_format,
        malloc_arenas=args.malloc_arenas,
        workers=args.workers,
    )


async def run_serve(
    args: argparse.Namespace, io: Streams, environ: Mapping[str, str] | None = None
) -> int:
    """Run ``serve`` (:func:`resolve_serve`) until SIGINT or SIGTERM; returns the exit status."""
    # Imported here: client subcommands need none of the server's backends.
    from ._serve_workers import serve_workers
    from .server import serve

    command = resolve_serve(args, environ)
    # Before any worker thread: arenas made before it stay (see .memory).
    tune_malloc(command.malloc_arenas)
    config = command.config
    configure_logging(io.stderr, level=command.log_level, json_lines=command.log_format == "json")
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for signum in signals:
                    io.note(f"{signal.Signals(signum).name} received, stopping")
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(stop_on_signal)
            if command.workers == 1:
                address = await nursery.start(serve, config)
                io.out(f"listening on {address}")
            else:
                address = await nursery.start(serve_workers, command)
                io.out(f"listening on {address} ({command.workers} workers)")
            console = config.console_url(address)
            if console is not None:
                io.out(f"browser console at {console}")
    io.out("server stopped")
    return 0
