"""One ``puregrpc-streaming serve`` process of a cluster: started, stopped or killed."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

__all__ = ["ServiceInstance", "run_instance"]

#: How long an instance may take to open its backends (and seed its dataset).
STARTUP_TIMEOUT = 60.0


@dataclass
class ServiceInstance:
    """A running ``puregrpc-streaming serve`` subprocess."""

    #: The cluster's name for it ("A", "B").
    name: str
    process: trio.Process
    #: ``HOST:PORT`` it printed on its first line ("listening on HOST:PORT").
    address: str
    #: What it wrote on stderr so far (its log).
    log: bytearray = field(default_factory=bytearray)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.returncode is None

    def kill(self) -> None:
        """SIGKILL: the instance vanishes mid-call, as a crashed host does."""
        if self.process.returncode is None:
            self.process.kill()

    def log_text(self) -> str:
        """The log so far, decoded."""
        return self.log.decode(errors="replace")


def serve_command(data_dir: Path, *options: str) -> list[str]:
    """``python -m puregrpc_streaming serve --port 0 --data-dir DIR OPTIONS...``."""
    return [
        sys.executable,
        *("-m", "puregrpc_streaming", "serve"),
        *("--port", "0", "--data-dir", str(data_dir)),
        *options,
    ]


async def _drain(stream: trio.abc.ReceiveStream, into: bytearray | None) -> None:
    while chunk := await stream.receive_some():
        if into is not None:
            into += chunk


@asynccontextmanager
async def run_instance(name: str, data_dir: Path, *options: str) -> AsyncIterator[ServiceInstance]:
    """Run an instance on a free loopback port until the block ends.

    ``options`` are more ``serve`` flags (``--redis-url``, ``--tokens``...).
    The block gets the instance once it listens; at its end the instance is
    sent SIGTERM (it drains its calls for ``--shutdown-grace``) and killed
    if it still runs 15 s later. An instance that does not start raises
    :class:`RuntimeError` with its log.
    """
    process = await trio.lowlevel.open_process(
        serve_command(data_dir, *options),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        async with trio.open_nursery() as nursery:
            log = bytearray()
            nursery.start_soon(_drain, process.stderr, log)
            line = bytearray()
            with trio.move_on_after(STARTUP_TIMEOUT):
                while b"\n" not in line:
                    chunk = await process.stdout.receive_some()
                    if not chunk:
                        break
                    line += chunk
            first = bytes(line).split(b"\n")[0].decode(errors="replace")
            if not first.startswith("listening on "):
                with trio.move_on_after(2):
                    await process.wait()
                text = log.decode(errors="replace").strip()[-2000:]
                raise RuntimeError(f"instance {name} did not start: {first!r} {text}")
            instance = ServiceInstance(
                name, process, first.removeprefix("listening on ").strip(), log
            )
            nursery.start_soon(_drain, process.stdout, None)
            try:
                yield instance
            finally:
                with trio.CancelScope(shield=True):
                    await _stop(process)
                nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


async def _stop(process: trio.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    with trio.move_on_after(15):
        await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()
