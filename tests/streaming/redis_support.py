"""A real ``redis-server`` for the tests: on a free loopback port, in a temporary directory.

The server is :class:`puregrpc_streaming.cluster.LocalRedis` (the cluster
demo's), with an append-only file fsynced on every write, so a stop and a
start keep the stream, as a deployment's Redis must; :func:`redis_server`
is the fixture, skipped with the reason when the binary is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from puregrpc_streaming.cluster import LocalRedis, redis_unavailable

__all__ = ["RedisServer", "redis_server"]

#: What the tests call the server they run.
RedisServer = LocalRedis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running redis-server of the test's own, stopped at the end."""
    reason = redis_unavailable()
    if reason is not None:
        pytest.skip(reason)
    pytest.importorskip("redis", reason="the redis client is not installed (extra: redis)")
    server = RedisServer(tmp_path / "redis", appendfsync="always")
    server.start()
    try:
        yield server
    finally:
        server.stop()
