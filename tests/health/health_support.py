"""What the health tests share (a unique module name: see tests/runtime/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

from puregrpc.client import Channel, ChannelOptions
from puregrpc.health import HealthService
from puregrpc.server import Server
from puregrpc.testing import InMemoryServer


@dataclass
class HealthServed:
    """The service under test and how to reach it: in memory, or on loopback."""

    health: HealthService
    server: Server
    #: The in-memory serving, or ``None`` when the server listens on loopback.
    in_memory: InMemoryServer | None = None

    @property
    def target(self) -> str:
        """``host:port`` for clients (grpcio's); only when served on loopback."""
        assert self.in_memory is None, "served in memory: there is no address"
        return f"127.0.0.1:{self.server.port}"

    def channel(self, options: ChannelOptions | None = None) -> Channel:
        """A new puregrpc channel to the server, to open with ``async with``."""
        if self.in_memory is not None:
            return self.in_memory.channel(options=options)
        return Channel(self.target, options=options)


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``predicate()`` holds (server-side cleanup after a client leaves).

    Polls: what it waits for has no event to wait on. Fails after ``within`` seconds.
    """
    with trio.fail_after(within):
        for _ in range(int(within / 0.01) + 1):
            if predicate():
                return
            await trio.sleep(0.01)
    raise AssertionError(f"{predicate} did not come true within {within}s")
