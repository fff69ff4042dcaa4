"""A puregrpc server with a :class:`HealthService`, on 127.0.0.1, and a channel to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from health_support import HealthServed

from puregrpc.client import Channel
from puregrpc.health import HealthService
from puregrpc.health.protos.health_puregrpc import HealthStub
from puregrpc.server import Server


@pytest.fixture
async def served() -> AsyncIterator[HealthServed]:
    """A server whose only service is health, added in the one documented line."""
    server = Server()
    server.add_service(health := HealthService())
    async with server.listening("127.0.0.1", 0):
        yield HealthServed(health=health, server=server)


@pytest.fixture
async def stub(served: HealthServed) -> AsyncIterator[HealthStub]:
    """puregrpc's own generated stub, over a channel to ``served``."""
    async with Channel(served.target) as channel:
        yield HealthStub(channel)
