"""``puregrpc-streaming serve --workers 2``: two real server processes on one port and data dir."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

import pytest
import trio
from redis_support import RedisServer, redis_server

from puregrpc.client import CallOptions, Channel, ChannelOptions
from puregrpc.server import reuse_port_supported
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

pytestmark = pytest.mark.skipif(not reuse_port_supported(), reason="needs SO_REUSEPORT (Linux)")

__all__ = ["redis_server"]

COMMAND = [sys.executable, "-m", "puregrpc_streaming"]


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *argv], capture_output=True, text=True, timeout=60, check=False
    )


def test_two_workers_share_the_port_and_the_data_directory(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            *COMMAND,
            *("serve", "--workers", "2", "--port", "0", "--data-dir", str(tmp_path / "data")),
            *("--dataset-rows", "500"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.fullmatch(r"listening on (127\.0\.0\.1:\d+) \(2 workers\)\n", first)
        assert match, f"first line was {first!r}"
        address = match.group(1)
        source = tmp_path / "hello.txt"
        source.write_bytes(b"served by either worker\n" * 1000)
        upload = cli("upload", str(source), "--target", address)
        assert upload.returncode == 0, upload.stderr
        file_id = re.search(r"^file_id: (\S+)$", upload.stdout, re.MULTILINE)
        assert file_id
        # Each command is a new connection: the kernel spreads them over the
        # workers, and each worker finds the file the other stored.
        for attempt in range(4):
            copy = tmp_path / f"copy{attempt}"
            download = cli("download", file_id.group(1), "-o", str(copy), "--target", address)
            assert download.returncode == 0, download.stderr
            assert copy.read_bytes() == source.read_bytes()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert out == "server stopped\n"
    for worker in (0, 1):
        assert re.search(rf"worker {worker} \(pid \d+\) listening", err), err
    assert err.count("serving streaming.v1.StreamingService on") == 2
    assert "Traceback" not in err


#: Every client calls as user ops: a watcher sees the metrics summaries of
#: the others' connections (an anonymous caller sees its own connection's only).
TOKEN = "ops-token-0123456789"
AS_OPS = ChannelOptions(call_defaults=CallOptions(metadata=[("authorization", f"Bearer {TOKEN}")]))


async def test_with_redis_every_watcher_sees_every_worker_s_events(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with (tmp_path / "serve.log").open("wb") as log:
        await _watch_every_worker(tmp_path, redis_server, log)


async def _watch_every_worker(tmp_path: Path, redis_server: RedisServer, log: BinaryIO) -> None:
    process = await trio.lowlevel.open_process(
        [
            *COMMAND,
            *("serve", "--workers", "2", "--port", "0", "--data-dir", str(tmp_path / "data")),
            *("--dataset-rows", "500", "--redis-url", redis_server.url),
            *("--token", f"{TOKEN}:ops"),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        assert process.stdout is not None
        first = b""
        with trio.fail_after(60):
            while not first.endswith(b"\n"):
                chunk = await process.stdout.receive_some(1024)
                assert chunk, (tmp_path / "serve.log").read_text()
                first += chunk
        match = re.fullmatch(rb"listening on (127\.0\.0\.1:\d+) \(2 workers\)\n", first)
        assert match, first
        address = match.group(1).decode()
        seen: dict[int, list[str]] = {}

        async def watch(index: int, *, task_status: trio.TaskStatus[None]) -> None:
            # Its own connection: the kernel picks the worker.
            async with Channel(address, options=AS_OPS) as channel:
                stub = StreamingServiceStub(channel)
                request = pb.WatchRequest(event_types=["metrics.collected"])
                async with stub.WatchEvents(request) as call:
                    await call.initial_metadata()
                    task_status.started()
                    seen[index] = []
                    async for event in call:
                        seen[index].append(event.id)
                        if len(seen[index]) == 6:
                            return

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for index in range(6):
                    await nursery.start(watch, index)
                for value in range(6):  # each through a new connection too
                    async with Channel(address, options=AS_OPS) as channel:
                        metric = pb.Metric(name="cpu", value=float(value))
                        await StreamingServiceStub(channel).CollectMetrics([metric], timeout=10)
        # With the embedded bus a watcher would see only its own worker's events.
        assert len({tuple(ids) for ids in seen.values()}) == 1, seen
        assert len(seen[0]) == 6
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(60):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_workers_that_cannot_reach_redis_end_serve_with_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{unused.getsockname()[1]}/0"
        result = cli(
            *("serve", "--workers", "2", "--port", "0", "--data-dir", str(tmp_path / "data")),
            *("--dataset-rows", "10", "--redis-url", url),
        )
    assert result.returncode == 1, result.stderr
    assert "cannot start the event bus" in result.stderr
    assert "exited before it listened" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
