"""Fixtures for the trio runtime tests: real servers and clients over loopback.

* ``server``: a puregrpc :class:`~puregrpc.server.Server` on ``127.0.0.1:0``
  serving the raw-bytes test handlers of :mod:`runtime_support`, with a fresh
  :class:`~runtime_support.Probe` (``probe``) recording what they saw.
* ``channel``: a puregrpc :class:`~puregrpc.client.Channel` to ``server``.
* ``grpcio_server``: a grpcio sync server (its own threads) serving the same
  methods through a generic handler, with no (de)serializers (bytes in, out).
* ``grpcio_channel``: a grpcio client channel to the puregrpc ``server``; run
  its blocking calls with :func:`runtime_support.in_thread`.

The helpers live in ``runtime_support.py`` (a unique module name: test files
import it directly, and ``conftest`` or ``helpers`` would collide with other
test directories under pytest's default import mode).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from runtime_support import (
    GrpcioServed,
    Probe,
    Served,
    running_server,
    start_grpcio_server,
)

from puregrpc.client import Channel


@pytest.fixture
def probe() -> Probe:
    """The probe of this test's puregrpc server."""
    return Probe()


@pytest.fixture
async def server(probe: Probe) -> AsyncIterator[Served]:
    """A puregrpc server with the test handlers on 127.0.0.1, port 0."""
    async with running_server(probe) as served:
        yield served


@pytest.fixture
async def channel(server: Served) -> AsyncIterator[Channel]:
    """A channel to ``server``."""
    async with Channel(server.target) as chan:
        yield chan


@pytest.fixture
def grpcio_server() -> Iterator[GrpcioServed]:
    """A grpcio sync server (its own threads) with the test handlers."""
    served = start_grpcio_server()
    try:
        yield served
    finally:
        served.server.stop(0).wait(5)


@pytest.fixture
def grpcio_channel(server: Served) -> Iterator[grpc.Channel]:
    """A grpcio client channel to the puregrpc ``server``."""
    chan = grpc.insecure_channel(server.target)
    try:
        yield chan
    finally:
        chan.close()
