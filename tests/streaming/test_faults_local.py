"""Faults around the service (issue #17): a bad ``.part`` on the client, a read-only
data directory, a database another process keeps locked.

Each ends in a clear error and loses nothing: the stored file, the data
directory and the database are as they were, and the next try succeeds.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from fault_support import can_obey_permissions, obey_permissions, serve_command, stored_records
from service_support import running, upload

from puregrpc import RpcError, StatusCode
from puregrpc_streaming.client_helpers import TransferError, download_file, part_path
from puregrpc_streaming.protos import streaming_pb2 as pb

SIZE = 1 << 20


async def test_a_corrupt_truncated_or_overlong_part_file(tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    digest = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "copy.bin"
    part = part_path(dest)
    async with running(tmp_path / "data") as served:
        file_id = await upload(served.stub, data, "f.bin")
        # Corrupt: half the file's length, wrong bytes. Caught by the checksum at
        # the end; the .part goes (resuming it would not help).
        part.write_bytes(b"\0" * (SIZE // 2))
        with pytest.raises(TransferError, match="checksum mismatch"):
            await download_file(served.stub, file_id, dest)
        assert not part.exists() and not dest.exists()
        # Truncated (a good prefix, shorter than it was): resumes from there.
        part.write_bytes(data[:12345])
        result = await download_file(served.stub, file_id, dest, expected_sha256=digest)
        assert result.resumed_from == 12345 and dest.read_bytes() == data
        # Longer than the file: not a partial copy of it; said so, nothing removed.
        dest.unlink()
        part.write_bytes(data + b"extra")
        with pytest.raises(TransferError, match="not a partial copy of this file"):
            await download_file(served.stub, file_id, dest)
        assert part.read_bytes() == data + b"extra"
        # The server's file was never at risk.
        part.unlink()
        result = await download_file(served.stub, file_id, dest)
        assert result.checksum_verified and dest.read_bytes() == data


@pytest.mark.skipif(not can_obey_permissions(), reason="cannot drop root's permission override")
def test_a_read_only_data_directory_is_a_clear_error_and_nothing_changes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    async def fill() -> str:
        async with running(data_dir) as served:
            return await upload(served.stub, b"precious", "keep.txt")

    file_id = trio.run(fill)
    before = {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}
    for path in [data_dir, *data_dir.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        done = subprocess.run(
            serve_command(data_dir, 0),
            preexec_fn=obey_permissions,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        for path in [data_dir, *data_dir.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"error: data directory {data_dir} is not usable: Permission denied (read-only?)"
    ), done.stderr
    assert {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()} == before
    assert list(stored_records(data_dir)) == [file_id]


_LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


async def test_a_database_locked_by_another_process(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with running(data_dir, sql_busy_timeout=0.3) as served:
        stub = served.stub
        async with stub.SyncData(timeout=10) as call:
            await call.send(pb.SyncRequest(key="k", value=b"v1", change_id="a"))
            assert (await call.receive()).version == 1  # type: ignore[union-attr]
        locker = await trio.lowlevel.open_process(
            [sys.executable, "-c", _LOCKER, str(data_dir / "streaming.sqlite3")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert locker.stdin is not None and locker.stdout is not None
        try:
            with trio.fail_after(10):
                said = b""
                while not said.endswith(b"\n"):
                    said += await locker.stdout.receive_some()
                assert said == b"locked\n"
                # Writes wait 0.3 s for the lock, then fail clearly; nothing half done.
                with pytest.raises(RpcError) as locked:
                    async with stub.SyncData(timeout=10) as call:
                        await call.send(
                            pb.SyncRequest(key="k", value=b"v2", base_version=1, change_id="b")
                        )
                        await call.receive()
                assert locked.value.code is StatusCode.UNAVAILABLE
                assert "database is locked by another process" in locked.value.details
                assert "nothing was written; retry" in locked.value.details
                with pytest.raises(RpcError) as metrics:
                    await stub.CollectMetrics([pb.Metric(name="m", value=1.0)] * 10)
                assert metrics.value.code is StatusCode.UNAVAILABLE
                # Reads go on (WAL: the lock holder does not block readers).
                record = await stub.GetData(pb.GetDataRequest(key="k"))
                assert (record.version, record.value) == (1, b"v1")
        finally:
            with trio.CancelScope(shield=True):
                await locker.stdin.send_all(b"\n")
                with trio.move_on_after(5):
                    await locker.wait()
                if locker.returncode is None:
                    locker.kill()
                    await locker.wait()
        # The lock gone, the same write succeeds: it was not applied before.
        async with stub.SyncData(timeout=10) as call:
            await call.send(pb.SyncRequest(key="k", value=b"v2", base_version=1, change_id="c"))
            response = await call.receive()
        assert response is not None and response.kind == pb.SyncResponse.Kind.ACK
        assert response.version == 2
        summary = await stub.CollectMetrics([pb.Metric(name="m", value=1.0)] * 10)
        assert summary.total_count == 10
