"""Reconnection: downloads resume from the last offset, watches from the last event id.

The connection is really broken: the client talks to the server through a
small TCP relay on loopback whose :meth:`Relay.cut` closes every connection
it carries, as a network failure would; or the server process is killed
(SIGKILL) mid-download and started again. Downloads are also interrupted by
cancelling them (a killed client) and resumed by a second run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from service_support import Relay, Trigger

from puregrpc import RpcError, StatusCode
from puregrpc_streaming.cli import amain
from puregrpc_streaming.client_helpers import (
    EventWatcher,
    RetryPolicy,
    download_file,
    open_channel,
    part_path,
    upload_file,
)
from puregrpc_streaming.protos import streaming_pb2
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub
from puregrpc_streaming.server import ServeConfig, serve

FAST_RETRY = RetryPolicy(attempts=20, initial_backoff=0.05, max_backoff=0.3)


async def _start_server(nursery: trio.Nursery, data_dir: Path) -> tuple[str, int]:
    config = ServeConfig(data_dir=data_dir, dataset_rows=100, heartbeat_interval=30)
    address: str = await nursery.start(serve, config)
    return address, int(address.rpartition(":")[2])


async def _upload_random(stub: StreamingServiceStub, path: Path, size: int) -> tuple[str, str]:
    data = os.urandom(size)
    await trio.Path(path).write_bytes(data)
    result = await upload_file(stub, path)
    return result.file_id, hashlib.sha256(data).hexdigest()


async def _file_behind_a_relay(
    nursery: trio.Nursery, tmp_path: Path, size: int
) -> tuple[Relay, str, str]:
    """A server with a random file of ``size`` bytes (``src.bin``), reached through a relay."""
    address, port = await _start_server(nursery, tmp_path / "data")
    relay = Relay(port)
    await nursery.start(relay.run)
    async with open_channel(address) as direct:
        file_id, sha256 = await _upload_random(
            StreamingServiceStub(direct), tmp_path / "src.bin", size
        )
    return relay, file_id, sha256


async def test_download_reconnects_after_the_connection_breaks_and_resumes(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    relay, file_id, sha256 = await _file_behind_a_relay(nursery, tmp_path, 24 << 20)
    retries: list[RpcError] = []
    trigger = Trigger(0.3, relay.cut)

    with trio.fail_after(30):
        async with open_channel(f"127.0.0.1:{relay.port}") as channel:
            result = await download_file(
                StreamingServiceStub(channel),
                file_id,
                tmp_path / "copy.bin",
                expected_sha256=sha256,
                retry=FAST_RETRY,
                progress=trigger,
                on_retry=lambda error, delay: retries.append(error),
            )

    assert trigger.fired_at is not None and trigger.fired_at < 24 << 20
    assert result.reconnects >= 1 and relay.connections >= 2
    assert retries[0].code is StatusCode.UNAVAILABLE
    assert result.checksum_verified and result.size == 24 << 20
    assert hashlib.sha256((tmp_path / "copy.bin").read_bytes()).hexdigest() == sha256


async def test_a_download_cancelled_as_it_reconnects_keeps_every_byte_received(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # The cancel lands in the flush before the retry's backoff, while up to
    # a block (1 MiB) of what was received is still collected for the writer.
    relay, file_id, _ = await _file_behind_a_relay(nursery, tmp_path, 24 << 20)
    dest = tmp_path / "copy.bin"
    trigger = Trigger(0.3, relay.cut)
    with trio.fail_after(30), trio.CancelScope() as scope:
        async with open_channel(f"127.0.0.1:{relay.port}") as channel:
            await download_file(
                StreamingServiceStub(channel),
                file_id,
                dest,
                retry=FAST_RETRY,
                progress=trigger,
                on_retry=lambda error, delay: scope.cancel(),
            )
    assert scope.cancelled_caught and trigger.fired_at is not None
    kept = part_path(dest).read_bytes()
    assert len(kept) == trigger.done, f"{trigger.done - len(kept):,} bytes received and lost"
    assert (tmp_path / "src.bin").read_bytes().startswith(kept)


async def test_a_cancelled_download_keeps_its_part_and_the_cli_resumes_it(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    address, _ = await _start_server(nursery, tmp_path / "data")
    dest = tmp_path / "copy.bin"
    async with open_channel(address) as channel:
        stub = StreamingServiceStub(channel)
        file_id, sha256 = await _upload_random(stub, tmp_path / "src.bin", 8 << 20)
        with trio.CancelScope() as scope:
            trigger = Trigger(0.4, scope.cancel)
            await download_file(stub, file_id, dest, progress=trigger)
    assert scope.cancelled_caught
    kept = part_path(dest).stat().st_size
    assert 0 < kept < 8 << 20
    assert not dest.exists()

    out, err = io.StringIO(), io.StringIO()
    with trio.fail_after(20):
        code = await amain(
            ["download", file_id, "-o", str(dest), "--sha256", sha256, "--target", address],
            stdin=io.StringIO(),
            stdout=out,
            stderr=err,
        )

    assert code == 0, err.getvalue()
    assert "resuming from" in err.getvalue()
    assert "(verified)" in out.getvalue()
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha256


async def _spawn_server(data_dir: Path, port: int) -> tuple[trio.Process, int]:
    """``python -m puregrpc_streaming serve`` on ``port``; returns it and its bound port."""
    process = await trio.lowlevel.open_process(
        [
            *(sys.executable, "-m", "puregrpc_streaming", "serve", "--port", str(port)),
            *("--data-dir", str(data_dir), "--dataset-rows", "100", "--log-level", "ERROR"),
        ],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    first = b""
    with trio.fail_after(20):
        while not first.endswith(b"\n"):
            data = await process.stdout.receive_some(100)
            assert data, f"the server exited before listening: {first!r}"
            first += data
    assert first.startswith(b"listening on 127.0.0.1:"), first
    return process, int(first.decode().strip().rpartition(":")[2])


async def test_download_survives_a_server_crash_and_restart(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    processes: list[trio.Process] = []
    restarted = trio.Event()
    try:
        first, port = await _spawn_server(data_dir, 0)
        processes.append(first)
        address = f"127.0.0.1:{port}"
        async with open_channel(address) as direct:
            file_id, sha256 = await _upload_random(
                StreamingServiceStub(direct), tmp_path / "src.bin", 24 << 20
            )

        async def restart() -> None:
            # Same port, same data dir: the stored file survives the restart.
            second, _ = await _spawn_server(data_dir, port)
            processes.append(second)
            restarted.set()

        def crash() -> None:
            first.kill()  # SIGKILL mid-download: no graceful shutdown at all
            nursery.start_soon(restart)

        trigger = Trigger(0.3, crash)
        with trio.fail_after(30):
            async with open_channel(address) as channel:
                result = await download_file(
                    StreamingServiceStub(channel),
                    file_id,
                    tmp_path / "copy.bin",
                    expected_sha256=sha256,
                    retry=FAST_RETRY,
                    progress=trigger,
                )
    finally:
        for process in processes:
            process.kill()
            with trio.move_on_after(5):
                await process.wait()

    assert restarted.is_set()
    assert result.reconnects >= 1
    assert result.checksum_verified and result.size == 24 << 20
    assert hashlib.sha256((tmp_path / "copy.bin").read_bytes()).hexdigest() == sha256


async def test_a_failed_download_raises_after_its_retries(tmp_path: Path) -> None:
    policy = RetryPolicy(attempts=2, initial_backoff=0.01, max_backoff=0.02)
    with trio.fail_after(20):
        async with open_channel("127.0.0.1:1") as channel:
            with pytest.raises(RpcError) as failure:
                await download_file(
                    StreamingServiceStub(channel), "abc", tmp_path / "x", retry=policy
                )
    assert failure.value.code is StatusCode.UNAVAILABLE


async def test_watch_reconnects_and_resumes_from_the_last_event_id(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    address, port = await _start_server(nursery, tmp_path / "data")
    relay = Relay(port)
    relay_port = await nursery.start(relay.run)
    received: list[streaming_pb2.Event] = []
    progressed = trio.Condition()

    changes = 0

    async def publish(direct: StreamingServiceStub, tag: str) -> None:
        # A sync.changed event: everyone's to see (the watcher, on a
        # connection of its own, is another anonymous caller than this one).
        nonlocal changes
        changes += 1
        with trio.fail_after(5):
            async with direct.SyncData() as sync:
                await sync.send(streaming_pb2.SyncRequest(key=f"{tag}#{changes}", value=b"1"))
                # The write's own CHANGE may come before its ACK: skip to the ACK.
                while (ack := await sync.receive()) is not None:
                    if ack.kind != streaming_pb2.SyncResponse.CHANGE:
                        break
                assert ack is not None and ack.kind == streaming_pb2.SyncResponse.ACK
                await sync.done_writing()

    async def wait_for(count: int) -> None:
        async with progressed:
            while len(received) < count:
                await progressed.wait()

    async with (
        open_channel(address) as direct_channel,
        open_channel(f"127.0.0.1:{relay_port}") as channel,
    ):
        direct = StreamingServiceStub(direct_channel)
        watcher = EventWatcher(
            StreamingServiceStub(channel), event_types=["sync.changed"], retry=FAST_RETRY
        )

        async def watch() -> None:
            events = watcher.events()
            try:
                async for event in events:
                    async with progressed:
                        received.append(event)
                        progressed.notify_all()
            finally:
                await events.aclose()

        with trio.fail_after(20):
            async with trio.open_nursery() as inner:
                inner.start_soon(watch)
                # The watcher is subscribed once it sees a live event.
                while not received:
                    await publish(direct, "warmup")
                    with trio.move_on_after(0.2):
                        await wait_for(1)
                base = len(received)
                for tag in ("m1", "m2"):
                    await publish(direct, tag)
                await wait_for(base + 2)
                relay.cut()
                # Published while the watcher is disconnected: must be replayed.
                for tag in ("m3", "m4"):
                    await publish(direct, tag)
                await wait_for(base + 4)
                await publish(direct, "m5")  # live again
                await wait_for(base + 5)
                inner.cancel_scope.cancel()

    names = [json_name(event) for event in received[base:]]
    assert names == ["m1", "m2", "m3", "m4", "m5"]
    ids = [event.id for event in received]
    assert len(set(ids)) == len(ids), "an event was delivered twice"
    assert watcher.reconnects >= 1 and relay.connections >= 2


def json_name(event: streaming_pb2.Event) -> str:
    """The tag a ``sync.changed`` event is about (its key is ``TAG#N``)."""
    return str(json.loads(event.payload)["key"]).partition("#")[0]
