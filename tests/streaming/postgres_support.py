"""A real PostgreSQL for the tests: ``initdb`` in a temporary directory, a free loopback port.

The server is :class:`puregrpc_streaming.cluster.LocalPostgres` (the
cluster demo's): Debian's PostgreSQL binaries, trust authentication for the
``puregrpc`` user, 127.0.0.1 only, no fsync; a stop and a start keep the
data. As root it runs as the ``postgres`` user, so its directory is made
under the system's temporary directory (pytest's ``tmp_path`` is closed
to other users). :func:`postgres_server` is the fixture, skipped with the
reason where the binaries (or that user) are missing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from puregrpc_streaming.cluster import LocalPostgres, postgres_unavailable

__all__ = ["PostgresServer", "postgres_server"]

#: What the tests call the server they run.
PostgresServer = LocalPostgres


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL of the test's own, stopped and removed at the end."""
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    pytest.importorskip("psycopg", reason="psycopg is not installed (extra: postgres)")
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="puregrpc-pg-")))
    try:
        server.start()
        yield server
    finally:
        server.remove()
