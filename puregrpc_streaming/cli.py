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
import os
import secrets
import shlex
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import trio

from puregrpc import RpcError, StatusCode

from ._cli_common import (
    DEFAULT_TARGET,
    DEFAULT_UNARY_TIMEOUT,
    EXIT_FAILURE,
    EXIT_USAGE,
    TOKEN_VARIABLE,
    LineReader,
    Streams,
    UsageError,
    as_text,
    count_arg,
    describe,
    file_size,
    positive_float_arg,
    size_arg,
    when,
)
from ._cli_serve import ServeCommand, add_serve_parser, resolve_serve, run_serve
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
from .identity import TokenTableError
from .progress import Progress, format_bytes
from .protos import streaming_pb2
from .protos.streaming_puregrpc import StreamingServiceStub

__all__ = ["ServeCommand", "UsageError", "amain", "build_parser", "main", "parse_serve"]


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``serve`` and one client subcommand per RPC."""
    parser = argparse.ArgumentParser(
        prog="puregrpc-streaming",
        description="The streaming.v1 service on puregrpc: run the server, or call it.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_serve_parser(commands)

    def client_options(timeout_help: str) -> argparse.ArgumentParser:
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
            "--timeout", type=positive_float_arg, metavar="SECONDS", help=timeout_help
        )
        return client

    client = client_options("deadline of each call")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, parents=[client])

    get = add("get", "GetData: read one key of the key-value store")
    get.add_argument("key")

    download = add("download", "DownloadFile: fetch a file (resumable, verified)")
    download.add_argument("file_id")
    download.add_argument("-o", "--output", type=Path, required=True, metavar="PATH")
    download.add_argument("--sha256", metavar="HEX", help="expected checksum to verify")
    download.add_argument(
        "--retries", type=count_arg, default=8, help="reconnections in a row (default %(default)s)"
    )

    upload = add("upload", "UploadFile: store a file, print its file_id and sha256")
    upload.add_argument("path", type=Path)
    upload.add_argument("--name", help="filename to store (default: the file's name)")
    upload.add_argument("--chunk-size", type=size_arg, default=DEFAULT_CHUNK_SIZE)
    upload.add_argument(
        "--retries",
        type=count_arg,
        default=8,
        help="resume after a dropped connection, this many times in a row (0: plain upload)",
    )
    upload.add_argument(
        "--upload-id", metavar="ID", help="continue this upload session (printed when one fails)"
    )

    watch = commands.add_parser(
        "watch",
        help="WatchEvents: print events as they happen (reconnects)",
        parents=[
            client_options(
                "stop watching after SECONDS in all, reconnections included, and exit 0 "
                "(default: watch until interrupted)"
            )
        ],
    )
    watch.add_argument("--type", dest="types", action="append", default=[], metavar="TYPE")
    watch.add_argument("--filter", default="", metavar="EXPR")
    watch.add_argument("--last-event-id", metavar="ID", help="resume after this event")
    watch.add_argument("--limit", type=count_arg, metavar="N", help="stop after N events")
    watch.add_argument("--retries", type=count_arg, default=8)

    list_ = add("list", "ListLargeDataset: stream dataset rows")
    list_.add_argument("--cursor", default="", metavar="C", help="resume after this cursor")
    list_.add_argument("--page-size", type=count_arg, default=0, metavar="N")
    list_.add_argument("--filter", default="", metavar="EXPR")
    list_.add_argument("--limit", type=count_arg, metavar="N", help="stop after N rows")

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
        type=positive_float_arg,
        default=3.0,
        metavar="SECONDS",
        help="at end of input, wait this long for our messages to come back",
    )

    sync = add("sync", "SyncData: 'set KEY VALUE [BASE_VERSION]' and 'del KEY BASE_VERSION'")
    sync.add_argument("--linger", type=positive_float_arg, default=3.0, metavar="SECONDS")

    query = add("query", "InteractiveQuery: one SELECT per line (exit 1 if one failed)")
    query.add_argument("--max-rows", type=count_arg, default=0, metavar="N")
    return parser


# ------------------------------------------------------------------ client


async def _get(stub: StreamingServiceStub, args: argparse.Namespace, io: Streams) -> int:
    timeout = args.timeout if args.timeout is not None else DEFAULT_UNARY_TIMEOUT
    record = await stub.GetData(streaming_pb2.GetDataRequest(key=args.key), timeout=timeout)
    io.out(f"{record.key} = {as_text(record.value)}")
    io.out(f"version {record.version}, updated {when(record.updated_at)}")
    return 0


async def _download(stub: StreamingServiceStub, args: argparse.Namespace, io: Streams) -> int:
    dest: Path = args.output
    if await trio.Path(dest).is_dir():
        raise UsageError(f"{dest} is a directory; -o names the file to write")
    progress = Progress(f"download {args.file_id}", stream=io.stderr)
    part = part_path(dest)
    if already := await file_size(part):
        io.note(f"resuming from {part} ({format_bytes(already)} already there)")

    def on_retry(error: RpcError, delay: float) -> None:
        io.note(f"\nconnection lost ({describe(error)}); resuming in {delay:.1f} s")

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
        if kept := await file_size(part):
            io.note(f"kept {format_bytes(kept)} in {part}: rerun to resume")
        raise
    io.out(f"saved {result.path} ({result.filename or args.file_id}): {result.size} bytes")
    if not result.checksum_verified:
        checked = "not verified: pass --sha256 HEX"
    elif args.sha256:
        checked = "verified"
    else:
        checked = "verified against the server's record"
    io.out(f"sha256 {result.sha256} ({checked}); size matches the server's")
    return 0


async def _upload(stub: StreamingServiceStub, args: argparse.Namespace, io: Streams) -> int:
    path: Path = args.path
    if not await trio.Path(path).is_file():
        raise UsageError(f"{path}: no such file")
    resumable = args.retries > 0 or args.upload_id is not None
    upload_id = args.upload_id or (secrets.token_urlsafe(18) if resumable else None)

    def on_retry(error: RpcError, delay: float) -> None:
        io.note(f"\nconnection lost ({describe(error)}); resuming the upload in {delay:.1f} s")

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
        reason = describe(error) if error is not None else "the server ended the stream"
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
                io.out(f"{event.id} {when(event.timestamp)} {event.type} {as_text(event.payload)}")
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
    try:
        async with stub.ListLargeDataset(request, timeout=args.timeout) as call:
            async for item in call:
                io.out(f"{item.id}\t{item.category}\t{item.value:g}\t{as_text(item.data)}")
                rows += 1
                cursor = item.cursor
                if args.limit is not None and rows >= args.limit:
                    break
    except (KeyboardInterrupt, RpcError):
        # Interrupted (Ctrl-C, a lost connection): say where to go on from.
        if cursor:
            io.note(f"interrupted after {rows} rows; continue with --cursor {cursor}")
        raise
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
        async for line in LineReader(io.stdin):
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
        async for line in LineReader(source):
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
    bad_lines = 0
    all_back = trio.Event()
    async with (
        stub.Chat(metadata=metadata, timeout=args.timeout) as call,
        trio.open_nursery() as nursery,
    ):

        async def receive() -> None:
            nonlocal echoed
            async for message in call:
                clock = when(message.timestamp)[11:19]
                io.out(f"[{clock}] #{message.room_id} {message.user_id}: {message.content}")
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
        async for line in LineReader(io.stdin):
            if line.strip() == "/room" or line.startswith("/room "):
                name = line.strip().removeprefix("/room").strip()
                if not name:
                    io.note("error: /room needs a room name (/room ROOM); nothing sent")
                    bad_lines += 1
                    continue
                room = name
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
    return EXIT_USAGE if bad_lines else 0


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
                state = "deleted" if response.deleted else f"= {as_text(response.value)}"
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
        async for line in LineReader(io.stdin):
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
                    io.out(as_text(response.data))
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
        return await run_serve(args, io)
    command = _CLIENT_COMMANDS[args.command]
    if (args.tls_key is not None) and args.tls_cert is None:
        raise UsageError("--tls-key needs --tls-cert")
    for flag, path in (
        ("--tls-ca", args.tls_ca),
        ("--tls-cert", args.tls_cert),
        ("--tls-key", args.tls_key),
    ):
        if path is not None and not await trio.Path(path).is_file():
            raise UsageError(f"{flag} {path}: no such file")
    async with open_channel(
        args.target,
        tls_ca=args.tls_ca,
        token=args.token or None,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    ) as channel:
        return await command(StreamingServiceStub(channel), args, io)


def parse_serve(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> ServeCommand:
    """What ``puregrpc-streaming serve ARGV...`` would run, without running it.

    ``argv`` are the arguments after ``serve``; options they do not give
    come from ``environ`` (default ``os.environ``: ``PUREGRPC_STREAMING_*``)
    or the TOML file of ``--config``. Raises :class:`UsageError` for bad
    values (naming their source) and :class:`SystemExit` for what argparse
    refuses.
    """
    return resolve_serve(build_parser().parse_args(["serve", *argv]), environ)


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
        if isinstance(raised, BaseExceptionGroup) and raised.subgroup(KeyboardInterrupt):
            # Ctrl-C landed in one of the channel's tasks, beside the call's
            # own error about the connection it closed: it is still Ctrl-C.
            raise KeyboardInterrupt from None
        exc = unwrap_group(raised)
        if isinstance(exc, RpcError):
            io.note(f"error: {describe(exc)}")
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
