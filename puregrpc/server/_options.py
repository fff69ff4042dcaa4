"""Server settings: limits, keepalive, connection lifetime, abuse protection."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..web import WebOptions
from ..wire import NULL_TRACER, ConnectionConfig, Tracer


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerOptions:
    """Everything about how a :class:`Server` treats its connections.

    Defaults follow grpc-go's server where gRPC has a convention (keepalive
    every 2 hours, a 20 s ping timeout, a 5 minute minimum ping interval for
    clients, GOAWAY after 2 ping strikes).
    """

    #: Windows and limits of each HTTP/2 connection (max concurrent streams,
    #: max message and header sizes...).
    connection: ConnectionConfig = field(default_factory=ConnectionConfig)
    #: Ping a connection after this many idle seconds (``None``: never).
    keepalive_time: float | None = 7200.0
    #: Close the connection if a keepalive PING is not answered in time.
    keepalive_timeout: float = 20.0
    #: Clients may not ping more often than this (seconds) while we send
    #: nothing; each ping sooner is a strike.
    min_ping_interval: float = 300.0
    #: Allow client pings while no call is open (otherwise each is a strike).
    permit_keepalive_without_calls: bool = False
    #: Strikes tolerated before GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings").
    max_ping_strikes: int = 2
    #: Close a connection gracefully after this many seconds without calls.
    max_connection_idle: float | None = None
    #: Close a connection gracefully after this many seconds, whatever it does.
    max_connection_age: float | None = None
    #: After max_connection_age, calls in flight get this long to finish.
    max_connection_age_grace: float = 30.0
    #: RST_STREAMs a client may send per second before it is cut off (HTTP/2
    #: rapid reset, CVE-2023-44487).
    max_resets_per_second: int = 200
    #: PING / SETTINGS / refused-request frames a client may send per second.
    max_control_frames_per_second: int = 1000
    #: Compress responses with this encoding when the client accepts it.
    compression: str | None = None
    #: Receives trace records of every connection (see puregrpc.trace).
    tracer: Tracer = NULL_TRACER
    #: gRPC-Web on the same port (HTTP/2 and HTTP/1.1; CORS origins allowed):
    #: see docs/grpc-web.md. ``None``: native gRPC over HTTP/2 only.
    grpc_web: WebOptions | None = field(default_factory=WebOptions)

    def __post_init__(self) -> None:
        # Checked here, not at the first connection: a bad option is the
        # caller's error, raised where the options are made.
        for name in ("keepalive_time", "max_connection_idle", "max_connection_age"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"ServerOptions.{name} must be None or positive, got {value}")
        if not self.keepalive_timeout > 0:
            raise ValueError(
                f"ServerOptions.keepalive_timeout must be positive, got {self.keepalive_timeout}"
            )
        for name in ("min_ping_interval", "max_connection_age_grace"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"ServerOptions.{name} must not be negative")
        for name in ("max_ping_strikes", "max_resets_per_second", "max_control_frames_per_second"):
            if getattr(self, name) < 0:
                raise ValueError(f"ServerOptions.{name} must not be negative")
