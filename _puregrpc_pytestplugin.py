"""The pytest plugin of puregrpc.testing: fixtures that serve services in memory.

Registered under the ``pytest11`` entry point ``puregrpc``, so pytest loads it
in every run where puregrpc is installed. It is a top-level module (like
hypothesis' ``_hypothesis_pytestplugin``) so that loading it imports nothing
of puregrpc: puregrpc, trio, the server and the client load when a test
first asks for ``puregrpc_server``. (A plugin inside the package would
import ``puregrpc`` before pytest-cov starts measuring, and the coverage of
whatever that import loads would be lost.) It defines no autouse fixture and
no hook, and names its fixtures ``puregrpc_*`` so they cannot shadow another
plugin's ``grpc_*`` ones.

Configure by overriding, in a ``conftest.py``, a test module or a class:

* ``puregrpc_services``: what to serve (servicers, method handlers, or one
  ready :class:`~puregrpc.server.Server`); empty by default;
* ``puregrpc_interceptors``, ``puregrpc_server_options``: given to the
  server that is built for the services;
* ``puregrpc_channel_options``: for the channels.

Then use ``puregrpc_server`` (the :class:`~puregrpc.testing.InMemoryServer`
handle), ``puregrpc_channel`` (an open channel to it) or ``puregrpc_stub``
(``puregrpc_stub(EchoStub)``). These three are trio fixtures: they need
pytest-trio, with ``trio_mode = true`` or tests marked ``@pytest.mark.trio``.
See docs/testing.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from puregrpc.client import Channel, ChannelOptions
    from puregrpc.server import Server, ServerInterceptor, ServerOptions
    from puregrpc.testing import InMemoryServer, ServiceLike, StubFactory


@pytest.fixture
def puregrpc_services() -> list[ServiceLike | Server]:
    """What ``puregrpc_server`` serves: override it (empty by default).

    Servicers, method handlers or path -> handler tables; or a list holding
    one ready ``Server``.
    """
    return []


@pytest.fixture
def puregrpc_interceptors() -> list[ServerInterceptor]:
    """Interceptors of the server built for ``puregrpc_services`` (none by default)."""
    return []


@pytest.fixture
def puregrpc_server_options() -> ServerOptions | None:
    """``ServerOptions`` of the server built for ``puregrpc_services`` (defaults)."""
    return None


@pytest.fixture
def puregrpc_channel_options() -> ChannelOptions | None:
    """``ChannelOptions`` of ``puregrpc_channel`` and the handle's channels (defaults)."""
    return None


@pytest.fixture
async def puregrpc_server(
    puregrpc_services: list[ServiceLike | Server],
    puregrpc_interceptors: list[ServerInterceptor],
    puregrpc_server_options: ServerOptions | None,
    puregrpc_channel_options: ChannelOptions | None,
) -> AsyncIterator[InMemoryServer]:
    """``puregrpc_services`` served in memory for the test, stopped after it."""
    from puregrpc.testing import serve_in_memory

    async with serve_in_memory(
        *puregrpc_services,
        interceptors=puregrpc_interceptors,
        options=puregrpc_server_options,
        channel_options=puregrpc_channel_options,
    ) as served:
        yield served


@pytest.fixture
async def puregrpc_channel(puregrpc_server: InMemoryServer) -> AsyncIterator[Channel]:
    """An open channel to ``puregrpc_server`` (closed after the test)."""
    async with puregrpc_server.channel() as channel:
        yield channel


@pytest.fixture
def puregrpc_stub(puregrpc_channel: Channel) -> StubFactory:
    """Makes generated stubs on ``puregrpc_channel``: ``puregrpc_stub(EchoStub)``."""
    from puregrpc.testing import stub_factory

    return stub_factory(puregrpc_channel)
