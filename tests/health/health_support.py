"""What the health tests share (a unique module name: see tests/runtime/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

from puregrpc.health import HealthService
from puregrpc.server import Server


@dataclass
class HealthServed:
    """The service under test and where it listens."""

    health: HealthService
    server: Server

    @property
    def target(self) -> str:
        """``host:port`` for clients."""
        return f"127.0.0.1:{self.server.port}"


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
