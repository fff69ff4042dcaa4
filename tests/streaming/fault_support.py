"""Servers in subprocesses for the fault tests: killed with SIGKILL, limited, restarted."""

from __future__ import annotations

import ctypes
import json
import os
import resource
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from puregrpc_streaming.client_helpers import open_channel
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

#: The operator's bearer token (role admin: InteractiveQuery reads every table).
ADMIN_TOKEN = "fault-test-admin-token"
USER_TOKEN = "fault-test-user-token"


def free_port() -> int:
    """A loopback port free right now (a restarted server takes the same one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A ``puregrpc-streaming serve`` subprocess."""

    process: trio.Process
    address: str
    #: What it wrote on stderr so far (logs), filled by a background task.
    stderr: bytearray = field(default_factory=bytearray)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no graceful anything."""
        if self.process.returncode is None:
            self.process.kill()

    def log(self) -> str:
        """The server's log so far."""
        return self.stderr.decode(errors="replace")


def serve_command(data_dir: Path, port: int, *extra: str) -> list[str]:
    """The command line of a server on ``data_dir`` with the test tokens."""
    return [
        sys.executable,
        "-m",
        "puregrpc_streaming",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--dataset-rows",
        "200",
        "--token",
        f"{ADMIN_TOKEN}:ops:admin",
        "--token",
        f"{USER_TOKEN}:alice",
        *extra,
    ]


@asynccontextmanager
async def server_process(
    data_dir: Path,
    *extra: str,
    port: int = 0,
    preexec: Callable[[], None] | None = None,
) -> AsyncIterator[ServerProcess]:
    """Run a server until the block ends (then SIGKILL it if it still runs)."""
    process = await trio.lowlevel.open_process(
        serve_command(data_dir, port, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=preexec,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        async with trio.open_nursery() as nursery:
            line = bytearray()
            with trio.fail_after(30):
                while b"\n" not in line:
                    chunk = await process.stdout.receive_some()
                    if not chunk:
                        raise RuntimeError(f"the server did not start: {bytes(line)!r}")
                    line += chunk
            first = bytes(line).split(b"\n")[0].decode()
            assert first.startswith("listening on "), first
            served = ServerProcess(process, first.removeprefix("listening on ").strip())

            async def drain(stream: trio.abc.ReceiveStream, into: bytearray | None) -> None:
                while chunk := await stream.receive_some():
                    if into is not None:
                        into += chunk

            nursery.start_soon(drain, process.stdout, None)
            nursery.start_soon(drain, process.stderr, served.stderr)
            try:
                yield served
            finally:
                served.kill()
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    await process.wait()
                nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


@asynccontextmanager
async def admin_stub(address: str) -> AsyncIterator[StreamingServiceStub]:
    """A stub calling ``address`` as the operator (role admin)."""
    async with open_channel(address, token=ADMIN_TOKEN) as channel:
        yield StreamingServiceStub(channel)


async def wait_for_exit(server: ServerProcess) -> None:
    """Until the killed server's process is gone (bounded)."""
    with trio.fail_after(10):
        await server.process.wait()


def stored_records(data_dir: Path) -> dict[str, dict[str, object]]:
    """The file store on disk: file id -> its JSON record (``.data`` without ``.json``
    or the reverse fails the caller's assertions through the ``orphans`` key)."""
    root = data_dir / "files"
    records: dict[str, dict[str, object]] = {}
    datas = {p.stem for p in root.glob("*.data")}
    metas = {p.stem for p in root.glob("*.json")}
    for file_id in metas & datas:
        records[file_id] = json.loads((root / f"{file_id}.json").read_text())
    if datas ^ metas:
        records["orphans"] = {"ids": sorted(datas ^ metas)}
    return records


def unfinished_uploads(data_dir: Path) -> list[str]:
    """Temporary upload files under ``files/tmp`` (instance locks aside)."""
    tmp = data_dir / "files" / "tmp"
    return sorted(p.name for p in tmp.iterdir() if p.suffix != ".lock") if tmp.exists() else []


def query_db(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of ``sql`` on the server's database, read directly (the server stopped)."""
    conn = sqlite3.connect(data_dir / "streaming.sqlite3")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def limit_file_size(limit: int) -> Callable[[], None]:
    """A ``preexec_fn``: files of the process may not grow past ``limit`` bytes.

    Python ignores SIGXFSZ, so a write past the limit fails with EFBIG, as a
    full disk fails one with ENOSPC.
    """

    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


_PR_CAPBSET_DROP = 24
#: CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER: what lets root ignore permissions.
_PERMISSION_CAPS = (1, 2, 3)


def obey_permissions() -> None:
    """A ``preexec_fn``: even as root, the process obeys file permissions.

    Drops the capabilities that let root write read-only directories from
    the bounding set, so the exec'd program never regains them. Raises
    OSError where that is not allowed (then the caller skips).
    """
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _PERMISSION_CAPS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def can_obey_permissions() -> bool:
    """Whether :func:`obey_permissions` works here (it needs CAP_SETPCAP as root)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", "pass"], preexec_fn=obey_permissions, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0
