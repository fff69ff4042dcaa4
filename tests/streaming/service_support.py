"""Shared pieces of the streaming service tests (``test_service_*.py``).

* :func:`running` starts the real service (:func:`open_server`) on
  127.0.0.1:0 with a temporary data dir and a small dataset;
* :func:`grpcio_stubs` generates grpcio's ``streaming_pb2_grpc`` from
  ``proto/streaming/v1/streaming.proto`` with grpc_tools at test time, bound to
  the checked-in ``streaming_pb2`` (one descriptor pool entry, no clash);
* helpers to upload, to run blocking grpcio calls in a thread, and to list the
  files a data dir holds.

A module with a unique name, imported by the test files (conftest would
collide with other test directories' conftest files).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import grpc
import pytest
import trio
import trustme

from puregrpc.client import CallOptions, Channel, ChannelOptions
from puregrpc_streaming.progress import Progress
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub
from puregrpc_streaming.server import RunningServer, ServeConfig, open_server

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto" / "streaming" / "v1" / "streaming.proto"
#: Rows of the test dataset (small: seeding is per test).
ROWS = 5_000


@dataclass
class Served:
    """A running service and a puregrpc client to it."""

    running: RunningServer
    channel: Channel
    stub: StreamingServiceStub
    config: ServeConfig

    @property
    def address(self) -> str:
        """``HOST:PORT``."""
        return self.running.address


@asynccontextmanager
async def running(
    data_dir: Path,
    *,
    deadlines: dict[str, float] | None = None,
    token: str | None = None,
    **overrides: Any,
) -> AsyncIterator[Served]:
    """The service on a free loopback port, and a channel to it (calling with
    bearer ``token``, if given: one of the ``tokens`` override's)."""
    settings: dict[str, Any] = {"dataset_rows": ROWS, "heartbeat_interval": 0.3}
    settings.update(overrides)
    config = ServeConfig(data_dir=data_dir, **settings)
    metadata = [("authorization", f"Bearer {token}")] if token is not None else None
    options = ChannelOptions(call_defaults=CallOptions(metadata=metadata))
    async with (
        open_server(config, deadlines=deadlines) as live,
        Channel(live.address, options=options) as channel,
    ):
        yield Served(
            running=live, channel=channel, stub=StreamingServiceStub(channel), config=config
        )


@functools.cache
def _generate_grpcio_module(out_dir: str) -> ModuleType:
    staging = Path(out_dir) / "src" / "puregrpc_streaming" / "protos"
    staging.mkdir(parents=True)
    shutil.copy(PROTO, staging / "streaming.proto")
    out = Path(out_dir) / "out"
    out.mkdir()
    # Staged as puregrpc_streaming/protos/streaming.proto, the path the
    # checked-in streaming_pb2 was built from: the generated module then
    # imports that one, and the descriptor pool sees one file, not two.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{Path(out_dir) / 'src'}",
            f"--grpc_python_out={out}",
            str(staging / "streaming.proto"),
        ],
        check=True,
        timeout=60,
    )
    path = out / "puregrpc_streaming" / "protos" / "streaming_pb2_grpc.py"
    spec = importlib.util.spec_from_file_location("streaming_v1_pb2_grpc", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def grpcio_stubs(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """grpcio's generated ``streaming_pb2_grpc`` (``StreamingServiceStub`` etc.)."""
    return _generate_grpcio_module(str(tmp_path_factory.mktemp("grpcio_streaming")))


@asynccontextmanager
async def grpcio_stub(stubs: ModuleType, address: str) -> AsyncIterator[Any]:
    """A grpcio stub on a fresh channel to ``address`` (closed after the block)."""
    channel = grpc.insecure_channel(address)
    try:
        yield stubs.StreamingServiceStub(channel)
    finally:
        channel.close()


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking (grpcio) call in a worker thread, bounded in time."""
    with trio.fail_after(30):
        return await trio.to_thread.run_sync(functools.partial(fn, *args))


def chunks_of(data: bytes, filename: str, size: int = 64 * 1024) -> list[pb.FileChunk]:
    """``data`` as upload chunks with contiguous offsets."""
    return [
        pb.FileChunk(content=data[i : i + size], offset=i, total_size=len(data), filename=filename)
        for i in range(0, max(len(data), 1), size)
    ]


async def upload(stub: StreamingServiceStub, data: bytes, filename: str = "f.bin") -> str:
    """Upload ``data``; check the answer; return the file id."""
    response = await stub.UploadFile(chunks_of(data, filename))
    assert response.size == len(data)
    assert response.checksum == hashlib.sha256(data).hexdigest()
    return response.file_id


def files_in(data_dir: Path) -> list[str]:
    """Every file under ``data_dir/files`` (relative paths, sorted), but instance locks.

    A running server holds ``tmp/<instance>.lock``: that is not a file it stores.
    """
    root = data_dir / "files"
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not (p.parent.name == "tmp" and p.suffix == ".lock")
    )


def sha256(parts: Iterable[bytes]) -> str:
    """Hex sha256 of the concatenation of ``parts``."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


async def wait_until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    """Poll ``condition`` every 10 ms until true; fail after ``limit`` seconds.

    Polling, because the conditions are counters of the server under test,
    which has no event to wait on.
    """
    with trio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - see the docstring
            await trio.sleep(0.01)


def write_leaf(cert: trustme.LeafCert, directory: Path, stem: str) -> tuple[Path, Path]:
    """Write a trustme leaf certificate (chain) and its key as ``stem.pem``/``stem.key``."""
    cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    return cert_file, key_file


async def stored_metrics(served: Served) -> list[tuple[str, float, str]]:
    """Every row of the metrics table (name, value, labels JSON), in insertion order."""

    def read(conn: sqlite3.Connection) -> list[tuple[str, float, str]]:
        return conn.execute("SELECT name, value, labels FROM metrics ORDER BY id").fetchall()

    return await served.running.backends.database.run(read)


class Relay:
    """A TCP relay from a loopback port to ``upstream``; :meth:`cut` breaks its connections."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0
        self._scopes: list[trio.CancelScope] = []

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._relay, listeners)

    def cut(self) -> None:
        """Drop every connection now (the client sees its calls fail)."""
        for scope in self._scopes:
            scope.cancel()
        self._scopes.clear()

    async def _relay(self, client: trio.SocketStream) -> None:
        self.connections += 1
        with trio.CancelScope() as scope:
            self._scopes.append(scope)
            upstream = await trio.open_tcp_stream("127.0.0.1", self.upstream_port)
            async with client, upstream, trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, client, upstream)
                nursery.start_soon(self._pump, upstream, client)
        # Closing the sockets (above) is what the peers notice as the failure.

    @staticmethod
    async def _pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
        try:
            while data := await source.receive_some(65536):
                await sink.send_all(data)
        except trio.BrokenResourceError:
            pass


class Trigger(Progress):
    """Runs ``action`` once, when ``fraction`` of the transfer is done."""

    def __init__(self, fraction: float, action: object) -> None:
        super().__init__("test", stream=io.StringIO())
        self._fraction = fraction
        self._action = action
        self.fired_at: int | None = None

    def advance(self, count: int) -> None:
        super().advance(count)
        if self.fired_at is None and self.total and self.done >= self.total * self._fraction:
            self.fired_at = self.done
            assert callable(self._action)
            self._action()
