"""``puregrpc-streaming``: run the streaming.v1 server, or call it, from a shell.

``serve`` runs the service; every other subcommand is a client of one RPC::

    puregrpc-streaming serve --port 50051 --data-dir ./data
    puregrpc-streaming upload report.csv            # resumable; prints file_id and sha256
    puregrpc-streaming download FILE_ID -o copy.csv # resumes, verifies
    puregrpc-streaming watch --type file.uploaded --filter 'size > 1000'
    puregrpc-streaming list --filter 'category = "red"' --limit 10
    echo "cpu 0.5 host=a" | puregrpc-streaming metrics
    puregrpc-streaming batch items.txt
    puregrpc-streaming chat --user ann --room lobby
    puregrpc-streaming sync                        # set KEY VALUE [BASE] / del KEY BASE
    puregrpc-streaming get KEY
    puregrpc-streaming query                       # one SELECT per line

Failures print one ``error: ...`` line on stderr and exit with status 1
(2 for bad command-line or input syntax); never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shlex
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TextIO

import trio
from google.protobuf.timestamp_pb2 import Timestamp

from puregrpc import RpcError, StatusCode

from .backends.base import Retention
from .client_helpers import (
    DEFAULT_CHUNK_SIZE,
    EventGap,
    EventWatcher,
    RetryPolicy,
    TransferError,
    download_file,
    open_channel,
    part_path,
    unwrap_group,
    upload_file,
)
from .identity import Identity, TokenTableError, load_token_file, parse_token_spec
from .progress import Progress, format_bytes
from .protos import streaming_pb2
from .protos.streaming_puregrpc import StreamingServiceStub

__all__ = ["amain", "build_parser", "main"]

#: The environment variable client commands read their bearer token from.
TOKEN_VARIABLE = "PUREGRPC_STREAMING_TOKEN"
DEFAULT_PORT = 50051
DEFAULT_TARGET = f"127.0.0.1:{DEFAULT_PORT}"
#: Deadline of a unary call when --timeout does not say.
DEFAULT_UNARY_TIMEOUT = 10.0

EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input to a subcommand (a malformed line, conflicting options): exit 2."""


@dataclass(frozen=True, slots=True)
class Streams:
    """Where a command reads its input and writes its output."""

    stdin: TextIO
    stdout: TextIO
    stderr: TextIO

    def out(self, text: str) -> None:
        """One line of results on stdout."""
        print(text, file=self.stdout, flush=True)

    def note(self, text: str) -> None:
        """One line of commentary (progress, reconnections) on stderr."""
        print(text, file=self.stderr, flush=True)


# ----------------------------------------------------------------- parsing


def _size(text: str) -> int:
    """A byte count: ``1048576``, ``64K``, ``100M``, ``1G`` (binary units)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, multiplier = text, 1
    if text[-1:].upper() in units:
        number, multiplier = text[:-1], units[text[-1].upper()]
    try:
        value = int(number) * multiplier
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a byte count: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``serve`` and one client subcommand per RPC."""
    parser = argparse.ArgumentParser(
        prog="puregrpc-streaming",
        description="The streaming.v1 service on puregrpc: run the server, or call it.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    serve.add_argument(
        "--port",
        type=_count,
        default=DEFAULT_PORT,
        help="0 picks a free port (default %(default)s)",
    )
    serve.add_argument("--data-dir", type=Path, required=True, help="files and SQLite live here")
    serve.add_argument("--max-upload-bytes", type=_size, default=1 << 30, metavar="BYTES")
    serve.add_argument(
        "--heartbeat-interval", type=_positive_float, default=15.0, metavar="SECONDS"
    )
    serve.add_argument(
        "--chunk-size", type=_size, default=64 * 1024, help="download chunk size, 16K-64K"
    )
    serve.add_argument("--dataset-rows", type=_count, default=1_000_000, metavar="N")
    serve.add_argument("--batch-size", type=_count, default=100, metavar="N", help="list page")
    serve.add_argument("--query-timeout", type=_positive_float, default=5.0, metavar="SECONDS")
    serve.add_argument(
        "--query-row-limit", type=_size, default=1 << 20, metavar="BYTES", help="per query row"
    )
    serve.add_argument(
        "--chat-rate", type=_positive_float, default=20.0, metavar="N", help="messages/s a caller"
    )
    serve.add_argument("--chat-burst", type=_count, default=50, metavar="N")
    for kind, default, what in (
        ("sql", 4, "the stores' SQL"),
        ("query", 4, "InteractiveQuery"),
        ("file", 8, "file I/O"),
    ):
        serve.add_argument(
            f"--{kind}-threads",
            type=_count,
            default=default,
            metavar="N",
            help=f"worker threads for {what} (default %(default)s)",
        )
    history = Retention()
    serve.add_argument(
        "--retain-events", type=_count, default=history.max_events, metavar="N", help="event log"
    )
    serve.add_argument(
        "--retain-bytes", type=_size, default=history.max_bytes, metavar="BYTES", help="event log"
    )
    serve.add_argument(
        "--retain-seconds",
        type=_positive_float,
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

    client = argparse.ArgumentParser(add_help=False)
    client.add_argument(
        "--target", default=DEFAULT_TARGET, metavar="HOST:PORT", help="default %(default)s"
    )
    client.add_argument("--tls-ca", type=Path, metavar="PEM", help="use TLS, trusting this CA")
    client.add_argument(
        "--tls-cert", type=Path, metavar="PEM", help="client certificate (mutual TLS)"
    )
    client.add_argument("--tls-key", type=Path, metavar="PEM", help="key of --tls-cert")
    client.add_argument(
        "--token",
        default=os.environ.get(TOKEN_VARIABLE),
        metavar="TOKEN",
        help=f"bearer token (default: ${TOKEN_VARIABLE})",
    )
    client.add_argument(
        "--timeout", type=_positive_float, metavar="SECONDS", help="deadline of each call"
    )

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, parents=[client])

    get = add("get", "GetData: read one key of the key-value store")
    get.add_argument("key")

    download = add("download", "DownloadFile: fetch a file (resumable, verified)")
    download.add_argument("file_id")
    download.add_argument("-o", "--output", type=Path, required=True, metavar="PATH")
    download.add_argument("--sha256", metavar="HEX", help="expected checksum to verify")
    download.add_argument(
        "--retries", type=_count, default=8, help="reconnections in a row (default %(default)s)"
    )

    upload = add("upload", "UploadFile: store a file, print its file_id and sha256")
    upload.add_argument("path", type=Path)
    upload.add_argument("--name", help="filename to store (default: the file's name)")
    upload.add_argument("--chunk-size", type=_size, default=DEFAULT_CHUNK_SIZE)
    upload.add_argument(
        "--retries",
        type=_count,
        default=8,
        help="resume after a dropped connection, this many times in a row (0: plain upload)",
    )
    upload.add_argument(
        "--upload-id", metavar="ID", help="continue this upload session (printed when one fails)"
    )

    watch = add("watch", "WatchEvents: print events as they happen (reconnects)")
    watch.add_argument("--type", dest="types", action="append", default=[], metavar="TYPE")
    watch.add_argument("--filter", default="", metavar="EXPR")
    watch.add_argument("--last-event-id", metavar="ID", help="resume after this event")
    watch.add_argument("--limit", type=_count, metavar="N", help="stop after N events")
    watch.add_argument("--retries", type=_count, default=8)

    list_ = add("list", "ListLargeDataset: stream dataset rows")
    list_.add_argument("--cursor", default="", metavar="C", help="resume after this cursor")
    list_.add_argument("--page-size", type=_count, default=0, metavar="N")
    list_.add_argument("--filter", default="", metavar="EXPR")
    list_.add_argument("--limit", type=_count, metavar="N", help="stop after N rows")

    metrics = add("metrics", "CollectMetrics: send 'name value [label=v ...]' lines")
    metrics.add_argument(
        "--metric", action="append", default=[], metavar="LINE", help="instead of stdin"
    )

    batch = add("batch", "BatchProcess: 'item_id operation payload' lines (exit 1 on failures)")
    batch.add_argument("file", nargs="?", type=Path, help="the items (default: stdin)")

    chat = add("chat", "Chat: each stdin line is a message; '/room R' switches room")
    chat.add_argument(
        "--user", help="who you are, for an open-mode server (with a token: the token's user)"
    )
    chat.add_argument("--room", default="lobby")
    chat.add_argument(
        "--linger",
        type=_positive_float,
        default=3.0,
        metavar="SECONDS",
        help="at end of input, wait this long for our messages to come back",
    )

    sync = add("sync", "SyncData: 'set KEY VALUE [BASE_VERSION]' and 'del KEY BASE_VERSION'")
    sync.add_argument("--linger", type=_positive_float, default=3.0, metavar="SECONDS")

    query = add("query", "InteractiveQuery: one SELECT per line (exit 1 if one failed)")
    query.add_argument("--max-rows", type=_count, default=0, metavar="N")
    return parser


# ----------------------------------------------------------------- helpers


class _LineReader:
    """The lines of a text stream without newlines, each read in a worker thread.

    A class rather than an async generator: nothing to close when a loop
    over it stops early.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __aiter__(self) -> _LineReader:
        return self

    async def __anext__(self) -> str:
        line = await trio.to_thread.run_sync(self._stream.readline, abandon_on_cancel=True)
        if not line:
            raise StopAsyncIteration
        return line.rstrip("\r\n")


def _when(timestamp: Timestamp) -> str:
    if not timestamp.seconds and not timestamp.nanos:
        return "-"
    return timestamp.ToDatetime(tzinfo=UTC).isoformat(timespec="milliseconds")


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="backslashreplace")


async def _file_size(path: Path) -> int:
    """The size of ``path``, 0 if it does not exist."""
    try:
        return (await trio.Path(path).stat()).st_size
    except FileNotFoundError:
        return 0


def _describe(exc: RpcError) -> str:
    if exc.code is StatusCode.UNAVAILABLE and exc.details.startswith("cannot connect"):
        return exc.details
    return str(exc)


# ------------------------------------------------------------------ server


def _token_table(args: argparse.Namespace) -> dict[str, Identity]:
    """The bearer tokens of ``--tokens FILE`` and ``--token`` flags together."""
    table = load_token_file(args.tokens) if args.tokens is not None else {}
    for index, spec in enumerate(args.token_specs, 1):
        token, identity = parse_token_spec(spec, f"--token #{index}")
        if token in table:
            raise UsageError(f"--token #{index}: this token is already given to {table[token]}")
        table[token] = identity
    return table


async def _serve(args: argparse.Namespace, io: Streams) -> int:
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


# ------------------------------------------------------------------ client


async def _get(stub: StreamingServiceStub, args: argparse.Namespace, io: Streams) -> int:
    timeout = args.timeout if args.timeout is not None else DEFAULT_UNARY_TIMEOUT
    record = await stub.GetData(streaming_pb2.GetDataRequest(key=args.key), timeout=timeout)
    io.out(f"{record.key} = {_text(record.value)}")
    io.out(f"version {record.version}, updated {_when(record.updated_at)}")
    return 0


async def _download(stub: StreamingServiceStub, args: argparse.Namespace, io: Streams) -> int:
    dest: Path = args.output
    if await trio.Path(dest).is_dir():
        raise UsageError(f"{dest} is a directory; -o names the file to write")
    progress = Progress(f"download {args.file_id}", stream=io.stderr)
    part = part_path(dest)
    if already := await _file_size(part):
        io.note(f"resuming from {part} ({format_bytes(already)} already there)")

    def on_retry(error: RpcError, delay: float) -> None:
        io.note(f"\nconnection lost ({_describe(error)}); resuming in {delay:.1f} s")

    try:
        result = await download_file(
            stub,
            args.file_id,
            dest,
            expected_sha256=args.sha256,
            retry=RetryPolicy(attempts=args.retries),
            attempt_timeout=args.timeout,
            progress=progress,
            on_retry=on_retry,
        )
    except RpcError:
        if kept := await _file_size(part):
            io.note(f"kept {format_bytes(kept)} in {part}: rerun to resume")
        raise
    io.out(f"saved {result.path} ({result.filename or args.file_id}): {result.size} bytes")
    checked = "verified" if result.checksum_verified else "not verified: pass --sha256 HEX"
    io.out(f"sha256 {result.sha256} ({checked}); size matches the server's")
    return 0


async def _upload(stub: StreamingServiceStub, args: argparse.Namespace, io: Streams) -> int:
    path: Path = args.path
    if not await trio.Path(path).is_file():
        raise UsageError(f"{path}: no such file")
    resumable = args.retries > 0 or args.upload_id is not None
    upload_id = args.upload_id or (secrets.token_urlsafe(18) if resumable else None)

    def on_retry(error: RpcError, delay: float) -> None:
        io.note(f"\nconnection lost ({_describe(error)}); resuming the upload in {delay:.1f} s")

    try:
        result = await upload_file(
            stub,
            path,
            filename=args.name,
            chunk_size=args.chunk_size,
            call_timeout=args.timeout,
            progress=Progress(f"upload {path.name}", stream=io.stderr),
            retry=RetryPolicy(attempts=args.retries) if resumable else None,
            upload_id=upload_id,
            on_retry=on_retry,
        )
    except RpcError:
        if upload_id is not None:
            io.note(
                f"the server keeps what it received for a while: rerun with --upload-id {upload_id}"
            )
        raise
    if result.reconnects:
        io.note(f"resumed {result.reconnects} time(s), the last from {result.resumed_from:,} bytes")
    io.out(f"file_id: {result.file_id}")
    io.out(f"size: {result.size}")
    io.out(f"sha256: {result.checksum}")
    return 0


async def _watch(stub: StreamingServiceStub, args: argparse.Namespace, io: Streams) -> int:
    def on_retry(error: RpcError | None, delay: float) -> None:
        reason = _describe(error) if error is not None else "the server ended the stream"
        after = watcher.last_event_id or "the start"
        io.note(f"watch interrupted ({reason}); resuming after {after} in {delay:.1f} s")

    def on_gap(gap: EventGap) -> None:
        io.note(f"warning: {gap.reason}; going on after {gap.resumed_after}")

    watcher = EventWatcher(
        stub,
        event_types=args.types,
        filter=args.filter,
        last_event_id=args.last_event_id,
        retry=RetryPolicy(attempts=args.retries),
        on_retry=on_retry,
        on_gap=on_gap,
    )
    seen = 0
    if args.limit == 0:
        return 0
    with trio.move_on_after(args.timeout if args.timeout is not None else float("inf")):
        events = watcher.events()
        try:
            async for event in events:
                io.out(f"{event.id} {_when(event.timestamp)} {event.type} {_text(event.payload)}")
                seen += 1
                if args.limit is not None and seen >= args.limit:
                    break
        finally:
            await events.aclose()
    return 0


async def _list(stub: StreamingServiceStub, args: argparse.Namespace, io: Streams) -> int:
    request = streaming_pb2.ListRequest(
        start_cursor=args.cursor, page_size=args.page_size, filter=args.filter
    )
    rows = 0
    cursor = args.cursor
    if args.limit == 0:
        return 0
    async with stub.ListLargeDataset(request, timeout=args.timeout) as call:
        async for item in call:
            io.out(f"{item.id}\t{item.category}\t{item.value:g}\t{_text(item.data)}")
            rows += 1
            cursor = item.cursor
            if args.limit is not None and rows >= args.limit:
                break
    io.note(f"{rows} rows" + (f"; continue with --cursor {cursor}" if cursor else ""))
    return 0


def _parse_metric(line: str, where: str) -> streaming_pb2.Metric:
    fields = line.split()
    if len(fields) < 2:
        raise UsageError(f"{where}: expected 'name value [label=v ...]', got {line!r}")
    name, value_text, *label_fields = fields
    try:
        value = float(value_text)
    except ValueError:
        raise UsageError(f"{where}: {value_text!r} is not a number") from None
    labels: dict[str, str] = {}
    for label in label_fields:
        key, sep, label_value = label.partition("=")
        if not sep or not key:
            raise UsageError(f"{where}: label {label!r} is not key=value")
        labels[key] = label_value
    metric = streaming_pb2.Metric(name=name, value=value, labels=labels)
    metric.timestamp.GetCurrentTime()
    return metric


async def _metrics(stub: StreamingServiceStub, args: argparse.Namespace, io: Streams) -> int:
    metrics: list[streaming_pb2.Metric] = []
    if args.metric:
        for index, line in enumerate(args.metric, 1):
            metrics.append(_parse_metric(line, f"--metric #{index}"))
    else:
        # Parsed in full before the call: a bad line fails the command, not the stream.
        index = 0
        async for line in _LineReader(io.stdin):
            index += 1
            if line.strip() and not line.lstrip().startswith("#"):
                metrics.append(_parse_metric(line, f"line {index}"))
    summary = await stub.CollectMetrics(metrics, timeout=args.timeout)
    io.out(f"total_count: {summary.total_count}")
    for name in sorted(summary.aggregates):
        io.out(f"{name}: {summary.aggregates[name]:g}")
    return 0


async def _batch(stub: StreamingServiceStub, args: argparse.Namespace, io: Streams) -> int:
    items: list[streaming_pb2.ProcessRequest] = []
    source = args.file.open(encoding="utf-8") if args.file is not None else io.stdin
    try:
        index = 0
        async for line in _LineReader(source):
            index += 1
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = line.split(maxsplit=2)
            if len(fields) < 2:
                raise UsageError(
                    f"line {index}: expected 'item_id operation payload', got {line!r}"
                )
            payload = fields[2] if len(fields) == 3 else ""
            items.append(
                streaming_pb2.ProcessRequest(
                    item_id=fields[0], operation=fields[1], payload=payload.encode()
                )
            )
    finally:
        if source is not io.stdin:
            source.close()
    summary = await stub.BatchProcess(items, timeout=args.timeout)
    io.out(f"total {summary.total}, succeeded {summary.succeeded}, failed {summary.failed}")
    for failure in summary.failures:
        io.out(f"failed {failure.item_id} (#{failure.index}): {failure.error}")
    for item_id in sorted(summary.results):
        io.out(f"{item_id}: {summary.results[item_id]}")
    return EXIT_FAILURE if summary.failed else 0


async def _chat(stub: StreamingServiceStub, args: argparse.Namespace, io: Streams) -> int:
    metadata = [("room-id", args.room)]
    if args.user:
        metadata.append(("user-id", args.user))
    #: (room, text) of our messages not seen back yet: the server stamps the
    #: sender, and with a token we may not know our own user id.
    unseen: Counter[tuple[str, str]] = Counter()
    sent = 0
    echoed = 0
    all_back = trio.Event()
    async with (
        stub.Chat(metadata=metadata, timeout=args.timeout) as call,
        trio.open_nursery() as nursery,
    ):

        async def receive() -> None:
            nonlocal echoed
            async for message in call:
                when = _when(message.timestamp)[11:19]
                io.out(f"[{when}] #{message.room_id} {message.user_id}: {message.content}")
                mine = (message.room_id, message.content)
                if unseen[mine] and (not args.user or message.user_id == args.user):
                    unseen[mine] -= 1
                    echoed += 1
                    if echoed >= sent and input_done:
                        all_back.set()
            nursery.cancel_scope.cancel()

        input_done = False
        nursery.start_soon(receive)
        room = args.room
        async for line in _LineReader(io.stdin):
            if line.startswith("/room "):
                room = line.split(maxsplit=1)[1].strip()
                continue
            if not line.strip():
                continue
            unseen[(room, line)] += 1
            await call.send(streaming_pb2.ChatMessage(room_id=room, content=line))
            sent += 1
        input_done = True
        # Wait (briefly) to see our own messages come back before leaving.
        with trio.move_on_after(args.linger):
            if echoed < sent:
                await all_back.wait()
        await call.done_writing()
        with trio.move_on_after(2.0):
            await trio.sleep_forever()  # receive() ends the nursery when the server ends
        nursery.cancel_scope.cancel()
    return 0


def _parse_change(
    line: str, where: str, number: int, versions: dict[str, int]
) -> streaming_pb2.SyncRequest:
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None
    change_id = f"c{number}"

    def version(text: str) -> int:
        if not text.isdigit():
            raise UsageError(f"{where}: base version {text!r} is not a non-negative integer")
        return int(text)

    if words and words[0] == "set" and len(words) in (3, 4):
        base = version(words[3]) if len(words) == 4 else versions.get(words[1], 0)
        return streaming_pb2.SyncRequest(
            key=words[1], value=words[2].encode(), base_version=base, change_id=change_id
        )
    if words and words[0] == "del" and len(words) in (2, 3):
        base = version(words[2]) if len(words) == 3 else versions.get(words[1], 0)
        return streaming_pb2.SyncRequest(
            key=words[1], delete=True, base_version=base, change_id=change_id
        )
    raise UsageError(f"{where}: expected 'set KEY VALUE [BASE_VERSION]' or 'del KEY BASE_VERSION'")


async def _sync(stub: StreamingServiceStub, args: argparse.Namespace, io: Streams) -> int:
    #: The latest version seen of each key: the default base of the next change.
    versions: dict[str, int] = {}
    pending: set[str] = set()
    settled = trio.Event()
    bad_lines = 0
    input_done = False
    kinds = streaming_pb2.SyncResponse.Kind
    async with stub.SyncData(timeout=args.timeout) as call, trio.open_nursery() as nursery:

        async def receive() -> None:
            async for response in call:
                versions[response.key] = response.version
                state = "deleted" if response.deleted else f"= {_text(response.value)}"
                if response.kind == kinds.ACK:
                    io.out(f"ack {response.key} version {response.version} ({response.change_id})")
                elif response.kind == kinds.CONFLICT:
                    io.out(
                        f"conflict {response.key} ({response.change_id}): server has version "
                        f"{response.version} {state}"
                        + (f": {response.message}" if response.message else "")
                    )
                else:
                    io.out(f"change {response.key} version {response.version} {state}")
                pending.discard(response.change_id)
                if input_done and not pending:
                    settled.set()
            nursery.cancel_scope.cancel()

        nursery.start_soon(receive)
        number = 0
        async for line in _LineReader(io.stdin):
            number += 1
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                change = _parse_change(line, f"line {number}", number, versions)
            except UsageError as exc:
                io.note(f"error: {exc}")
                bad_lines += 1
                continue
            pending.add(change.change_id)
            await call.send(change)
        input_done = True
        with trio.move_on_after(args.linger):
            if pending:
                await settled.wait()
        if pending:
            io.note(f"error: no answer to {', '.join(sorted(pending))}")
        await call.done_writing()
        with trio.move_on_after(2.0):
            await trio.sleep_forever()
        nursery.cancel_scope.cancel()
    return EXIT_USAGE if bad_lines else (EXIT_FAILURE if pending else 0)


async def _query(stub: StreamingServiceStub, args: argparse.Namespace, io: Streams) -> int:
    interactive = io.stdin.isatty()
    failed = 0
    async with stub.InteractiveQuery(timeout=args.timeout) as call:
        while True:
            if interactive:
                io.stdout.write("sql> ")
                io.stdout.flush()
            line = await trio.to_thread.run_sync(io.stdin.readline, abandon_on_cancel=True)
            if not line:
                break
            sql = line.strip()
            if not sql:
                continue
            await call.send(streaming_pb2.QueryRequest(query=sql, max_rows=args.max_rows))
            rows = 0
            while True:
                response = await call.receive()
                if response is None:
                    raise RpcError(StatusCode.INTERNAL, "the server ended the query stream")
                if response.error:
                    io.out(f"error: {response.error}")
                    failed += 1
                elif response.data:
                    io.out(_text(response.data))
                    rows += 1
                if response.complete:
                    if not response.error:
                        io.out(f"-- {rows} row{'s' if rows != 1 else ''}")
                    break
        await call.done_writing()
    if interactive:
        io.stdout.write("\n")
    return EXIT_FAILURE if failed else 0


_CLIENT_COMMANDS: dict[
    str, Callable[[StreamingServiceStub, argparse.Namespace, Streams], Awaitable[int]]
] = {
    "get": _get,
    "download": _download,
    "upload": _upload,
    "watch": _watch,
    "list": _list,
    "metrics": _metrics,
    "batch": _batch,
    "chat": _chat,
    "sync": _sync,
    "query": _query,
}


# -------------------------------------------------------------- entry points


async def _run(args: argparse.Namespace, io: Streams) -> int:
    if args.command == "serve":
        return await _serve(args, io)
    command = _CLIENT_COMMANDS[args.command]
    if (args.tls_key is not None) and args.tls_cert is None:
        raise UsageError("--tls-key needs --tls-cert")
    async with open_channel(
        args.target,
        tls_ca=args.tls_ca,
        token=args.token or None,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    ) as channel:
        return await command(StreamingServiceStub(channel), args, io)


async def amain(
    argv: Sequence[str],
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one command inside a running trio loop; return the exit status.

    Errors are printed as one ``error: ...`` line; argparse's own usage
    errors exit with :class:`SystemExit` (status 2) as usual.
    """
    io = Streams(stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        return await _run(args, io)
    except BaseException as raised:
        exc = unwrap_group(raised)
        if isinstance(exc, RpcError):
            io.note(f"error: {_describe(exc)}")
            return EXIT_FAILURE
        if isinstance(exc, UsageError | TokenTableError):
            io.note(f"error: {exc}")
            return EXIT_USAGE
        if isinstance(exc, TransferError | OSError | ValueError):
            io.note(f"error: {exc}")
            return EXIT_FAILURE
        if exc is not raised:
            raise exc from None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: parse ``argv`` (default ``sys.argv[1:]``), run, return the status."""
    try:
        return trio.run(amain, list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
