"""Debian's redis-server and PostgreSQL on free loopback ports, in temporary directories.

What the cluster demo's instances share, and what the tests run their Redis
and PostgreSQL backends on (``tests/streaming/redis_support.py`` and
``postgres_support.py`` are fixtures around these). Each class starts its server in
the foreground in a directory of its own, waits until it answers, and stops
it (:meth:`stop`, or the ``with`` block's end); nothing is written outside
that directory and nothing listens beyond 127.0.0.1. PostgreSQL refuses to
run as root: as root it runs as the ``postgres`` user Debian's package
creates. :func:`missing_packages` names the Debian packages to install for
what is not there; :func:`redis_unavailable` and :func:`postgres_unavailable`
say why a server cannot run here (a test's skip reason).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ._nginx import find_nginx

__all__ = [
    "LocalPostgres",
    "LocalRedis",
    "missing_packages",
    "postgres_bindir",
    "postgres_unavailable",
    "redis_unavailable",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_bindir() -> Path | None:
    """Where initdb, postgres and pg_isready are (Debian's layout, newest first; then PATH)."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3])
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("postgres")
    return Path(found).resolve().parent if found is not None else None


def redis_unavailable() -> str | None:
    """Why :class:`LocalRedis` cannot run here (None: it can)."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (Debian package redis-server)"
    return None


def postgres_unavailable() -> str | None:
    """Why :class:`LocalPostgres` cannot run here (None: it can)."""
    if postgres_bindir() is None:
        return "PostgreSQL's server is not installed (Debian package postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run PostgreSQL as"
    return None


def missing_packages() -> list[str]:
    """Debian packages the cluster demo needs and this machine lacks."""
    missing = []
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    if postgres_bindir() is None:
        missing.append("postgresql")
    if find_nginx()[0] is None:
        missing.append("nginx")
    return missing


class _Server:
    """A server process started by :meth:`start` and ended by :meth:`stop`."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers."""
        raise NotImplementedError

    def _stop(self, sig: signal.Signals, timeout: float) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server (a clean shutdown, SIGKILL if it takes too long)."""
        raise NotImplementedError

    def __enter__(self) -> _Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class LocalRedis(_Server):
    """redis-server with an append-only file, in ``directory``, on a free loopback port.

    ``appendfsync``: Redis's fsync policy of that file (``always``: every
    write survives a kill -9, as tests of a restarted Redis want). A
    :meth:`stop` and a :meth:`start` keep the port and the data.
    """

    def __init__(self, directory: Path, *, appendfsync: str = "everysec") -> None:
        super().__init__()
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self._binary = binary
        self.directory = directory
        self.port = _free_port()
        self._appendfsync = appendfsync

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait (up to 20 s) until it answers PING."""
        assert self._process is None
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "redis.log"
        self._process = subprocess.Popen(
            [
                self._binary,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--dir", str(self.directory), "--logfile", str(log)),
                *("--appendonly", "yes", "--appendfsync", self._appendfsync),
                *("--save", "", "--daemonize", "no"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace") if log.exists() else ""
                self.stop()
                raise RuntimeError(f"redis-server did not start: {text[-1000:]}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM (Redis writes its append-only file) and wait; SIGKILL after 20 s."""
        self._stop(signal.SIGTERM, 20)


class LocalPostgres(_Server):
    """A fresh PostgreSQL cluster (``initdb``) in ``directory``, on a free loopback port.

    Trust authentication for user ``puregrpc``, on 127.0.0.1 only, without
    fsync (a demo's or a test's data need not survive a power cut). A
    :meth:`stop` and a :meth:`start` keep the port and the data. As root,
    ``directory`` is given to the ``postgres`` user, so every directory
    above it must be one that user may enter (``/tmp``, not a 0700 one).
    """

    def __init__(self, directory: Path) -> None:
        super().__init__()
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL's server is not installed (Debian package postgresql)")
        self._bindir = bindir
        self.directory = directory
        self.port = _free_port()
        self._as: dict[str, Any] = {}

    @property
    def url(self) -> str:
        """``postgresql://puregrpc@127.0.0.1:PORT/postgres``."""
        return f"postgresql://puregrpc@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """initdb, start, and wait (up to 30 s) until it accepts connections."""
        assert self._process is None
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root and there is no postgres user to run PostgreSQL as"
                ) from None
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
            self._as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        data = self.directory / "data"
        if not data.exists():
            subprocess.run(
                [
                    str(self._bindir / "initdb"),
                    *("-D", str(data), "-U", "puregrpc", "-A", "trust"),
                    *("-E", "UTF8", "--no-sync", "--no-instructions"),
                ],
                cwd=self.directory,
                capture_output=True,
                check=True,
                timeout=120,
                **self._as,
            )
        log_path = self.directory / "postgres.log"
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(self._bindir / "postgres"),
                    *("-D", str(data), "-p", str(self.port), "-k", str(self.directory)),
                    *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
                    *("-c", "full_page_writes=off", "-c", "synchronous_commit=off"),
                ],
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                **self._as,
            )
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
                text = log_path.read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start: {text[-1000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions ended, data kept); SIGKILL after 30 s."""
        self._stop(signal.SIGINT, 30)

    def remove(self) -> None:
        """Stop it and delete its directory (the cluster's data with it)."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
