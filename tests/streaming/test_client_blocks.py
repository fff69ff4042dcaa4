"""The client helpers move files in large blocks, off the event loop.

Before issue #14 download_file went to a worker thread for every 64 KiB
chunk and hashed on the event loop, upload_file hashed each block on the
event loop (bench/streaming_helpers.py: 71 MB/s against a minimal client's
134-248). Now each worker-thread hop reads (or writes) and hashes about
1 MiB, and a download keeps receiving while the previous block is written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from service_support import running

from puregrpc_streaming.client_helpers import download_file, part_path, upload_file

SIZE = 4 << 20  # 4 MiB: 64 chunks of 64 KiB


def count_thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count calls of trio.to_thread.run_sync from now on (a one-item list)."""
    hops = [0]
    original = trio.to_thread.run_sync

    async def counting(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops[0] += 1
        return await original(fn, *args, **kwargs)

    monkeypatch.setattr(trio.to_thread, "run_sync", counting)
    return hops


async def test_upload_and_download_take_a_thread_hop_per_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(SIZE)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    dest = tmp_path / "copy.bin"
    async with running(tmp_path / "data") as served:
        hops = count_thread_hops(monkeypatch)
        uploaded = await upload_file(served.stub, source)
        upload_hops = hops[0]
        # The server's own hops count too (it runs in this process): measure
        # the download alone against a store that does one hop per block.
        hops[0] = 0
        result = await download_file(
            served.stub, uploaded.file_id, dest, expected_sha256=uploaded.checksum
        )
        download_hops = hops[0]
    assert uploaded.checksum == hashlib.sha256(data).hexdigest()
    assert result.checksum_verified and dest.read_bytes() == data
    assert not part_path(dest).exists()
    # The server (in this process) counts too; with one hop per 64 KiB chunk
    # on the client side alone a transfer took more than 64 (the download
    # took 80); now a block of 1 MiB is a hop, on either side.
    chunks = SIZE // (64 * 1024)
    assert upload_hops <= chunks // 2, upload_hops
    assert download_hops <= chunks // 2, download_hops


async def test_a_download_interrupted_keeps_every_block_it_received(tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    dest = tmp_path / "copy.bin"
    async with running(tmp_path / "data") as served:
        uploaded = await upload_file(served.stub, source)
        with trio.CancelScope() as scope:

            class StopHalfway:
                """A progress sink that cancels the download at 2.5 MiB."""

                total = 0

                def resume_at(self, offset: int) -> None:
                    pass

                def advance(self, n: int) -> None:
                    StopHalfway.total += n
                    if StopHalfway.total >= SIZE * 5 // 8:
                        scope.cancel()

            await download_file(served.stub, uploaded.file_id, dest, progress=StopHalfway())  # type: ignore[arg-type]
        kept = part_path(dest).read_bytes()
        assert len(kept) >= SIZE * 5 // 8 - 64 * 1024 and data.startswith(kept)
        result = await download_file(
            served.stub, uploaded.file_id, dest, expected_sha256=uploaded.checksum
        )
    assert result.resumed_from == len(kept) and result.checksum_verified
    assert dest.read_bytes() == data
