"""A real PostgreSQL for the tests: ``initdb`` in a temporary directory, a free loopback port.

:class:`PostgresServer` runs Debian's PostgreSQL server binaries
(``/usr/lib/postgresql/<version>/bin``) with trust authentication for the
``puregrpc`` user, on 127.0.0.1 only, without fsync (the tests need no
durability against power loss; a stop and start keep the data).
PostgreSQL refuses to run as root: as root the server runs as the
``postgres`` user (which Debian's package creates), in a directory of its
own. :func:`postgres_server` is the fixture, skipped with the reason where
the binaries (or that user) are missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["PostgresServer", "postgres_server"]


def _bindir() -> Path | None:
    """Where initdb, postgres and pg_isready are (Debian's layout first, then PATH)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if versions:
        return versions[-1].parent
    found = shutil.which("postgres")
    return Path(found).resolve().parent if found is not None else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _why_not() -> str | None:
    """Why no server can run here (None: it can)."""
    if _bindir() is None:
        return "PostgreSQL's server is not installed (Debian package postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run PostgreSQL as"
    return None


class PostgresServer:
    """One PostgreSQL cluster: :meth:`start`, :meth:`stop`, again on the same port and data."""

    def __init__(self) -> None:
        bindir = _bindir()
        assert bindir is not None
        self._bindir = bindir
        self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="puregrpc-pg-"))
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
            self._as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        self._data = self.directory / "data"
        self._process: subprocess.Popen[bytes] | None = None
        subprocess.run(
            [
                str(self._bindir / "initdb"),
                *("-D", str(self._data), "-U", "puregrpc", "-A", "trust"),
                *("-E", "UTF8", "--no-sync", "--no-instructions"),
            ],
            cwd=self.directory,
            capture_output=True,
            check=True,
            timeout=120,
            **self._as,
        )

    @property
    def url(self) -> str:
        """``postgresql://puregrpc@127.0.0.1:PORT/postgres``."""
        return f"postgresql://puregrpc@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start it and wait (up to 30 s) until it accepts connections."""
        assert self._process is None
        log = (self.directory / "postgres.log").open("ab")
        self._process = subprocess.Popen(
            [
                str(self._bindir / "postgres"),
                *("-D", str(self._data), "-p", str(self.port), "-k", str(self.directory)),
                *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
                *("-c", "full_page_writes=off", "-c", "synchronous_commit=off"),
            ],
            cwd=self.directory,
            stdout=log,
            stderr=log,
            **self._as,
        )
        log.close()
        ready = self._bindir / "pg_isready"
        deadline = time.monotonic() + 30
        while True:
            probe = subprocess.run(
                [str(ready), "-h", "127.0.0.1", "-p", str(self.port), "-U", "puregrpc"],
                capture_output=True,
                check=False,
                timeout=30,
            )
            if probe.returncode == 0:
                return
            if self._process.poll() is not None or time.monotonic() > deadline:
                text = (self.directory / "postgres.log").read_text(errors="replace")
                raise RuntimeError(f"PostgreSQL did not start: {text[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are ended, data kept); SIGKILL after 30 s."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None

    def remove(self) -> None:
        """Stop it and delete its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL of the test's own, stopped and removed at the end."""
    reason = _why_not()
    if reason is not None:
        pytest.skip(reason)
    pytest.importorskip("psycopg", reason="psycopg is not installed (extra: postgres)")
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()
