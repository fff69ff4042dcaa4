"""A puregrpc server with a :class:`HealthService`, and channels to it.

* ``served``: the server in memory (:func:`puregrpc.testing.serve_in_memory`,
  no socket), for the tests that call it with puregrpc's own client;
* ``served_on_loopback``: the server on 127.0.0.1, for grpcio's client;
* ``stub``: puregrpc's generated stub over a channel to ``served``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from health_support import HealthServed

from puregrpc.health import HealthService
from puregrpc.health.protos.health_puregrpc import HealthStub
from puregrpc.server import Server
from puregrpc.testing import serve_in_memory


def _health_server() -> tuple[Server, HealthService]:
    """A server whose only service is health, added in the one documented line."""
    server = Server()
    server.add_service(health := HealthService())
    return server, health


@pytest.fixture
async def served() -> AsyncIterator[HealthServed]:
    """The health server, served over memory streams."""
    server, health = _health_server()
    async with serve_in_memory(server) as in_memory:
        yield HealthServed(health=health, server=server, in_memory=in_memory)


@pytest.fixture
async def served_on_loopback() -> AsyncIterator[HealthServed]:
    """The health server, listening on 127.0.0.1 (grpcio clients need an address)."""
    server, health = _health_server()
    async with server.listening("127.0.0.1", 0):
        yield HealthServed(health=health, server=server)


@pytest.fixture
async def stub(served: HealthServed) -> AsyncIterator[HealthStub]:
    """puregrpc's own generated stub, over a channel to ``served``."""
    async with served.channel() as channel:
        yield HealthStub(channel)
