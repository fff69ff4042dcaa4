"""Channelz bookkeeping shared by both roles: ids, call counts, the registry, snapshots.

gRFC A14 (channelz) describes a process as a graph of entities, each with a
process-wide id: *servers* (with their listen sockets and accepted
sockets), top-level *channels*, their *subchannels* (one per address) and
the *sockets* (connections) under those. This module holds what both roles
need to take part:

* :func:`next_channelz_id` hands out the ids (one counter for every kind,
  so an id never names two things);
* :class:`CallCounts` counts the calls of a server, channel or subchannel
  as they start and end;
* :data:`CHANNELZ` is the registry of live servers and top-level channels,
  held weakly (an entity that is never closed does not leak);
* the ``Channelz*`` dataclasses are frozen snapshots, which
  ``Server.channelz()`` and ``Channel.channelz()`` return and the channelz
  service (:mod:`puregrpc.channelz`) turns into its protobuf messages.

Socket data is read, not counted here: the wire core totals what each
connection carried (:class:`~puregrpc.wire.ConnectionTotals`), and the
transport stamps the wall-clock time of the changes it sees
(:class:`SocketTimes`). Nothing here is on a call's path except two
increments and one clock read per call.
"""

from __future__ import annotations

import itertools
import socket
import ssl
import time
import weakref
from dataclasses import dataclass
from typing import Literal, Protocol

import trio

#: Process-wide ids: positive, never reused.
_ids = itertools.count(1)


def next_channelz_id() -> int:
    """A new process-wide channelz id (every entity kind draws from the same counter)."""
    return next(_ids)


# ------------------------------------------------------------------ counting


class CallCounts:
    """Calls started, succeeded (status OK) and failed, and when the last one started."""

    __slots__ = ("failed", "last_started", "started", "succeeded")

    def __init__(self) -> None:
        self.started = 0
        self.succeeded = 0
        self.failed = 0
        #: Wall-clock time (``time.time()``) of the last start; None before the first.
        self.last_started: float | None = None

    def call_started(self) -> None:
        """A call started now."""
        self.started += 1
        self.last_started = time.time()

    def call_ended(self, ok: bool) -> None:
        """A call ended, with status OK or not."""
        if ok:
            self.succeeded += 1
        else:
            self.failed += 1

    def snapshot(self) -> ChannelzCalls:
        """The counts as a frozen value."""
        return ChannelzCalls(
            started=self.started,
            succeeded=self.succeeded,
            failed=self.failed,
            last_started=self.last_started,
        )


class SocketTimes:
    """Wall-clock times of a connection's last stream and messages (set by the transport)."""

    __slots__ = ("last_message_received", "last_message_sent", "last_stream_created")

    def __init__(self) -> None:
        self.last_stream_created: float | None = None
        self.last_message_sent: float | None = None
        self.last_message_received: float | None = None


# ----------------------------------------------------------------- snapshots


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelzCalls:
    """Call counts of a server, channel or subchannel."""

    started: int
    #: Calls that ended with status OK.
    succeeded: int
    #: Calls that ended with any other status.
    failed: int
    #: Wall-clock time of the last call's start (None: no call yet).
    last_started: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelzAddress:
    """One end of a socket: TCP (host and port), a Unix socket path, or something else."""

    kind: Literal["tcp", "unix", "other"]
    #: The IP address (tcp), the socket path (unix), or a description (other).
    host: str
    #: The TCP port; -1 when not a TCP address.
    port: int = -1

    def __str__(self) -> str:
        if self.kind == "tcp":
            return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return f"unix:{self.host}" if self.kind == "unix" else self.host


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelzTls:
    """What TLS protects a socket with."""

    #: The cipher suite, as OpenSSL names it.
    cipher: str
    #: The peer's certificate (DER), empty when it sent none.
    remote_certificate: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelzSocket:
    """One connection: what it carried, its windows, its ends, its security."""

    id: int
    #: A human-readable name: ``local -> remote``.
    name: str
    local: ChannelzAddress
    remote: ChannelzAddress
    #: Calls started on the connection (by us on a client, by the peer on a server).
    streams_started: int
    #: Streams that ended with END_STREAM where it counts (see ConnectionTotals).
    streams_succeeded: int
    streams_failed: int
    messages_sent: int
    messages_received: int
    keepalives_sent: int
    #: Wall-clock times (None: never).
    last_local_stream_created: float | None
    last_remote_stream_created: float | None
    last_message_sent: float | None
    last_message_received: float | None
    #: Connection-level window the peer granted us (what we may still send).
    local_flow_control_window: int
    #: Connection-level window we granted the peer (what it may still send).
    remote_flow_control_window: int
    tls: ChannelzTls | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelzListenSocket:
    """A socket a server listens on."""

    id: int
    local: ChannelzAddress


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelzServer:
    """A server: its calls, its listen sockets and its open connections."""

    id: int
    calls: ChannelzCalls
    listen_sockets: tuple[ChannelzListenSocket, ...]
    sockets: tuple[ChannelzSocket, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelzSubchannel:
    """A subchannel: one address of a channel, its state, its attempts and its connection."""

    id: int
    #: The address it connects to.
    target: str
    #: The connectivity state's name (IDLE, CONNECTING, READY, ...).
    state: str
    calls: ChannelzCalls
    #: The open connection (none while not connected).
    sockets: tuple[ChannelzSocket, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelzChannel:
    """A top-level channel: its target, state, calls and subchannels."""

    id: int
    target: str
    state: str
    calls: ChannelzCalls
    subchannels: tuple[ChannelzSubchannel, ...]


# ------------------------------------------------------------------ registry


class ServerEntity(Protocol):
    """What a server offers the registry."""

    @property
    def channelz_id(self) -> int:
        """The server's channelz id."""
        ...

    def channelz(self) -> ChannelzServer:
        """A snapshot of the server."""
        ...


class ChannelEntity(Protocol):
    """What a top-level channel offers the registry."""

    @property
    def channelz_id(self) -> int:
        """The channel's channelz id."""
        ...

    def channelz(self) -> ChannelzChannel:
        """A snapshot of the channel."""
        ...


class ChannelzRegistry:
    """The live servers and top-level channels of the process, held weakly."""

    def __init__(self) -> None:
        self._servers: weakref.WeakValueDictionary[int, ServerEntity] = (
            weakref.WeakValueDictionary()
        )
        self._channels: weakref.WeakValueDictionary[int, ChannelEntity] = (
            weakref.WeakValueDictionary()
        )

    def add_server(self, server: ServerEntity) -> None:
        """Make ``server`` visible to channelz."""
        self._servers[server.channelz_id] = server

    def remove_server(self, server: ServerEntity) -> None:
        """``server`` has stopped."""
        self._servers.pop(server.channelz_id, None)

    def add_channel(self, channel: ChannelEntity) -> None:
        """Make ``channel`` visible to channelz."""
        self._channels[channel.channelz_id] = channel

    def remove_channel(self, channel: ChannelEntity) -> None:
        """``channel`` has closed."""
        self._channels.pop(channel.channelz_id, None)

    def servers(self) -> list[ChannelzServer]:
        """Snapshots of every live server, by id."""
        return [server.channelz() for _, server in sorted(self._servers.items())]

    def channels(self) -> list[ChannelzChannel]:
        """Snapshots of every live top-level channel, by id."""
        return [channel.channelz() for _, channel in sorted(self._channels.items())]

    def server(self, server_id: int) -> ChannelzServer | None:
        """A snapshot of the live server ``server_id``, or None."""
        server = self._servers.get(server_id)
        return None if server is None else server.channelz()

    def channel(self, channel_id: int) -> ChannelzChannel | None:
        """A snapshot of the live top-level channel ``channel_id``, or None."""
        channel = self._channels.get(channel_id)
        return None if channel is None else channel.channelz()


#: The process's registry (channelz ids are process-wide, so is this).
CHANNELZ = ChannelzRegistry()


# ------------------------------------------------------------ socket details


def stream_addresses(stream: trio.abc.Stream) -> tuple[ChannelzAddress, ChannelzAddress]:
    """(local, remote) of a trio stream: its socket's, or "other" for streams without one."""
    inner = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    sock = getattr(inner, "socket", None)
    if sock is None:
        name = type(inner).__name__
        return ChannelzAddress(kind="other", host=name), ChannelzAddress(kind="other", host=name)
    return socket_address(sock, local=True), socket_address(sock, local=False)


def socket_address(sock: trio.socket.SocketType, *, local: bool) -> ChannelzAddress:
    """The local or remote address of a socket, as channelz reports it."""
    try:
        raw = sock.getsockname() if local else sock.getpeername()
    except OSError:
        return ChannelzAddress(kind="other", host="unknown")
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        return ChannelzAddress(kind="tcp", host=str(raw[0]), port=int(raw[1]))
    if sock.family == socket.AF_UNIX:
        path = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return ChannelzAddress(kind="unix", host=path.replace("\0", "@"))
    return ChannelzAddress(kind="other", host=str(raw))


def stream_tls(stream: trio.abc.Stream) -> ChannelzTls | None:
    """The TLS details of a stream (None when it is not TLS, or before the handshake)."""
    if not isinstance(stream, trio.SSLStream):
        return None
    try:
        cipher = stream.cipher()
        certificate = stream.getpeercert(binary_form=True)
    except (ssl.SSLError, trio.NeedHandshakeError, ValueError):
        return None
    return ChannelzTls(cipher=cipher[0] if cipher else "", remote_certificate=certificate or b"")
