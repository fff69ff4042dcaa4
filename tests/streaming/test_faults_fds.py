"""Out of file descriptors (issue #17): the accept loop backs off, and recovers.

The server runs in a subprocess; once it is up and its pooled database
connection is open, its RLIMIT_NOFILE is lowered (``prlimit``) to what it
uses plus three. Then many connections arrive: three are accepted, the
accepts after that fail with EMFILE. The server must not spin on them (it
waits, doubling the wait, and logs the failure once), a call on a connection
it holds still completes, and once the extra connections close, a new
channel gets in.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from pathlib import Path

import trio
from fault_support import ADMIN_TOKEN, server_process

from puregrpc_streaming.client_helpers import open_channel
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

SPARE = 3


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_out_of_file_descriptors(tmp_path: Path) -> None:
    async with (
        server_process(tmp_path / "data", "--sql-threads", "1") as server,
        open_channel(server.address, token=ADMIN_TOKEN) as held,
    ):
        stub = StreamingServiceStub(held)
        async with stub.SyncData(timeout=10) as call:  # the pooled connection opens now
            await call.send(pb.SyncRequest(key="k", value=b"v", change_id="1"))
            await call.receive()
        used = _open_fds(server.pid)
        _, hard = resource.prlimit(server.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (used + SPARE, hard))
        host, _, port = server.address.rpartition(":")
        extra: list[socket.socket] = []
        try:
            for _ in range(SPARE + 5):  # more than the server can accept
                extra.append(socket.create_connection((host, int(port)), timeout=5))
            with trio.fail_after(10):
                while "accept failed" not in server.log():  # noqa: ASYNC110
                    await trio.sleep(0.02)
            # Saturated: the accept loop waits between tries instead of spinning.
            cpu = _cpu_seconds(server.pid)
            wall = time.monotonic()
            await trio.sleep(1.0)
            busy = (_cpu_seconds(server.pid) - cpu) / (time.monotonic() - wall)
            assert busy < 0.5, f"the server used {busy:.0%} of a CPU while out of fds"
            assert server.log().count("accept failed") == 1  # logged once, not per retry
            # A call on a connection it holds completes meanwhile.
            record = await stub.GetData(pb.GetDataRequest(key="k"), timeout=10)
            assert record.value == b"v"
        finally:
            for sock in extra:
                sock.close()
        # Descriptors free again: new connections are accepted.
        with trio.fail_after(15):
            async with open_channel(server.address, token=ADMIN_TOKEN) as fresh:
                record = await StreamingServiceStub(fresh).GetData(
                    pb.GetDataRequest(key="k"), timeout=10
                )
        assert record.value == b"v"
        assert "accepting again after" in server.log()
