"""Server settings: limits, keepalive, connection lifetime, abuse protection."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    #: Receives trace records of every connection (see puregrpc.wire._trace).
    tracer: Tracer = NULL_TRACER
