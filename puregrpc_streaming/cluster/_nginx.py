"""nginx in front of puregrpc-streaming instances: the generated config, and the process.

:func:`render_config` writes an nginx configuration that balances gRPC calls
over the instances of :attr:`NginxSettings.upstreams` with ``grpc_pass``,
one call at a time (round robin); every path it names (pid, logs, temporary
directories, lock) is inside one directory, so nginx runs as any user and
never touches ``/etc`` or ``/var``. :class:`Nginx` starts Debian's nginx on
that config in the foreground (``daemon off``) and stops it.

What the config is for (docs/cluster.md explains each line):

* **Streams last.** ``grpc_read_timeout``, ``grpc_send_timeout`` and
  ``client_body_timeout`` bound the silence between two reads, not a call:
  at nginx's 60 s defaults an idle Chat or a WatchEvents between heartbeats
  would be cut. They are set to :attr:`NginxSettings.stream_timeout`.
* **Large transfers stream.** gRPC request bodies are never buffered by
  nginx (its grpc module forces unbuffered bodies), and responses are
  passed on as they come (no temporary files either way);
  ``client_max_body_size 0`` lifts the 1 MiB cap on the whole request body
  (an upload's), and the buffer sizes set how much nginx moves per read:
  ``client_body_buffer_size`` and ``http2_body_preread_size`` are the
  HTTP/2 window nginx grants a client's request stream,
  ``grpc_buffer_size`` the response buffer of each call.
* **Upstream connections are kept** (``keepalive`` in the upstream block):
  nginx sends one call per upstream HTTP/2 connection, so without it each
  call would pay a TCP and HTTP/2 handshake to the instance.
* **A refused connection moves on.** ``grpc_next_upstream error timeout``
  retries a call on the next instance when connecting fails (nothing was
  sent yet); a call whose instance dies mid-stream is not retried (its body
  is gone) and ends with RST_STREAM, which the client sees as INTERNAL.
* **No instance at all** is a gRPC status, not an HTML page: nginx's 502
  and 504 become trailers-only responses with ``grpc-status: 14``
  (UNAVAILABLE) and a message naming the cause (:data:`NO_UPSTREAM_MESSAGE`),
  when :attr:`NginxSettings.grpc_errors` is on (the default).
* **Which instance served** a call is the response header
  :data:`UPSTREAM_HEADER` (nginx's ``$upstream_addr``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

__all__ = [
    "NO_UPSTREAM_MESSAGE",
    "UPSTREAM_HEADER",
    "UPSTREAM_TIMEOUT_MESSAGE",
    "Nginx",
    "NginxError",
    "NginxSettings",
    "find_nginx",
    "render_config",
]

#: Response header naming the instance (``HOST:PORT``) nginx sent the call to.
UPSTREAM_HEADER = "x-upstream"
#: grpc-message of the UNAVAILABLE nginx answers when no instance answers the call (502).
NO_UPSTREAM_MESSAGE = "nginx: no upstream instance answered the call (502 Bad Gateway)"
#: grpc-message of the UNAVAILABLE nginx answers when connecting to the instances timed out.
UPSTREAM_TIMEOUT_MESSAGE = "nginx: the upstream instances did not answer in time (504)"

#: Temporary directories nginx wants, module by module; only client_body could
#: be used by a gRPC server block, and even it is not (bodies are unbuffered).
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class NginxError(RuntimeError):
    """nginx is missing, lacks gRPC support, or did not start (the message says which)."""


def find_nginx() -> tuple[str | None, str]:
    """The nginx binary able to ``grpc_pass``, or ``None`` with the reason it is not there.

    Looks on ``PATH`` and in ``/usr/sbin`` (Debian's place, often not on a
    user's ``PATH``), and reads ``nginx -V``: the grpc module is built
    with the HTTP/2 module unless it was configured out.
    """
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        return None, "nginx is not installed (Debian package nginx)"
    try:
        probe = subprocess.run(
            [found, "-V"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{found} -V failed: {exc}"
    built = probe.stderr + probe.stdout
    if "--with-http_v2_module" not in built or "--without-http_grpc_module" in built:
        return None, f"{found} has no HTTP/2 or no grpc module (nginx -V)"
    return found, ""


@dataclass(frozen=True, slots=True, kw_only=True)
class NginxSettings:
    """What the generated config says; the defaults suit the streaming service."""

    #: ``HOST:PORT`` of each puregrpc-streaming instance (at least one).
    upstreams: tuple[str, ...]
    #: Where nginx listens (plaintext HTTP/2, "h2c", as the instances speak it).
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    #: Idle upstream connections kept for reuse by the (single) worker.
    keepalive: int = 32
    #: Seconds a stream may stay silent in either direction before nginx cuts it.
    stream_timeout: int = 3600
    #: Seconds nginx waits for an instance to accept a connection.
    connect_timeout: int = 2
    #: Bytes: the HTTP/2 window nginx gives a client's request stream, and
    #: the buffer of each call's response.
    body_buffer: str = "1m"
    response_buffer: str = "1m"
    #: Map nginx's own 502/504 to gRPC UNAVAILABLE (else the client gets the HTML page,
    #: which it also reads as UNAVAILABLE, with a message about an HTTP 502).
    grpc_errors: bool = True
    #: nginx worker processes (one keeps round robin strictly alternating).
    workers: int = 1


def _user_line() -> str:
    """The ``user`` directive: as root, workers stay root.

    nginx's default would switch them to ``nobody``, who cannot enter the
    private directories the config usually lives in (pytest's, mkdtemp's)
    to reach the temporary paths; everything nginx writes here is in its
    own directory on loopback. Not as root, nginx ignores the directive.
    """
    return "user root root;\n" if os.geteuid() == 0 else ""


def render_config(settings: NginxSettings, directory: Path) -> str:
    """The nginx.conf text for ``settings``, every path under ``directory``."""
    if not settings.upstreams:
        raise ValueError("nginx needs at least one upstream instance")
    root = directory.resolve()
    servers = "".join(
        f"        server {address} max_fails=1 fail_timeout=5s;\n" for address in settings.upstreams
    )
    temp_paths = "".join(f"    {name}_temp_path {root / 'temp' / name};\n" for name in _TEMP_PATHS)
    timeout = f"{settings.stream_timeout}s"
    errors = ""
    if settings.grpc_errors:
        errors = f"""
        # nginx's own failures as gRPC statuses (trailers-only, HTTP 204 + grpc-status).
        error_page 502 = /grpc-error-502;
        error_page 504 = /grpc-error-504;
        location = /grpc-error-502 {{
            internal;
            default_type application/grpc;
            add_header grpc-status 14 always;
            add_header grpc-message "{NO_UPSTREAM_MESSAGE}" always;
            return 204;
        }}
        location = /grpc-error-504 {{
            internal;
            default_type application/grpc;
            add_header grpc-status 14 always;
            add_header grpc-message "{UPSTREAM_TIMEOUT_MESSAGE}" always;
            return 204;
        }}
"""
    return f"""# Generated by puregrpc_streaming.cluster: nginx balancing gRPC calls over
# {len(settings.upstreams)} puregrpc-streaming instance(s). Every path is under {root}.
daemon off;
master_process on;
worker_processes {settings.workers};
{_user_line()}pid {root / "nginx.pid"};
lock_file {root / "nginx.lock"};
error_log {root / "error.log"} notice;

events {{
    worker_connections 1024;
}}

http {{
    # The call's grpc-status: in the trailers, or in the headers of a trailers-only answer.
    map $upstream_trailer_grpc_status $grpc_status_seen {{
        "" $upstream_http_grpc_status;
        default $upstream_trailer_grpc_status;
    }}
    log_format grpc '$remote_addr "$request" $status upstream=$upstream_addr '
                    'grpc-status=$grpc_status_seen '
                    'sent=$bytes_sent received=$request_length time=$request_time';
    access_log {root / "access.log"} grpc;
{temp_paths}
    upstream streaming {{
{servers}        keepalive {settings.keepalive};
        keepalive_requests 100000;
        keepalive_timeout {timeout};
    }}

    server {{
        listen {settings.listen_host}:{settings.listen_port} http2;

        # Calls on one client connection before nginx sends GOAWAY, and its idle time.
        keepalive_requests 100000;
        keepalive_timeout {timeout};
        # An upload is one request body: no size limit, no 60 s gap limit.
        client_max_body_size 0;
        client_body_timeout {timeout};
        client_body_buffer_size {settings.body_buffer};
        http2_body_preread_size {settings.body_buffer};
        grpc_buffer_size {settings.response_buffer};
        grpc_connect_timeout {settings.connect_timeout}s;
        grpc_read_timeout {timeout};
        grpc_send_timeout {timeout};
        grpc_socket_keepalive on;
        grpc_next_upstream error timeout;

        location / {{
            grpc_pass grpc://streaming;
            add_header {UPSTREAM_HEADER} $upstream_addr always;
        }}
{errors}    }}
}}
"""


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class Nginx:
    """One nginx process on a config of its own in ``directory`` (created if missing).

    :meth:`start` writes ``nginx.conf`` and starts nginx in the foreground,
    in a process group of its own; :meth:`stop` shuts it down (SIGTERM,
    then SIGKILL of the group). A ``listen_port`` of 0 picks a free port.
    Also a context manager (start on entry, stop on exit).
    """

    def __init__(
        self, settings: NginxSettings, directory: Path, *, binary: str | None = None
    ) -> None:
        if binary is None:
            binary, why = find_nginx()
            if binary is None:
                raise NginxError(why)
        self.binary = binary
        self.directory = directory
        port = settings.listen_port or _free_port(settings.listen_host)
        self.settings = replace(settings, listen_port=port)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``HOST:PORT`` clients call."""
        return f"{self.settings.listen_host}:{self.settings.listen_port}"

    @property
    def config_path(self) -> Path:
        """The generated ``nginx.conf``."""
        return self.directory / "nginx.conf"

    @property
    def error_log(self) -> Path:
        """nginx's error log (notices, upstream failures)."""
        return self.directory / "error.log"

    @property
    def access_log(self) -> Path:
        """One line per call: status, upstream, grpc-status, bytes (written as a call ends)."""
        return self.directory / "access.log"

    def start(self, *, timeout: float = 20.0) -> None:
        """Write the config, start nginx, and wait until it accepts connections."""
        assert self._process is None, "already started"
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "temp").mkdir(exist_ok=True)
        self.config_path.write_text(render_config(self.settings, self.directory))
        stderr = (self.directory / "stderr.log").open("ab")
        try:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    *("-p", str(self.directory.resolve()) + "/"),
                    *("-c", str(self.config_path.resolve())),
                    *("-e", str(self.error_log.resolve())),
                ],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        finally:
            stderr.close()
        deadline = time.monotonic() + timeout
        while not self._accepts():
            if self._process.poll() is not None or time.monotonic() > deadline:
                why = self._log_tail()
                self.stop()
                raise NginxError(f"nginx did not start on {self.address}: {why}")
            time.sleep(0.02)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(
                (self.settings.listen_host, self.settings.listen_port), timeout=1
            ):
                return True
        except OSError:
            return False

    def _log_tail(self) -> str:
        texts = []
        for path in (self.directory / "stderr.log", self.error_log):
            if path.exists():
                texts.append(path.read_text(errors="replace").strip())
        return " | ".join(text for text in texts if text)[-2000:] or "no log"

    @property
    def running(self) -> bool:
        """Whether the nginx master process is alive."""
        return self._process is not None and self._process.poll() is None

    def stop(self, *, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGTERM: connections closed, workers exit); SIGKILL of the group
        after ``timeout`` seconds. Safe to call twice."""
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is not None:
            # The master died on its own: its workers (in its group) must not stay.
            _kill_group(process.pid)
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The group is the master's and its workers': none outlives it.
            _kill_group(process.pid)
            process.wait(timeout=10)

    def __enter__(self) -> Nginx:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
