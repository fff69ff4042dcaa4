"""run_workers: real worker processes sharing one port on 127.0.0.1 (SO_REUSEPORT).

The supervisor runs ``workers_app.py`` (a script beside this file); its
methods answer the serving worker's pid, so a test sees which worker served
each call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import reuse_port_supported

pytestmark = pytest.mark.skipif(not reuse_port_supported(), reason="needs SO_REUSEPORT (Linux)")

APP = Path(__file__).with_name("workers_app.py")
PID = raw_method("/test.Workers/Pid", Cardinality.UNARY_UNARY)
SLOW = raw_method("/test.Workers/Slow", Cardinality.UNARY_STREAM)


@asynccontextmanager
async def supervisor(
    tmp_path: Path, *, workers: int = 2, grace: float = 10.0
) -> AsyncIterator[tuple[trio.Process, int]]:
    """The supervisor process and its port, once every worker listens; killed at the end."""
    log = (tmp_path / "supervisor.log").open("wb")
    process = await trio.lowlevel.open_process(
        [sys.executable, str(APP), str(workers), str(grace)],
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        assert process.stdout is not None
        output = b""
        with trio.fail_after(60):
            while b"\n" not in output:
                chunk = await process.stdout.receive_some(1024)
                assert chunk, f"the supervisor exited: {(tmp_path / 'supervisor.log').read_text()}"
                output += chunk
        word, port = output.split(b"\n")[0].split()
        assert word == b"listening"
        yield process, int(port)
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(30):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            log.close()


def exited(pid: int) -> bool:
    """Whether ``pid`` has exited (gone, or a zombie: none of its sockets is open)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


async def pid_of_call(channel: Channel) -> int:
    return int(await channel.unary_unary(PID, b"", timeout=20))


async def test_two_workers_serve_2000_calls_over_20_connections(tmp_path: Path) -> None:
    pids: list[int] = []
    async with supervisor(tmp_path) as (process, port), AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(Channel(f"127.0.0.1:{port}")) for _ in range(20)
        ]

        async def calls(channel: Channel, count: int) -> None:
            for _ in range(count):
                pids.append(await pid_of_call(channel))

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for channel in channels:
                    for _ in range(4):
                        nursery.start_soon(calls, channel, 25)
    assert len(pids) == 2000
    served = {pid: pids.count(pid) for pid in set(pids)}
    assert len(served) == 2, served  # both workers served some
    assert process.pid not in served  # the supervisor serves nothing itself
    assert process.returncode == 0


async def test_a_killed_worker_fails_its_calls_and_comes_back(tmp_path: Path) -> None:
    async with supervisor(tmp_path, grace=1.0) as (_, port), AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(Channel(f"127.0.0.1:{port}")) for _ in range(20)
        ]
        by_pid: dict[int, list[Channel]] = {}
        with trio.fail_after(60):
            for channel in channels:
                by_pid.setdefault(await pid_of_call(channel), []).append(channel)
        assert len(by_pid) == 2, by_pid.keys()
        victim, survivor = sorted(by_pid, key=lambda pid: len(by_pid[pid]))
        codes: list[StatusCode] = []

        async def slow_call(channel: Channel, *, task_status: trio.TaskStatus[None]) -> None:
            try:
                async for message in channel.unary_stream(SLOW, b"30", timeout=60):
                    assert int(message) == victim
                    task_status.started()
            except RpcError as exc:
                codes.append(exc.code)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for channel in by_pid[victim]:
                    await nursery.start(slow_call, channel)
                os.kill(victim, signal.SIGKILL)
        assert codes == [StatusCode.UNAVAILABLE] * len(by_pid[victim])
        # Its connections are reset as it dies, a moment before its listening
        # socket closes: a connection made in between would be reset too.
        with trio.fail_after(10):
            while not exited(victim):  # noqa: ASYNC110 - a process has no event to wait on
                await trio.sleep(0.01)

        # New connections are served at once (by the survivor, or the
        # restarted worker once it listens), and the victim comes back.
        seen: set[int] = set()
        with trio.fail_after(60):
            for _ in range(200):
                async with Channel(f"127.0.0.1:{port}") as fresh:
                    seen.update([await pid_of_call(fresh) for _ in range(3)])
                if seen - {victim, survivor}:
                    break
                await trio.sleep(0.05)
        assert victim not in seen
        assert seen - {victim, survivor}, "the killed worker was not restarted"
        # The survivor's connections were never touched.
        for channel in by_pid[survivor]:
            assert await pid_of_call(channel) == survivor


async def test_sigterm_drains_a_call_in_flight_and_exits_0(tmp_path: Path) -> None:
    async with supervisor(tmp_path, grace=10.0) as (process, port):
        async with Channel(f"127.0.0.1:{port}") as channel:
            messages: list[bytes] = []
            with trio.fail_after(60):
                async for message in channel.unary_stream(SLOW, b"1.5", timeout=30):
                    messages.append(message)
                    if len(messages) == 1:
                        # In flight: the worker answered once and sleeps now.
                        process.send_signal(signal.SIGTERM)
            assert messages[1:] == [b"done"]
        with trio.fail_after(30):
            assert await process.wait() == 0


async def test_a_worker_that_cannot_start_ends_the_supervisor_with_status_1(
    tmp_path: Path,
) -> None:
    log = tmp_path / "supervisor.log"
    with log.open("wb") as stderr, trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, str(APP), "2", "1", "broken"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            check=False,
        )
    text = log.read_text()
    assert result.returncode == 1, text
    assert "exited before it listened" in text
    assert "this worker cannot start" in text  # the worker's own traceback
    assert "restarting" not in text


async def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    async with supervisor(tmp_path, grace=1.0) as (process, port), AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(Channel(f"127.0.0.1:{port}")) for _ in range(20)
        ]
        with trio.fail_after(60):
            pids = {await pid_of_call(channel) for channel in channels}
        assert len(pids) == 2
        process.kill()  # SIGKILL: no chance to stop them; their lifeline pipe reads EOF
        with trio.fail_after(30):
            while not all(exited(pid) for pid in pids):  # noqa: ASYNC110 - processes
                await trio.sleep(0.05)
    text = (tmp_path / "supervisor.log").read_text()
    assert text.count("the supervisor is gone, stopping") == 2, text
