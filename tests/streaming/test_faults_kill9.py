"""kill -9 of the server in the middle of each kind of write, then a restart (issue #17).

Each test runs ``puregrpc-streaming serve`` as a subprocess, completes some
calls, starts one more, SIGKILLs the server while that call is halfway, and
starts a new server on the same data directory. Checked through the API and
on disk: no partial file is visible, no write is half applied, and every call
that completed before the kill has its data.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path

import pytest
import trio
from fault_support import (
    ADMIN_TOKEN,
    admin_stub,
    free_port,
    query_db,
    server_process,
    stored_records,
    unfinished_uploads,
    wait_for_exit,
)
from service_support import chunks_of

from puregrpc import RpcError, StatusCode
from puregrpc_streaming.cli import amain
from puregrpc_streaming.client_helpers import RetryPolicy, download_file, part_path, upload_file
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub


async def _upload(stub: StreamingServiceStub, data: bytes, name: str) -> str:
    response = await stub.UploadFile(chunks_of(data, name), timeout=20)
    assert response.checksum == hashlib.sha256(data).hexdigest()
    return response.file_id


async def _download(stub: StreamingServiceStub, file_id: str) -> bytes:
    request = pb.DownloadRequest(file_id=file_id)
    return b"".join([c.content async for c in stub.DownloadFile(request, timeout=20)])


async def test_kill_during_an_upload(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    done = os.urandom(300_000)
    doomed = chunks_of(os.urandom(8 << 20), "doomed.bin")
    async with server_process(data_dir) as server, admin_stub(server.address) as stub:
        kept_id = await _upload(stub, done, "done.bin")
        with pytest.raises(RpcError) as cut, trio.fail_after(20):
            async with stub.UploadFile(timeout=20) as call:
                for number, chunk in enumerate(doomed):
                    await call.send(chunk)
                    if number == len(doomed) // 2:
                        # Halfway, once the server is writing its temporary file.
                        while not unfinished_uploads(data_dir):  # noqa: ASYNC110
                            await trio.sleep(0.01)
                        server.kill()
                await call.done_writing()
                await call.response()
        assert cut.value.code is StatusCode.UNAVAILABLE
        await wait_for_exit(server)
    assert unfinished_uploads(data_dir), "the killed server left its temporary file"
    async with server_process(data_dir) as server, admin_stub(server.address) as stub:
        # The new instance removed what the dead one left; the finished file is whole.
        assert unfinished_uploads(data_dir) == []
        assert await _download(stub, kept_id) == done
    assert list(stored_records(data_dir)) == [kept_id]


async def test_kill_during_a_download(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data = os.urandom(6 << 20)
    port = free_port()
    dest = tmp_path / "copy.bin"
    async with server_process(data_dir, port=port) as server, admin_stub(server.address) as stub:
        file_id = await _upload(stub, data, "big.bin")
        request = pb.DownloadRequest(file_id=file_id)
        with pytest.raises(RpcError), trio.fail_after(20):
            received = 0
            async for chunk in stub.DownloadFile(request, timeout=20):
                received += len(chunk.content)
                if received >= len(data) // 3:
                    server.kill()
                    await wait_for_exit(server)
        before = stored_records(data_dir)
    # The stored file is untouched by a reader's death; the copy resumes.
    part_path(dest).write_bytes(data[: len(data) // 3])
    async with server_process(data_dir, port=port) as server, admin_stub(server.address) as stub:
        result = await download_file(
            stub, file_id, dest, retry=RetryPolicy(attempts=3, initial_backoff=0.05)
        )
    assert result.resumed_from == len(data) // 3 and result.checksum_verified
    assert dest.read_bytes() == data
    assert stored_records(data_dir) == before
    assert (data_dir / "files" / f"{file_id}.data").read_bytes() == data


async def test_kill_during_sync_writes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    acked: dict[str, tuple[int, bytes]] = {}
    in_flight: tuple[str, bytes] | None = None
    async with server_process(data_dir) as server, admin_stub(server.address) as stub:
        with pytest.raises(RpcError), trio.fail_after(20):
            async with stub.SyncData(timeout=20) as call:
                for number in range(200):
                    key = f"k{number % 5}"
                    value = f"{key}={number}".encode() * 50
                    base = acked.get(key, (0, b""))[0]
                    await call.send(
                        pb.SyncRequest(
                            key=key, value=value, base_version=base, change_id=str(number)
                        )
                    )
                    if number == 120:
                        in_flight = (key, value)
                        server.kill()  # this write may or may not have been applied
                    while True:
                        response = await call.receive()
                        assert response is not None
                        if response.change_id == str(number):
                            break
                    assert response.kind == pb.SyncResponse.Kind.ACK
                    acked[key] = (response.version, value)
        await wait_for_exit(server)
    assert in_flight is not None and len(acked) == 5
    async with server_process(data_dir) as server, admin_stub(server.address) as stub:
        found = {}
        for key in acked:
            record = await stub.GetData(pb.GetDataRequest(key=key), timeout=10)
            found[key] = (record.version, record.value)
    for key, (version, value) in acked.items():
        if key == in_flight[0] and found[key] != (version, value):
            # The write in flight: all of it or nothing, never part.
            assert found[key] == (version + 1, in_flight[1])
        else:
            assert found[key] == (version, value)
    on_disk = dict(
        (key, (version, bytes(value)))
        for key, version, value in query_db(data_dir, "SELECT key, version, value FROM kv")
    )
    assert on_disk == found


async def test_kill_during_collect_metrics(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with server_process(data_dir) as server, admin_stub(server.address) as stub:
        summary = await stub.CollectMetrics(
            [pb.Metric(name="done", value=float(n)) for n in range(500)], timeout=20
        )
        assert summary.total_count == 500
        with pytest.raises(RpcError), trio.fail_after(20):
            async with stub.CollectMetrics(timeout=20) as call:
                for n in range(100_000):
                    await call.send(pb.Metric(name="cut", value=float(n)))
                    if n == 3_000:
                        server.kill()
                await call.done_writing()
                await call.response()
        await wait_for_exit(server)
    async with (
        server_process(data_dir) as server,
        admin_stub(server.address) as stub,
        stub.InteractiveQuery(timeout=20) as query,
    ):
        await query.send(
            pb.QueryRequest(query="SELECT name, count(*) AS n FROM metrics GROUP BY name")
        )
        rows = []
        while (response := await query.receive()) is not None and not response.complete:
            rows.append(response.data)
    assert [json.loads(row) for row in rows] == [{"name": "done", "n": 500}]  # none cut
    assert query_db(data_dir, "SELECT name, count(*) FROM metrics GROUP BY name") == [("done", 500)]


async def test_a_resumable_upload_killed_halfway_resumes_after_the_restart(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    source = tmp_path / "big.bin"
    data = os.urandom(8 << 20)
    source.write_bytes(data)
    port = free_port()
    sessions = data_dir / "files" / "sessions"
    async with server_process(data_dir, port=port) as server, admin_stub(server.address) as stub:
        with pytest.raises(RpcError), trio.fail_after(20):
            async with stub.UploadFile(timeout=20, metadata=[("upload-id", "restart-me")]) as call:
                for number, chunk in enumerate(chunks_of(data, "big.bin")):
                    await call.send(chunk)
                    if number == 64:  # 4 MiB sent: kill once the server holds some
                        while not any(p.stat().st_size for p in sessions.glob("*.part")):  # noqa: ASYNC110
                            await trio.sleep(0.01)
                        server.kill()
                await call.done_writing()
                await call.response()
        await wait_for_exit(server)
    async with server_process(data_dir, port=port) as server, admin_stub(server.address) as stub:
        result = await upload_file(
            stub, source, upload_id="restart-me", retry=RetryPolicy(attempts=3)
        )
        assert result.resumed_from > 0  # the dead server's bytes were kept
        assert result.checksum == hashlib.sha256(data).hexdigest()
        assert await _download(stub, result.file_id) == data
    assert list(sessions.glob("*.part")) == []  # the session ended with the commit


async def test_the_cli_upload_resumes_by_itself_across_a_kill_and_restart(
    tmp_path: Path,
) -> None:
    # The CLI runs on while its server is SIGKILLed at about a fifth of the
    # file and another starts on the same port and directory: `upload`
    # reconnects, asks for the committed offset and sends only the rest.
    data_dir = tmp_path / "data"
    source = tmp_path / "big.bin"
    data = os.urandom(48 << 20)
    source.write_bytes(data)
    port = free_port()
    sessions = data_dir / "files" / "sessions"
    out, err = io.StringIO(), io.StringIO()
    status: list[int] = []
    async with trio.open_nursery() as nursery:
        async with server_process(data_dir, port=port) as first:
            argv = ["upload", str(source), "--target", first.address, "--token", ADMIN_TOKEN]

            async def upload_with_the_cli() -> None:
                status.append(await amain(argv, stdout=out, stderr=err))

            nursery.start_soon(upload_with_the_cli)
            with trio.fail_after(30):
                while not any(p.stat().st_size >= 8 << 20 for p in sessions.glob("*.part")):  # noqa: ASYNC110
                    await trio.sleep(0.01)
            first.kill()
            await wait_for_exit(first)
        async with server_process(data_dir, port=port) as second:
            with trio.fail_after(60):
                while not status:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            printed = dict(line.split(": ", 1) for line in out.getvalue().splitlines())
            async with admin_stub(second.address) as stub:
                stored = await _download(stub, printed["file_id"])
    assert status == [0], err.getvalue()
    said = err.getvalue()
    assert "connection lost" in said  # then refused until the new server listened
    resumed = re.search(r"resumed \d+ time\(s\), the last from ([\d,]+) bytes", said)
    assert resumed is not None, said
    resumed_from = int(resumed[1].replace(",", ""))
    assert 0 < resumed_from < len(data)
    assert printed["sha256"] == hashlib.sha256(data).hexdigest()
    assert stored == data
