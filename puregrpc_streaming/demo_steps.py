"""The steps of the demo (:mod:`puregrpc_streaming.demo`): one function per RPC or two.

Each step calls the server through the client helpers, prints what happens
with :func:`say`, and adds what it moved to the :class:`Tally` of the summary.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from puregrpc import RpcError, StatusCode

from .client_helpers import (
    RetryPolicy,
    download_file,
    open_channel,
    part_path,
    upload_file,
)
from .progress import Progress, format_bytes
from .protos import streaming_pb2
from .protos.streaming_puregrpc import StreamingServiceStub

__all__ = [
    "Tally",
    "say",
    "step_access",
    "step_batch",
    "step_chat",
    "step_download",
    "step_list",
    "step_metrics",
    "step_query",
    "step_sync_and_get",
    "step_upload",
]

Kind = streaming_pb2.SyncResponse.Kind


def say(text: str = "") -> None:
    """One line of the demo's output."""
    print(text, flush=True)


@dataclass
class Tally:
    """What the demo moved, for the summary."""

    #: RPC name -> messages sent plus received on its calls.
    messages: Counter[str] = field(default_factory=Counter)
    #: Seconds spent in calls of each RPC.
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    checksums_verified: int = 0
    lines: list[str] = field(default_factory=list)

    @asynccontextmanager
    async def timing(self, rpc: str) -> AsyncIterator[None]:
        """Add the time spent in the block to ``rpc``'s seconds."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[rpc] += time.perf_counter() - started


# ------------------------------------------------------------------- steps


class _Interrupting(Progress):
    """A progress display that cancels ``scope`` once ``fraction`` is done."""

    def __init__(self, label: str, scope: trio.CancelScope, fraction: float) -> None:
        super().__init__(label, stream=sys.stdout)
        self._scope = scope
        self._fraction = fraction

    def advance(self, count: int) -> None:
        super().advance(count)
        if self.total and self.done >= self.total * self._fraction:
            self._scope.cancel()


async def step_upload(
    stub: StreamingServiceStub, work: Path, size: int, tally: Tally
) -> tuple[str, str, float]:
    """UploadFile: a file of ``size`` random bytes; returns (file_id, sha256, MB/s)."""
    source = work / "demo-data.bin"

    def make() -> str:
        hasher = hashlib.sha256()
        with source.open("wb") as file:
            for _ in range(size // (1 << 20)):
                block = os.urandom(1 << 20)
                hasher.update(block)
                file.write(block)
        return hasher.hexdigest()

    local = await trio.to_thread.run_sync(make)
    # A resumable upload (a session named by upload_id), cut off halfway by
    # the client, then resumed: the server answers how much it kept.
    session = secrets.token_urlsafe(12)
    with trio.CancelScope() as scope:
        interrupting = _Interrupting("  upload", scope, 0.5)
        async with tally.timing("UploadFile"):
            await upload_file(
                stub, source, progress=interrupting, call_timeout=120, upload_id=session
            )
    say(f"  interrupted: the client cancelled after sending {format_bytes(interrupting.done)}")
    async with tally.timing("UploadFile"):
        result = await upload_file(
            stub,
            source,
            progress=Progress("  resume", stream=sys.stdout),
            call_timeout=120,
            upload_id=session,
            retry=RetryPolicy(attempts=5),
        )
    tally.messages["UploadFile"] += result.chunks + 2
    assert result.checksum == local and result.resumed_from > 0
    tally.checksums_verified += 1
    rate = (result.size - result.resumed_from) / result.elapsed / 1e6
    say(
        f"  resumed: the server held {format_bytes(result.resumed_from)} of upload session "
        f"{session[:8]}…, the client sent the rest"
    )
    say(f"  file_id {result.file_id}: {format_bytes(result.size)}, sha256 {result.checksum[:16]}…")
    say("  the server's sha256 (over the whole file) equals the one computed locally")
    tally.lines.append(
        f"UploadFile: {format_bytes(result.size)}, interrupted at "
        f"{format_bytes(interrupting.done)} and resumed from the server's "
        f"{format_bytes(result.resumed_from)}, {rate:,.0f} MB/s, sha256 verified"
    )
    return result.file_id, local, rate


async def step_download(
    stub: StreamingServiceStub, work: Path, file_id: str, sha256: str, tally: Tally
) -> float:
    """DownloadFile: interrupted at 40 %, then resumed from the .part file."""
    dest = work / "demo-copy.bin"
    with trio.CancelScope() as scope:
        interrupting = _Interrupting("  download", scope, 0.4)
        async with tally.timing("DownloadFile"):
            await download_file(stub, file_id, dest, progress=interrupting)
    kept = part_path(dest).stat().st_size
    say(f"  interrupted: the client cancelled at {format_bytes(kept)}; {part_path(dest).name} kept")
    tally.messages["DownloadFile"] += 1 + kept // (64 * 1024)
    async with tally.timing("DownloadFile"):
        result = await download_file(
            stub,
            file_id,
            dest,
            expected_sha256=sha256,
            progress=Progress("  resume  ", stream=sys.stdout),
            retry=RetryPolicy(attempts=5),
        )
    tally.messages["DownloadFile"] += 1 + result.received // (64 * 1024)
    assert result.resumed_from == kept and result.checksum_verified
    tally.checksums_verified += 1
    rate = result.received / result.transfer_time / 1e6
    say(
        f"  resumed at offset {result.resumed_from:,}: {format_bytes(result.size)} total, "
        f"sha256 verified"
    )
    tally.lines.append(
        f"DownloadFile: {format_bytes(result.size)}, interrupted at {format_bytes(kept)} and "
        f"resumed, {rate:,.0f} MB/s, sha256 verified"
    )
    return rate


async def step_list(stub: StreamingServiceStub, rows: int, tally: Tally) -> None:
    """ListLargeDataset: the whole table in pages of 100, then a resume from a cursor."""
    received = 0
    middle_cursor = ""
    middle_id = 0
    progress = Progress("  list", stream=sys.stdout, unit="rows")
    progress.total = rows
    async with tally.timing("ListLargeDataset"):
        started = time.perf_counter()
        middle = rows // 2
        async for item in stub.ListLargeDataset(streaming_pb2.ListRequest(page_size=100)):
            received += 1
            if received == middle:
                middle_cursor, middle_id = item.cursor, item.id
            if not received % 1000:  # the display per thousand rows: rows are cheap
                progress.advance(1000)
        progress.advance(received % 1000)
        elapsed = time.perf_counter() - started
    progress.finish()
    tally.messages["ListLargeDataset"] += received + 1
    say(f"  {received:,} rows streamed in {elapsed:.1f} s ({received / elapsed:,.0f} rows/s)")
    resumed = stub.ListLargeDataset(streaming_pb2.ListRequest(start_cursor=middle_cursor))
    async with resumed:
        first = await resumed.receive()
    assert first is not None
    say(f"  resumed from the cursor of row {middle_id:,}: the next row is {first.id:,}")
    filtered = 0
    async with stub.ListLargeDataset(
        streaming_pb2.ListRequest(filter='category = "red" and value > 0.9')
    ) as call:
        async for _ in call:
            filtered += 1
            if filtered == 1000:
                break
    tally.messages["ListLargeDataset"] += filtered + 3
    say(f'  with filter category = "red" and value > 0.9: the first {filtered:,} rows')
    tally.lines.append(
        f"ListLargeDataset: {received:,} rows in {elapsed:.1f} s "
        f"({received / elapsed:,.0f} rows/s), cursor resume exact"
    )


async def step_metrics(stub: StreamingServiceStub, tally: Tally) -> None:
    """CollectMetrics: 20,000 labelled metrics, aggregated by the server."""
    count = 20_000
    hosts = ("web-1", "web-2", "db-1")

    def metrics() -> list[streaming_pb2.Metric]:
        batch = []
        for index in range(count):
            name = ("cpu", "memory_mb", "latency_ms")[index % 3]
            value = float((index * 7919) % 100)
            batch.append(
                streaming_pb2.Metric(name=name, value=value, labels={"host": hosts[index % 3]})
            )
        return batch

    async with tally.timing("CollectMetrics"):
        summary = await stub.CollectMetrics(metrics(), timeout=60)
    tally.messages["CollectMetrics"] += count + 1
    assert summary.total_count == count
    aggregates = summary.aggregates
    say(f"  total_count {summary.total_count:,}")
    for name in ("cpu", "latency_ms"):
        say(
            f"  {name}: count {aggregates.get(name + '#count', 0):,.0f}, "
            f"sum {aggregates.get(name, 0):,.0f}, min {aggregates.get(name + '#min', 0):g}, "
            f"max {aggregates.get(name + '#max', 0):g}, "
            f"mean {aggregates.get(name + '#mean', 0):.2f}"
        )
    tally.lines.append(f"CollectMetrics: {count:,} metrics aggregated, labels persisted")


async def step_batch(stub: StreamingServiceStub, tally: Tally) -> None:
    """BatchProcess: 2,000 items over five operations, three of them bad."""
    operations = ("uppercase", "reverse", "sha256", "word_count", "json_validate")
    # "sha" goes first: the summary's results map holds the first 1,000 items.
    items = [streaming_pb2.ProcessRequest(item_id="sha", operation="sha256", payload=b"puregrpc")]
    for index in range(2000):
        operation = operations[index % 5]
        payload = f'{{"n": {index}}}' if operation == "json_validate" else f"item number {index}"
        items.append(
            streaming_pb2.ProcessRequest(
                item_id=f"item-{index}", operation=operation, payload=payload.encode()
            )
        )
    items.append(
        streaming_pb2.ProcessRequest(item_id="bad-json", operation="json_validate", payload=b"{")
    )
    items.append(streaming_pb2.ProcessRequest(item_id="bad-op", operation="teleport", payload=b""))
    async with tally.timing("BatchProcess"):
        summary = await stub.BatchProcess(items, timeout=60)
    tally.messages["BatchProcess"] += len(items) + 1
    say(f"  total {summary.total:,}, succeeded {summary.succeeded:,}, failed {summary.failed}")
    for failure in summary.failures:
        say(f"  failed {failure.item_id} (#{failure.index}): {failure.error}")
    if summary.results.get("sha") == hashlib.sha256(b"puregrpc").hexdigest():
        tally.checksums_verified += 1
        say("  item 'sha': the server's sha256 of b'puregrpc' matches hashlib's")
    tally.lines.append(
        f"BatchProcess: {summary.total:,} items, {summary.succeeded:,} ok, "
        f"{summary.failed} failures reported per item"
    )


async def step_chat(address: str, tokens: dict[str, str], tally: Tally) -> None:
    """Chat: ann and bob in #lobby, cat in #ops; every member sees every message of its room.

    Each person calls with their own token: the server stamps their messages
    with the token's user (nobody declares a user-id).
    """
    people = {"ann": "lobby", "bob": "lobby", "cat": "ops"}
    script = {"ann": ["hi bob!"], "bob": ["hello ann"], "cat": ["quiet in here"]}
    ready = trio.Event()
    joined = 0
    seen: dict[str, list[str]] = {user: [] for user in people}

    async def member(user: str) -> None:
        room = people[user]
        expected = {
            f"{other}: {text}"
            for other, texts in script.items()
            for text in texts
            if people[other] == room
        }
        async with open_channel(address, token=tokens[user]) as channel:
            await chat_as(StreamingServiceStub(channel), user, room, expected)

    async def chat_as(stub: StreamingServiceStub, user: str, room: str, expected: set[str]) -> None:
        nonlocal joined
        call = stub.Chat(metadata=[("room-id", room)], timeout=20)
        async with call:
            # A round trip of our own first message proves we are in the room.
            await call.send(streaming_pb2.ChatMessage(room_id=room, content=f"{user} is here"))
            async for message in call:
                tally.messages["Chat"] += 1
                if message.user_id == user and message.content == f"{user} is here":
                    break
            joined += 1
            if joined == len(people):
                ready.set()
            await ready.wait()
            for text in script[user]:
                await call.send(streaming_pb2.ChatMessage(room_id=room, content=text))
                tally.messages["Chat"] += 1
            got: set[str] = set()
            async for message in call:
                tally.messages["Chat"] += 1
                line = f"{message.user_id}: {message.content}"
                if message.user_id != "system" and line in expected:
                    seen[user].append(f"#{message.room_id} {line}")
                    got.add(line)
                if got == expected:
                    break
            await call.done_writing()

    async with tally.timing("Chat"), trio.open_nursery() as nursery:
        for user in people:
            nursery.start_soon(member, user)
    for user, lines in seen.items():
        say(f"  {user} (#{people[user]}) received: " + "; ".join(lines))
    tally.lines.append("Chat: 3 users in 2 rooms, each saw exactly its room's messages")


async def step_access(address: str, tokens: dict[str, str], tally: Tally) -> None:
    """Who sees what: cat's replay of every chat message holds only #ops; no token, no call."""
    lines: list[str] = []
    async with open_channel(address, token=tokens["cat"]) as channel:
        stub = StreamingServiceStub(channel)
        call = stub.WatchEvents(
            streaming_pb2.WatchRequest(event_types=["chat.message"]),
            metadata=[("last-event-id", "0")],
        )
        with trio.fail_after(10):
            async with call:
                async for event in call:
                    tally.messages["WatchEvents"] += 1
                    if event.type == "heartbeat":
                        break  # sent once the replay has caught up
                    payload = json.loads(event.payload)
                    if payload["user_id"] != "system":
                        lines.append(
                            f"#{payload['room_id']} {payload['user_id']}: {payload['content']}"
                        )
    say(f"  cat replays every chat message from the start of the log: {'; '.join(lines)}")
    say("  (ann's and bob's #lobby messages are not for cat: they are for #lobby's members)")
    async with open_channel(address) as channel:
        try:
            await StreamingServiceStub(channel).GetData(
                streaming_pb2.GetDataRequest(key="color"), timeout=5
            )
        except RpcError as exc:
            say(f"  a call without a token -> {exc.code.name}: {exc.details}")
    assert lines and all(line.startswith("#ops ") for line in lines)
    tally.lines.append(
        "Identity: bearer tokens (chat senders are the tokens' users; no token: UNAUTHENTICATED);"
        " watchers see only their rooms"
    )


class _SyncClient:
    """One SyncData stream and the responses it has received."""

    def __init__(self, stub: StreamingServiceStub, name: str) -> None:
        self.name = name
        self.call = stub.SyncData(timeout=30)
        self._send, self._receive = trio.open_memory_channel[streaming_pb2.SyncResponse](100)

    async def pump(self) -> None:
        async for response in self.call:
            await self._send.send(response)

    async def change(self, request: streaming_pb2.SyncRequest) -> None:
        await self.call.send(request)

    async def expect(self, kind: int, key: str) -> streaming_pb2.SyncResponse:
        """The next response of ``kind`` about ``key`` (others are skipped)."""
        with trio.fail_after(5):
            while True:
                response = await self._receive.receive()
                if response.kind == kind and response.key == key:
                    return response


def _describe_sync(name: str, response: streaming_pb2.SyncResponse) -> str:
    kind = Kind.Name(response.kind)
    value = response.value.decode()
    return f"  {name} <- {kind} {response.key} = {value!r} (version {response.version})"


async def step_sync_and_get(stub: StreamingServiceStub, tally: Tally) -> None:
    """SyncData with two clients (a push, a conflict), then GetData reads the result."""
    alice, bob = _SyncClient(stub, "alice"), _SyncClient(stub, "bob")
    async with tally.timing("SyncData"), alice.call, bob.call, trio.open_nursery() as nursery:
        nursery.start_soon(alice.pump)
        nursery.start_soon(bob.pump)
        # Each stream proves it is registered with an ACK before the real changes.
        for client in (alice, bob):
            await client.change(
                streaming_pb2.SyncRequest(key=f"{client.name}.online", value=b"yes")
            )
            await client.expect(Kind.ACK, f"{client.name}.online")
        await alice.change(
            streaming_pb2.SyncRequest(key="color", value=b"blue", base_version=0, change_id="a1")
        )
        say(_describe_sync("alice", await alice.expect(Kind.ACK, "color")))
        pushed = await bob.expect(Kind.CHANGE, "color")
        say(_describe_sync("bob", pushed))
        await bob.change(
            streaming_pb2.SyncRequest(
                key="color", value=b"green", base_version=pushed.version, change_id="b1"
            )
        )
        say(_describe_sync("bob", await bob.expect(Kind.ACK, "color")))
        say(_describe_sync("alice", await alice.expect(Kind.CHANGE, "color")))
        # alice still believes version 1: her change conflicts and is not applied.
        await alice.change(
            streaming_pb2.SyncRequest(key="color", value=b"red", base_version=1, change_id="a2")
        )
        conflict = await alice.expect(Kind.CONFLICT, "color")
        say(_describe_sync("alice", conflict))
        for client in (alice, bob):
            await client.call.done_writing()
        nursery.cancel_scope.deadline = trio.current_time() + 5
    tally.messages["SyncData"] += 14
    async with tally.timing("GetData"):
        record = await stub.GetData(streaming_pb2.GetDataRequest(key="color"), timeout=5)
    tally.messages["GetData"] += 2
    say(f"GetData color -> {record.value.decode()!r} version {record.version}")
    try:
        await stub.GetData(streaming_pb2.GetDataRequest(key="no-such-key"), timeout=5)
    except RpcError as exc:
        say(f"GetData no-such-key -> {exc.code.name}: {exc.details}")
    assert record.value == b"green" and record.version == 2
    tally.lines.append("SyncData: 2 clients, change pushed, stale write reported as CONFLICT")
    tally.lines.append(
        f"GetData: color = 'green' at version {record.version}, unknown key NOT_FOUND"
    )


async def step_query(stub: StreamingServiceStub, tally: Tally) -> None:
    """InteractiveQuery: SELECTs stream rows; a DELETE is refused; the stream stays usable."""
    queries = [
        "SELECT count(*) AS n FROM dataset",
        "SELECT category, count(*) AS n, round(avg(value), 3) AS mean "
        "FROM dataset GROUP BY category ORDER BY category",
        "DELETE FROM dataset",
        "SELECT count(*) FROM kv",
        "SELECT id, category, value FROM dataset ORDER BY value DESC LIMIT 3",
    ]
    async with tally.timing("InteractiveQuery"), stub.InteractiveQuery(timeout=30) as call:
        for sql in queries:
            say(f"  sql> {sql}")
            await call.send(streaming_pb2.QueryRequest(query=sql))
            tally.messages["InteractiveQuery"] += 1
            while True:
                response = await call.receive()
                if response is None:
                    raise RpcError(StatusCode.INTERNAL, "the query stream ended early")
                tally.messages["InteractiveQuery"] += 1
                if response.error:
                    say(f"  error ({response.error_code}): {response.error}")
                elif response.data:
                    say(f"  {json.dumps(json.loads(response.data))}")
                if response.complete:
                    break
        await call.done_writing()
    tally.lines.append(
        "InteractiveQuery: 3 SELECTs streamed; a DELETE and a read of table kv refused;"
        " stream usable"
    )
