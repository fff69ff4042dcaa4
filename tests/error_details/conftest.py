"""Fixtures for the rich-error tests: real servers and clients.

* ``channel``: a puregrpc channel to a puregrpc server with the handlers of
  :mod:`error_details_support`, over memory streams
  (:func:`puregrpc.testing.serve_in_memory`: no socket);
* ``target``: the address of such a server on 127.0.0.1, for grpcio clients.
* ``grpcio_server``: a grpcio sync server (its own threads) with the same
  methods, ending calls through grpcio-status.
* ``grpcio_channel``: a grpcio client channel to the puregrpc server; run its
  blocking calls with :func:`error_details_support.in_thread`.

The helpers live in ``error_details_support.py`` (a unique module name, so it
cannot collide with other test directories' helpers under pytest's default
import mode).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from error_details_support import (
    GrpcioServed,
    pure_handlers,
    running_server,
    start_grpcio_server,
)

from puregrpc.client import Channel
from puregrpc.testing import serve_in_memory


@pytest.fixture
async def target() -> AsyncIterator[str]:
    """A puregrpc server with the rich-error handlers on 127.0.0.1; its address."""
    async with running_server() as address:
        yield address


@pytest.fixture
async def channel() -> AsyncIterator[Channel]:
    """A puregrpc channel to a puregrpc server with the rich-error handlers, in memory."""
    async with serve_in_memory(pure_handlers(), grace=0) as served, served.channel() as chan:
        yield chan


@pytest.fixture
def grpcio_server() -> Iterator[GrpcioServed]:
    """A grpcio sync server (its own threads) with the rich-error handlers."""
    served = start_grpcio_server()
    try:
        yield served
    finally:
        served.server.stop(0).wait(5)


@pytest.fixture
def grpcio_channel(target: str) -> Iterator[grpc.Channel]:
    """A grpcio client channel to the puregrpc server at ``target``."""
    chan = grpc.insecure_channel(target)
    try:
        yield chan
    finally:
        chan.close()
