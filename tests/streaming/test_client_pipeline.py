"""download_file's pipeline: bounded memory, every byte kept, a failing disk, large frames.

The receive loop collects chunks into 1 MiB blocks queued (a few at most)
for a writer task that hashes and writes each in a worker thread; the
helpers' channel accepts 1 MiB DATA frames, as the service's server does.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tracemalloc
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import trio
from fault_support import limit_file_size
from service_support import running

from puregrpc_streaming.client_helpers import (
    MAX_FRAME_SIZE,
    download_file,
    open_channel,
    part_path,
    upload_file,
)
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

MIB = 1 << 20


async def test_a_long_download_holds_a_few_blocks_whatever_its_size(tmp_path: Path) -> None:
    size = 24 * MIB
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    dest = tmp_path / "copy.bin"
    async with running(tmp_path / "data") as served:
        uploaded = await upload_file(served.stub, source)
        del data
        tracemalloc.start()
        try:
            result = await download_file(served.stub, uploaded.file_id, dest)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.checksum_verified and result.size == size
    assert result.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert dest.read_bytes() == source.read_bytes() and not part_path(dest).exists()
    # A few blocks of 1 MiB on the client, the server's read-ahead and the
    # windows' worth of chunks in flight (in this process too): far below
    # the file's 24 MiB, and the same for a file of any size.
    assert peak < 12 * MIB, f"peak {peak / MIB:.1f} MiB"


async def test_every_byte_received_is_in_the_part_file_after_a_cancel(tmp_path: Path) -> None:
    size = 6 * MIB + 12_345  # blocks, then a partly filled one
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    dest = tmp_path / "copy.bin"
    async with running(tmp_path / "data") as served:
        uploaded = await upload_file(served.stub, source)
        received = 0

        class CancelAt:
            """Counts what the helper received; cancels it past 3.3 MiB."""

            total = 0

            def resume_at(self, offset: int) -> None:
                pass

            def advance(self, n: int) -> None:
                nonlocal received
                received += n
                if received >= 3.3 * MIB:
                    scope.cancel()

        with trio.CancelScope() as scope:
            await download_file(served.stub, uploaded.file_id, dest, progress=CancelAt())  # type: ignore[arg-type]
        # Not a multiple of the block size: the partly collected block was written too.
        kept = part_path(dest).read_bytes()
        assert len(kept) == received and received % MIB != 0
        assert data.startswith(kept)
        result = await download_file(served.stub, uploaded.file_id, dest)
    assert result.resumed_from == received and result.checksum_verified
    assert dest.read_bytes() == data


async def test_a_download_onto_a_full_disk_ends_with_the_error(tmp_path: Path) -> None:
    data = os.urandom(6 * MIB)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    dest = tmp_path / "copy.bin"
    async with running(tmp_path / "data") as served:
        uploaded = await upload_file(served.stub, source)
        # The CLI's download in a process whose files may not grow past
        # 2.5 MiB: the writer's write fails (EFBIG, as ENOSPC would) while
        # the receive loop may be waiting for room in the writer's queue.
        command = [sys.executable, "-m", "puregrpc_streaming", "download", uploaded.file_id]
        command += ["-o", str(dest), "--target", served.running.address]
        with trio.fail_after(60):  # a hang is the failure this test exists for
            done = await trio.run_process(
                command,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                preexec_fn=limit_file_size(5 * MIB // 2),
            )
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert "error: [Errno 27] File too large" in stderr and "Traceback" not in stderr
    kept = part_path(dest).read_bytes()
    assert len(kept) <= 5 * MIB // 2 and data.startswith(kept)
    assert not dest.exists()


async def test_the_helpers_channel_accepts_large_frames() -> None:
    """The client's SETTINGS say MAX_FRAME_SIZE 1 MiB (so 64 KiB chunks come in one frame)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    settings: dict[int, int] = {}
    received = trio.Event()

    async def accept_one() -> None:
        stream = await listeners[0].accept()
        server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        server.initiate_connection()
        await stream.send_all(server.data_to_send())
        async with stream:
            while not received.is_set():
                for event in server.receive_data(await stream.receive_some()):
                    if isinstance(event, h2.events.RemoteSettingsChanged):
                        for code, setting in event.changed_settings.items():
                            settings[code] = setting.new_value
                        received.set()

    async def call(stub: StreamingServiceStub) -> None:
        async with stub.DownloadFile(pb.DownloadRequest(file_id="x")) as call:
            await call.initial_metadata()  # never comes: cancelled below

    with trio.fail_after(30):  # bounds a hang, measures nothing
        async with trio.open_nursery() as nursery, open_channel(f"127.0.0.1:{port}") as channel:
            nursery.start_soon(accept_one)
            nursery.start_soon(call, StreamingServiceStub(channel))
            await received.wait()
            nursery.cancel_scope.cancel()
    await listeners[0].aclose()
    assert MAX_FRAME_SIZE == 1 << 20
    assert settings.get(h2.settings.SettingCodes.MAX_FRAME_SIZE) == MAX_FRAME_SIZE
