"""A channelz-enabled Echo server on 127.0.0.1 (``served``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from channelz_support import Served, channelz_server


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """The server, listening on a free loopback port."""
    server = channelz_server()
    async with server.listening("127.0.0.1", 0):
        yield Served(server=server, target=f"127.0.0.1:{server.port}")
