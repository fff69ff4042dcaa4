"""The main job: ``python -m puregrpc_streaming.demo`` (``make demo``).

Starts the streaming.v1 server with the real command line
(``puregrpc-streaming serve --port 0 --tokens FILE``) on a temporary data
directory, the embedded backends (local files, an in-process event bus over
a durable SQLite log, SQLite) and a free loopback port. The demo writes the
token file itself (fresh random tokens for an operator with role admin, a
user who moves files, and three chat users), so every call is
authenticated: a call without a token is refused, chat senders are the
tokens' users, and each watcher sees only what its user may. A client then
calls all ten RPCs through the client helpers, printing what happens, and
ends with a summary: bytes moved, MB/s of the upload and download, messages
per second, checksums verified. Finally it stops the server with SIGTERM
and removes the temporary directory.

The server also serves the browser console (``serve --web``; ``--no-web``
turns it off): the demo prints its URL and the operator's token to paste
into it, and ``--stay`` keeps the server running after the tour until
Ctrl-C, for the page.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from puregrpc import RpcError

from .client_helpers import (
    EventWatcher,
    TransferError,
    open_channel,
    unwrap_group,
)
from .demo_steps import (
    Tally,
    say,
    step_access,
    step_batch,
    step_chat,
    step_download,
    step_list,
    step_metrics,
    step_query,
    step_sync_and_get,
    step_upload,
)
from .progress import format_bytes
from .protos.streaming_puregrpc import StreamingServiceStub

#: Rows seeded when --rows does not say: the service's own default, so the
#: demo runs the server on its embedded defaults (seeding takes about a
#: second; streaming the whole table a few more).
DEFAULT_ROWS = 1_000_000
DEFAULT_SIZE_MIB = 64
#: How long the server may take to seed its dataset and start listening.
STARTUP_TIMEOUT = 60.0


#: The filtered watcher's expression (the language of puregrpc_streaming.filters).
UPLOAD_FILTER = 'filename ~ "*.bin" and size > 1000'


#: The demo's callers: user -> roles. "ops" watches everything; "alice" moves files.
USERS = {"ops": "admin", "alice": "", "ann": "", "bob": "", "cat": ""}


def write_tokens(path: Path) -> dict[str, str]:
    """A fresh token for each of :data:`USERS`, written as ``token:user:roles`` lines."""
    tokens = {user: secrets.token_hex(16) for user in USERS}
    lines = [f"{tokens[user]}:{user}:{roles}" for user, roles in USERS.items()]
    path.write_text("# made by the demo\n" + "\n".join(lines) + "\n")
    path.chmod(0o600)
    return tokens


# ----------------------------------------------------------------- server


@dataclass
class RunningServer:
    """The ``serve`` subprocess and the address it printed."""

    process: trio.Process
    address: str
    stdout: trio.abc.ReceiveStream
    startup: float


async def _read_line(stream: trio.abc.ReceiveStream, buffer: bytearray) -> str:
    """The next line of ``stream`` (``""`` at its end); ``buffer`` keeps the rest."""
    while b"\n" not in buffer:
        data = await stream.receive_some(4096)
        if not data:
            text = buffer.decode(errors="replace")
            buffer.clear()
            return text
        buffer += data
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.decode(errors="replace")


@asynccontextmanager
async def running_server(
    data_dir: Path, rows: int, tokens: Path, *, web: bool = True
) -> AsyncIterator[RunningServer]:
    """Run ``puregrpc-streaming serve`` until the block ends, then stop it with SIGTERM."""
    command = [
        sys.executable,
        "-m",
        "puregrpc_streaming",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--dataset-rows",
        str(rows),
        "--heartbeat-interval",
        "2",
        "--tokens",
        str(tokens),
        # Client cancellations (part of the demo) are logged as warnings.
        "--log-level",
        "ERROR",
        *(["--web"] if web else []),
    ]
    say(f"$ puregrpc-streaming {' '.join(command[3:])}")
    started = time.perf_counter()
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    assert process.stdout is not None
    buffer = bytearray()
    try:
        with trio.move_on_after(STARTUP_TIMEOUT):
            first = await _read_line(process.stdout, buffer)
        if not first.startswith("listening on "):
            raise RuntimeError(f"the server did not start (first line: {first!r})")
        server = RunningServer(
            process=process,
            address=first.removeprefix("listening on ").strip(),
            stdout=process.stdout,
            startup=time.perf_counter() - started,
        )
        yield server
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        with trio.move_on_after(10) as waiting:
            await process.wait()
        if waiting.cancelled_caught:
            process.kill()
            await process.wait()
        rest = ""
        with trio.move_on_after(1):
            while line := await _read_line(process.stdout, buffer):
                rest += line + "\n"
        await process.stdout.aclose()
        if "server stopped" in rest and process.returncode == 0:
            say("server stopped cleanly (SIGTERM, exit status 0)")
        else:
            say(f"server exited with status {process.returncode}")


# -------------------------------------------------------------------- tour


async def tour(address: str, work: Path, rows: int, size: int, tokens: dict[str, str]) -> Tally:
    """Call all ten RPCs against the server at ``address``, as the users of ``tokens``."""
    tally = Tally()
    async with (
        open_channel(address, token=tokens["alice"]) as channel,
        open_channel(address, token=tokens["ops"]) as ops_channel,
        trio.open_nursery() as nursery,
    ):
        stub = StreamingServiceStub(channel)
        ops = StreamingServiceStub(ops_channel)
        types: Counter[str] = Counter()
        first_ids: list[str] = []
        last_id: list[str] = []

        async def watch_all(task_status: trio.TaskStatus[None]) -> None:
            watcher = EventWatcher(ops)  # role admin: sees every event
            events = watcher.events()
            task_status.started()
            try:
                async for event in events:
                    types[event.type] += 1
                    tally.messages["WatchEvents"] += 1
                    if event.type == "heartbeat":
                        continue
                    if not first_ids:
                        first_ids.append(event.id)
                    last_id[:] = [event.id]
            finally:
                await events.aclose()

        async def watch_filtered(task_status: trio.TaskStatus[None]) -> None:
            watcher = EventWatcher(stub, event_types=["file.uploaded"], filter=UPLOAD_FILTER)
            events = watcher.events()
            task_status.started()
            try:
                async for event in events:
                    tally.messages["WatchEvents"] += 1
                    # Heartbeats keep an idle watch alive whatever its filter: not news.
                    if event.type != "heartbeat":
                        say(f"  [filtered watch] {event.id} {event.type} {event.payload.decode()}")
            finally:
                await events.aclose()

        say("\n1/10 WatchEvents (server streaming): ops (role admin) watches every event;")
        say(f"     alice watches her file.uploaded events matching: {UPLOAD_FILTER}")
        await nursery.start(watch_all)
        await nursery.start(watch_filtered)

        say(
            f"\n2/10 UploadFile (client streaming): {format_bytes(size)} in 64 KiB chunks, "
            "interrupted halfway and resumed"
        )
        file_id, sha256, _ = await step_upload(stub, work, size, tally)

        say("\n3/10 DownloadFile (server streaming): interrupted at 40%, then resumed")
        await step_download(stub, work, file_id, sha256, tally)

        say(f"\n4/10 ListLargeDataset (server streaming): {rows:,} SQLite rows, pages of 100")
        await step_list(stub, rows, tally)

        say("\n5/10 CollectMetrics (client streaming): 20,000 labelled metrics")
        await step_metrics(stub, tally)

        say("\n6/10 BatchProcess (client streaming): 2,003 items, processed as they arrive")
        await step_batch(stub, tally)

        say("\n7/10 Chat (bidirectional): ann and bob in #lobby, cat in #ops")
        await step_chat(address, tokens, tally)
        await step_access(address, tokens, tally)

        say("\n8/10 SyncData (bidirectional) and 9/10 GetData (unary)")
        await step_sync_and_get(stub, tally)

        say("\n10/10 InteractiveQuery (bidirectional): read-only SQL over the dataset")
        await step_query(stub, tally)

        # Let the last events reach the watcher, then show a resume from an id.
        await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    say("\nWatchEvents again, with metadata last-event-id: replays the log after it")
    replayed = 0
    async with open_channel(address, token=tokens["ops"]) as channel:
        watcher = EventWatcher(StreamingServiceStub(channel), last_event_id=first_ids[0])
        events = watcher.events()
        try:
            with trio.fail_after(10):
                async for event in events:
                    if event.type == "heartbeat":
                        continue
                    replayed += 1
                    if event.id == last_id[0]:
                        break
        finally:
            await events.aclose()
    tally.messages["WatchEvents"] += replayed
    kinds = ", ".join(f"{name} {count}" for name, count in sorted(types.items()))
    say(f"  live watcher saw: {kinds}")
    say(f"  resumed after {first_ids[0]}: {replayed} events replayed, up to {last_id[0]}")
    say("  (from the SQLite event log: the same replay works after a server restart)")
    tally.lines.append(
        f"WatchEvents: {sum(types.values())} events ({len(types)} types), "
        f"resume from last-event-id replayed {replayed}"
    )
    return tally


async def _stay(address: str, token: str, *, web: bool) -> None:
    """Keep the server up after the tour until Ctrl-C (SIGINT) or SIGTERM."""
    where = f"the console at http://{address}/ (token {token})" if web else address
    say(f"\nthe server stays up: {where}; Ctrl-C stops it")
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m puregrpc_streaming.demo",
        description="The streaming.v1 demo (make demo): starts puregrpc-streaming serve on a "
        "temporary data directory and calls all ten RPCs, authenticated, with progress.",
    )
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="dataset rows to seed")
    parser.add_argument("--size-mib", type=int, default=DEFAULT_SIZE_MIB, help="file to transfer")
    parser.add_argument(
        "--no-web",
        dest="web",
        action="store_false",
        help="do not serve the browser console (serve --web)",
    )
    parser.add_argument(
        "--stay",
        action="store_true",
        help="keep the server running after the tour, for the browser console, until Ctrl-C",
    )
    return parser.parse_args(argv)


async def main(argv: list[str]) -> None:
    """Run the whole demo: server, tour, summary, clean stop."""
    args = _parse_args(argv)
    rows, size = args.rows, args.size_mib << 20
    say("puregrpc streaming demo: streaming.v1.StreamingService, 10 RPCs, 4 call types")
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="puregrpc-streaming-demo-"))
    data_dir = work / "data"
    try:
        tokens_file = work / "tokens.txt"
        tokens = write_tokens(tokens_file)
        say(f"bearer tokens for {', '.join(USERS)} (ops: role admin), fresh in {tokens_file.name}")
        async with running_server(data_dir, rows, tokens_file, web=args.web) as server:
            say(f"{server.address}: listening after {server.startup:.1f} s")
            if args.web:
                say(f"browser console: http://{server.address}/ (token for ops: {tokens['ops']})")
            if rows != 1_000_000:
                say(
                    f"(dataset of {rows:,} rows instead of the default 1,000,000, so streaming "
                    "all of it stays short; --rows 1000000 for the full size)"
                )
            tally = await tour(server.address, work, rows, size, tokens)
            if args.stay:
                await _stay(server.address, tokens["ops"], web=args.web)
    finally:
        await trio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))
    removed = not await trio.Path(work).exists()
    say("temporary data dir removed" if removed else f"could not remove {work}")
    busy = sum(tally.seconds.values())
    total_messages = sum(tally.messages.values())
    say("\nsummary")
    for line in tally.lines:
        say(f"  {line}")
    say(f"  bytes: {format_bytes(size)} up, {format_bytes(size)} down")
    say(
        f"  messages: {total_messages:,} over all RPCs in {busy:.1f} s of calls "
        f"({total_messages / busy:,.0f} messages/s)"
    )
    say(f"  checksums verified: {tally.checksums_verified}")
    rpcs = sorted(name for name in tally.messages if tally.messages[name])
    say(f"  RPCs exercised: {len(rpcs)}/10 ({', '.join(rpcs)})")
    say(f"  total time {time.perf_counter() - began:.1f} s")


def run(argv: list[str] | None = None) -> int:
    """Run the demo; return the exit status.

    A failed call or a server that does not start is reported in one line;
    anything else (a bug) keeps its traceback.
    """
    try:
        trio.run(main, list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except BaseException as raised:
        exc = unwrap_group(raised)
        if isinstance(exc, RpcError | RuntimeError | OSError | TransferError):
            print(f"demo failed: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(run())
