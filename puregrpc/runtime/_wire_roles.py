"""What the runtime needs of a sans-IO connection: the verbs its transport and call streams use.

The HTTP/2 state machines of :mod:`puregrpc.wire` have them all; so can a
connection of another protocol that carries gRPC calls (gRPC-Web over
HTTP/1.1, :mod:`puregrpc.web`), which the transport and the server's call
runner then drive unchanged.
"""

from __future__ import annotations

from typing import Protocol

from ..wire import ConnectionStatistics, ConnectionTotals, Event, Metadata, Status, StreamStatistics


class WireConnection(Protocol):
    """A connection state machine, either role: bytes in, events out, messages framed."""

    #: What the connection has carried so far (channelz).
    totals: ConnectionTotals

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed bytes read from the socket; return what the peer did."""
        ...

    def data_to_send(self) -> bytes:
        """Every byte queued for the peer."""
        ...

    @property
    def wants_write(self) -> bool:
        """True when :meth:`data_to_send` has something to return."""
        ...

    def connection_lost(self, reason: str = "connection closed") -> list[Event]:
        """The socket closed: the end of every open call."""
        ...

    @property
    def open_calls(self) -> int:
        """Calls that have not ended."""
        ...

    def statistics(self) -> ConnectionStatistics:
        """A snapshot of the connection's flow-control state."""
        ...

    def consume(self, stream_id: int, wire_length: int) -> bool:
        """A message was taken; True when that queued a window grant."""
        ...

    def send_message(
        self, stream_id: int, payload: bytes | memoryview, *, compress_message: bool = True
    ) -> bool:
        """Frame and queue one message; True when it waits for the peer's window."""
        ...

    def is_blocked(self, stream_id: int) -> bool:
        """True while the call's data waits for the peer's window."""
        ...


class ServerWire(WireConnection, Protocol):
    """A server connection: answers calls, and shuts down in steps."""

    def is_open(self, stream_id: int) -> bool:
        """True while the call has not ended."""
        ...

    def send_response_headers(
        self, stream_id: int, metadata: Metadata | None = None, *, encoding: str | None = None
    ) -> None:
        """Send the call's response headers."""
        ...

    def end_call(self, stream_id: int, status: Status, metadata: Metadata | None = None) -> None:
        """End the call with its status, after what it queued."""
        ...

    def stream_statistics(self, stream_id: int) -> StreamStatistics:
        """A snapshot of one call's flow-control state."""
        ...

    @property
    def closed(self) -> bool:
        """True once no more calls are taken."""
        ...

    @property
    def shutdown_confirmed(self) -> bool:
        """True once no call the client started can still be on its way."""
        ...

    def begin_graceful_shutdown(self) -> None:
        """Take no new calls; let running ones finish."""
        ...

    def close(
        self, error_code: int = 0, debug_data: bytes = b"", last_stream_id: int | None = None
    ) -> None:
        """Take no more calls (HTTP/2: GOAWAY)."""
        ...

    def ping(self, data: bytes) -> None:
        """Send a PING, where the protocol has one."""
        ...
