"""A full disk during an upload (issue #17).

The server runs in a subprocess whose files may not grow past 2 MiB
(RLIMIT_FSIZE; Python ignores SIGXFSZ, so the write fails with EFBIG as a
full disk fails it with ENOSPC). An upload past that ends RESOURCE_EXHAUSTED
naming the cause, its temporary file is gone, and the calls around it, a
download running meanwhile and a small upload after it, go on as usual.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import trio
from fault_support import (
    admin_stub,
    limit_file_size,
    server_process,
    stored_records,
    unfinished_uploads,
)
from service_support import chunks_of

from puregrpc import RpcError, StatusCode
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

LIMIT = 2 << 20


async def _upload(
    stub: StreamingServiceStub, data: bytes, name: str, upload_id: str | None = None
) -> str:
    metadata = [("upload-id", upload_id)] if upload_id else None
    response = await stub.UploadFile(chunks_of(data, name), timeout=20, metadata=metadata)
    assert response.checksum == hashlib.sha256(data).hexdigest()
    return response.file_id


async def test_a_full_disk_fails_the_upload_clearly_and_nothing_else(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    small = os.urandom(500_000)
    async with (
        server_process(data_dir, preexec=limit_file_size(LIMIT)) as server,
        admin_stub(server.address) as stub,
    ):
        before = await _upload(stub, small, "before.bin")
        downloaded: list[bytes] = []

        async def download_meanwhile() -> None:
            request = pb.DownloadRequest(file_id=before)
            for _ in range(5):
                chunks = [c.content async for c in stub.DownloadFile(request, timeout=20)]
                downloaded.append(b"".join(chunks))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(download_meanwhile)
                for upload_id in (None, "resumable-session-1"):
                    with pytest.raises(RpcError) as full:
                        await _upload(stub, os.urandom(3 << 20), "too-big.bin", upload_id)
                    assert full.value.code is StatusCode.RESOURCE_EXHAUSTED
                    assert "the server's storage is full (File too large)" in full.value.details
                    # Session or not, a full disk keeps nothing.
                    assert unfinished_uploads(data_dir) == []
            after = await _upload(stub, small[::-1], "after.bin")
        assert downloaded == [small] * 5
        log = server.log()
    assert sorted(stored_records(data_dir)) == sorted([before, after])
    assert log.count("failed on storage") == 2  # one ERROR line per failed call, with the cause
