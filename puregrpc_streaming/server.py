"""Run the streaming service: :class:`ServeConfig` and :func:`serve`.

``serve`` opens the embedded backends under ``data_dir`` (seeding the dataset
on first start), builds a puregrpc :class:`~puregrpc.server.Server` with the
:class:`~.service.StreamingService`, health checking (``grpc.health.v1``) and
server reflection (``grpc.reflection.v1`` and ``v1alpha``), binds, reports ``HOST:PORT`` through
``task_status``, and serves until cancelled. Cancelling it stops gracefully:
open-ended streams (watch, chat, sync) are ended with UNAVAILABLE and a
resume hint, other calls get a few seconds to finish, then everything closes.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from puregrpc.health import HealthService, ServingStatus
from puregrpc.reflection import enable_reflection
from puregrpc.server import Server, ServerOptions, freeze_heap
from puregrpc.web import WebOptions
from puregrpc.wire import ConnectionConfig

from .authentication import CallerInterceptor, PeerIdentities, anonymous_connections
from .backends.base import Retention
from .backends.embedded import EmbeddedBackends, open_embedded_backends
from .backends.events import DEFAULT_QUEUE_BYTES
from .backends.sqlite import BUSY_TIMEOUT, CACHE_KIB
from .backends.upload_sessions import SessionPolicy
from .handlers._common import MAX_PAGE_SIZE, SHUTDOWN_GRACE, ServiceSettings, flat_nursery
from .identity import Identity, with_admins
from .listening import accept_loop, bind
from .service import StreamingService
from .tls import mutual_tls_handler, server_ssl_context

if TYPE_CHECKING:
    from .backends.postgres import PostgresSettings
    from .backends.redis_events import RedisSettings

__all__ = ["SERVICE_NAME", "SHUTDOWN_GRACE", "RunningServer", "ServeConfig", "open_server", "serve"]

logger = logging.getLogger("puregrpc_streaming")

#: The name health checks use for the streaming service.
SERVICE_NAME = "streaming.v1.StreamingService"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeConfig:
    """Everything ``serve`` needs; the CLI's ``serve`` options map onto it."""

    #: Interface to listen on.
    host: str = "127.0.0.1"
    #: Port (0: any free port; the bound one is reported).
    port: int = 0
    #: Join the port's ``SO_REUSEPORT`` group: other processes (the workers
    #: of ``serve --workers``) listen on the same port.
    reuse_port: bool = False
    #: Where files and the SQLite database live (created if missing).
    data_dir: Path
    #: Largest accepted upload; larger -> RESOURCE_EXHAUSTED.
    max_upload_bytes: int = 1 << 30
    #: Seconds of silence on a watch before a heartbeat event.
    heartbeat_interval: float = 15.0
    #: DownloadFile chunk size, 16..64 KiB.
    chunk_size: int = 64 * 1024
    #: Rows of the dataset seeded on first start.
    dataset_rows: int = 1_000_000
    #: ListLargeDataset rows per page when the request says 0.
    batch_size: int = 100
    #: Time limit of one InteractiveQuery statement (seconds).
    query_timeout: float = 5.0
    #: Largest InteractiveQuery row (and value), as JSON.
    max_query_row_bytes: int = 1 << 20
    #: Chat messages a caller may send per second, and in one burst.
    chat_rate: float = 20.0
    chat_burst: int = 50
    #: Worker threads for the stores' SQL, for InteractiveQuery, for file I/O
    #: (three separate limiters: one kind of work never takes the others').
    sql_threads: int = 4
    query_threads: int = 4
    file_threads: int = 8
    #: How much of the event log is kept (count, bytes, age).
    retention: Retention = field(default_factory=Retention)
    #: Bytes of events queued for one watcher before it is cut off as too slow.
    watch_queue_bytes: int = DEFAULT_QUEUE_BYTES
    #: Resumable upload sessions: seconds one may sit idle, and how many may exist.
    upload_sessions: SessionPolicy = field(default_factory=SessionPolicy)
    #: Seconds calls in flight get to finish when the server stops.
    shutdown_grace: float = SHUTDOWN_GRACE
    #: Serve the browser console (:mod:`.web_console`) at ``/`` on the same port.
    web_console: bool = False
    #: Once started, freeze the heap (:func:`puregrpc.server.freeze_heap`):
    #: process-wide, so off unless asked (``serve`` asks by default).
    freeze_heap: bool = False
    #: Seconds a write waits for a lock another process holds on the database
    #: before its call fails UNAVAILABLE.
    sql_busy_timeout: float = BUSY_TIMEOUT
    #: KiB of SQLite page cache per connection (memory that fills as data is read).
    sql_cache_kib: int = CACHE_KIB
    #: PEM certificate chain and private key: both to serve TLS, neither for plaintext.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: PEM CA of client certificates: mutual TLS, the user id from each
    #: client's certificate (needs ``tls_cert``/``tls_key``).
    client_ca: Path | None = None
    #: Bearer token -> caller (see :mod:`.identity`). With neither tokens nor
    #: ``client_ca`` the server runs in open development mode.
    tokens: Mapping[str, Identity] = field(default_factory=dict)
    #: User ids given the ``admin`` role, however they authenticate.
    admins: frozenset[str] = frozenset()
    #: ``redis://host:port/db``: events and chat on this Redis's stream,
    #: shared with every instance that uses it (None: the embedded bus).
    redis_url: str | None = None
    #: The Redis stream's key.
    redis_stream: str = "puregrpc-streaming:events"
    #: ``postgresql://user@host:port/db``: records (GetData, SyncData) and metrics in this
    #: PostgreSQL, shared with every instance that uses it (None: SQLite).
    postgres_url: str | None = None
    #: ``postgresql://role:password@host:port/db``: InteractiveQuery logs in as this
    #: read-only role (None: one the service sets up, if its user may create roles).
    postgres_query_url: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate and a key (tls_cert and tls_key)")
        if self.client_ca is not None and self.tls_cert is None:
            raise ValueError("client_ca (mutual TLS) needs tls_cert and tls_key")
        if self.dataset_rows < 0:
            raise ValueError("dataset_rows must not be negative")
        if not 1 <= self.batch_size <= MAX_PAGE_SIZE:
            raise ValueError(f"batch_size must be 1..{MAX_PAGE_SIZE}, got {self.batch_size}")
        for name in ("sql_threads", "query_threads", "file_threads"):
            if not 1 <= getattr(self, name) <= 256:
                raise ValueError(f"{name} must be 1..256, got {getattr(self, name)}")
        if self.watch_queue_bytes < 64 * 1024:
            raise ValueError(
                f"watch_queue_bytes must be at least 64 KiB, got {self.watch_queue_bytes}"
            )
        if not 0 < self.sql_busy_timeout <= 600:
            raise ValueError(
                f"sql_busy_timeout must be 0..600 seconds, got {self.sql_busy_timeout}"
            )
        if not 16 <= self.sql_cache_kib <= 1 << 20:
            raise ValueError(f"sql_cache_kib must be 16..{1 << 20} KiB, got {self.sql_cache_kib}")
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError(
                f"redis_url must be redis://, rediss:// or unix://, got {self.redis_url!r}"
            )
        if self.postgres_url is not None and not self.postgres_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError(f"postgres_url must be postgresql://..., got {self.postgres_url!r}")
        if self.postgres_query_url is not None and (
            self.postgres_url is None
            or not self.postgres_query_url.startswith(("postgresql://", "postgres://"))
        ):
            raise ValueError(
                "postgres_query_url must be postgresql://... and needs postgres_url, "
                f"got {self.postgres_query_url!r}"
            )
        if not 0 <= self.shutdown_grace <= 3600:
            raise ValueError(f"shutdown_grace must be 0..3600 seconds, got {self.shutdown_grace}")
        self.settings()  # validates the rest

    def settings(self) -> ServiceSettings:
        """The service's share of the configuration."""
        return ServiceSettings(
            max_upload_bytes=self.max_upload_bytes,
            heartbeat_interval=self.heartbeat_interval,
            chunk_size=self.chunk_size,
            batch_size=self.batch_size,
            query_timeout=self.query_timeout,
            max_query_row_bytes=self.max_query_row_bytes,
            chat_rate=self.chat_rate,
            chat_burst=self.chat_burst,
        )

    def server_options(self) -> ServerOptions:
        """The server's options: :data:`SERVER_OPTIONS`, with the console's pages if asked."""
        if not self.web_console:
            return SERVER_OPTIONS
        from .web_console import console_site

        web = SERVER_OPTIONS.grpc_web or WebOptions()
        return replace(SERVER_OPTIONS, grpc_web=replace(web, site=console_site()))

    def console_url(self, address: str) -> str | None:
        """Where a browser opens the console of the server at ``address`` (None: not served)."""
        if not self.web_console:
            return None
        return f"{'https' if self.tls_cert is not None else 'http'}://{address}/"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A server TLS context, if a certificate and key are configured."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        return server_ssl_context(self.tls_cert, self.tls_key, self.client_ca)

    def redis_settings(self) -> RedisSettings | None:
        """The Redis event bus's settings, if ``redis_url`` is set (imports ``redis`` then)."""
        if self.redis_url is None:
            return None
        try:
            from .backends.redis_events import RedisSettings
        except ImportError as exc:
            raise ValueError(
                f"redis_url needs the redis client ({exc}): pip install 'puregrpc[redis]'"
            ) from None

        return RedisSettings(
            url=self.redis_url,
            stream=self.redis_stream,
            threads=self.sql_threads,
            retention=self.retention,
        )

    def postgres_settings(self) -> PostgresSettings | None:
        """The PostgreSQL records' settings, if ``postgres_url`` is set (imports ``psycopg``)."""
        if self.postgres_url is None:
            return None
        try:
            from .backends.postgres import PostgresSettings
        except ImportError as exc:
            raise ValueError(
                f"postgres_url needs psycopg ({exc}): pip install 'puregrpc[postgres]'"
            ) from None
        return PostgresSettings(
            url=self.postgres_url, threads=self.sql_threads, query_url=self.postgres_query_url
        )

    def authentication(
        self, peers: PeerIdentities | None, connections: PeerIdentities | None = None
    ) -> CallerInterceptor:
        """The interceptor that settles each call's caller (``peers``: mutual TLS;
        ``connections``: the anonymous callers of open mode, one per connection)."""
        return CallerInterceptor(
            tokens=with_admins(self.tokens, self.admins), peers=peers, connections=connections
        )


#: Server options: keepalive PINGs after a minute of silence, and clients may
#: ping every 10 s (grpc-go's 5-minute minimum would punish the keepalive
#: settings long-lived watch and chat clients typically use).
SERVER_OPTIONS = ServerOptions(
    # Accept DATA frames up to 1 MiB: uploads of 64 KiB chunks then cost one
    # frame per chunk instead of four (measured: upload +35% against grpcio's
    # client, bench/streaming_transfer.py).
    connection=ConnectionConfig(max_frame_size=1024 * 1024),
    keepalive_time=60.0,
    keepalive_timeout=20.0,
    min_ping_interval=10.0,
    permit_keepalive_without_calls=True,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningServer:
    """What :func:`open_server` hands out: the parts of a live server."""

    server: Server
    service: StreamingService
    #: The server's ``grpc.health.v1.Health`` (see :data:`SERVICE_NAME`).
    health: HealthService
    backends: EmbeddedBackends
    #: ``HOST:PORT`` actually bound.
    address: str


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@asynccontextmanager
async def open_server(
    config: ServeConfig, *, deadlines: Mapping[str, float | None] | None = None
) -> AsyncIterator[RunningServer]:
    """Serve ``config`` for the ``async with`` block, then stop gracefully.

    ``deadlines`` overrides the service's default deadlines (see
    :data:`~.service.DEFAULT_DEADLINES`).
    """
    ssl_context = config.ssl_context()
    peers = PeerIdentities() if config.client_ca is not None else None
    connections = PeerIdentities()  # used in open mode only
    authentication = config.authentication(peers, connections)
    # The first line says who may call: open mode must never go unnoticed.
    (logger.warning if authentication.open_mode else logger.info)(authentication.describe())
    # Bound first: a busy address fails now, not after seeding the dataset;
    # clients that connect meanwhile wait in the backlog.
    listeners = await bind(config.host, config.port, reuse_port=config.reuse_port)
    try:
        async with _serving(
            config, listeners, ssl_context, peers, connections, authentication, deadlines
        ) as running:
            yield running
    finally:
        with trio.CancelScope(shield=True):
            for listener in listeners:
                await listener.aclose()


@asynccontextmanager
async def _serving(
    config: ServeConfig,
    listeners: list[trio.SocketListener],
    ssl_context: ssl.SSLContext | None,
    peers: PeerIdentities | None,
    connections: PeerIdentities,
    authentication: CallerInterceptor,
    deadlines: Mapping[str, float | None] | None,
) -> AsyncIterator[RunningServer]:
    async with open_embedded_backends(
        config.data_dir,
        dataset_rows=config.dataset_rows,
        retention=config.retention,
        sql_threads=config.sql_threads,
        query_threads=config.query_threads,
        file_threads=config.file_threads,
        sessions=config.upload_sessions,
        watch_queue_bytes=config.watch_queue_bytes,
        sql_busy_timeout=config.sql_busy_timeout,
        sql_cache_kib=config.sql_cache_kib,
        redis=config.redis_settings(),
        postgres=config.postgres_settings(),
    ) as backends:
        service = StreamingService(
            backends, config.settings(), deadlines=deadlines, authentication=authentication
        )
        server = Server(
            [service],
            options=config.server_options(),
            ssl_context=ssl_context,
            interceptors=service.interceptors(),
        )
        server.add_service(health := HealthService())
        enable_reflection(server)  # grpcurl, grpcui and evans can discover the API
        health.set(SERVICE_NAME, ServingStatus.SERVING)
        async with flat_nursery() as nursery:
            # The server runs shielded from our caller's cancellation so
            # that stopping is graceful (GOAWAY, grace period), not abrupt.
            server_scope = trio.CancelScope(shield=True)
            accepting = trio.CancelScope()

            if authentication.open_mode:
                # Each connection an anonymous caller of its own.
                handle: Callable[[trio.SocketStream], Awaitable[None]] = anonymous_connections(
                    server.handle_stream, connections
                )
            elif peers is None or ssl_context is None:
                handle = server.handle_stream
            else:
                handle = mutual_tls_handler(
                    server, context=ssl_context, peers=peers, admins=config.admins
                )

            async def run_server(*, task_status: trio.TaskStatus[None]) -> None:
                with server_scope:
                    async with trio.open_nursery() as connections:
                        with accepting:
                            async with trio.open_nursery() as acceptors:
                                for listener in listeners:
                                    acceptors.start_soon(accept_loop, listener, handle, connections)
                                task_status.started()
                        # No longer accepting: the connections drain in stop(),
                        # then server_scope ends them.
                        await trio.sleep_forever()

            if config.freeze_heap:
                # Everything the service needs is built: from here on the
                # collector's full passes walk only what calls make.
                frozen = freeze_heap()
                logger.info(
                    "froze the startup heap: %d objects out of the collector's full passes "
                    "(%.0f ms; --freeze-heap no keeps them in)",
                    frozen.objects,
                    frozen.seconds * 1e3,
                )
            await nursery.start(run_server)
            address = _address(config.host, listeners[0].socket.getsockname()[1])
            logger.info(
                "serving streaming.v1.StreamingService on %s (%s, data in %s)",
                address,
                _transport(config),
                config.data_dir,
            )
            console = config.console_url(address)
            if console is not None:
                logger.info("browser console at %s", console)
            try:
                yield RunningServer(
                    server=server,
                    service=service,
                    health=health,
                    backends=backends,
                    address=address,
                )
            finally:
                with trio.CancelScope(shield=True):
                    logger.info("stopping: %s", _active_summary(service))
                    # Probes and balancers see NOT_SERVING before connections close.
                    health.enter_graceful_shutdown()
                    accepting.cancel()  # no new connections from here on
                    # Open-ended streams would hold the grace period for
                    # nothing: end them now, with a resume hint.
                    backends.events.close("server shutting down")
                    with trio.move_on_after(config.shutdown_grace + 5):
                        await server.stop(grace=config.shutdown_grace)
                    server_scope.cancel()
                logger.info("stopped")


def _transport(config: ServeConfig) -> str:
    if config.client_ca is not None:
        return "mutual TLS"
    return "TLS" if config.tls_cert is not None else "plaintext"


def _active_summary(service: StreamingService) -> str:
    active = {name: n for name, n in service.active_calls.items() if n}
    if not active:
        return "no calls in progress"
    return "calls in progress: " + ", ".join(f"{name} x{n}" for name, n in active.items())


async def serve(
    config: ServeConfig, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve until cancelled; ``task_status.started("HOST:PORT")`` once bound."""
    async with open_server(config) as running:
        task_status.started(running.address)
        await trio.sleep_forever()
