"""puregrpc's H2Connection builds the hot frames itself: the same bytes and states as h2's.

Two server connections, ours and plain h2, receive the same client bytes and
are asked for the same sends, in random orders: headers, trailers, DATA of
every size the windows and frame size allow (or do not), bare END_STREAM,
on open, half-closed, reset and unknown streams. Every step must queue the
same bytes, raise the same exception type, and leave the same stream states
and windows, so the fast paths are h2's behaviour, minus its cost.
"""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.exceptions
import h2.settings
from hypothesis import example, given, settings
from hypothesis import strategies as st

from puregrpc.wire import H2Connection

Header = tuple[bytes, bytes]


def _config(client_side: bool) -> h2.config.H2Configuration:
    return h2.config.H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


_REQUEST: list[Header] = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/pkg.Service/Method"),
    (b":authority", b"localhost"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]
_RESPONSE: list[Header] = [(b":status", b"200"), (b"content-type", b"application/grpc")]
_TRAILERS: list[Header] = [(b"grpc-status", b"0")]
_INFORMATIONAL: list[Header] = [(b":status", b"103")]

_header_lists = st.one_of(
    st.sampled_from([_RESPONSE, _TRAILERS, _INFORMATIONAL]),
    # Blocks big enough to need CONTINUATION frames at a small frame size.
    st.builds(lambda n: [*_RESPONSE, (b"x-big", bytes(range(256)) * n)], st.integers(1, 130)),
    st.builds(lambda v: [(b"grpc-status", b"0"), (b"x-value", v)], st.binary(max_size=20)),
    # str headers are h2's business (its own path).
    st.just([(":status", "200")]),
)
_stream_ids = st.sampled_from([1, 3, 5, 7])
_operations = st.lists(
    st.one_of(
        st.tuples(st.just("headers"), _stream_ids, _header_lists, st.booleans()),
        st.tuples(st.just("data"), _stream_ids, st.integers(0, 70_000), st.booleans()),
        st.tuples(st.just("end"), _stream_ids),
        st.tuples(st.just("reset"), _stream_ids),
        st.tuples(st.just("window"), st.sampled_from([0, 1, 3]), st.integers(1, 70_000)),
        st.tuples(st.just("frame_size"), st.sampled_from([16_384, 20_000])),
    ),
    max_size=25,
)


class _Pair:
    """A client and the two servers (ours, h2's) that hear it."""

    def __init__(self, stream_window: int) -> None:
        self.client_listens = True
        self.client = h2.connection.H2Connection(_config(True))
        self.client.local_settings = h2.settings.Settings(
            client=True,
            initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: stream_window},
        )
        self.client.initiate_connection()
        self.ours = H2Connection(_config(False))
        self.theirs = h2.connection.H2Connection(_config(False))
        for server in self.servers:
            server.initiate_connection()
        self.deliver()
        server_bytes = self.ours.data_to_send()
        assert server_bytes == self.theirs.data_to_send()
        self.client.receive_data(server_bytes)
        self.deliver()  # the client's SETTINGS ACK
        for stream_id in (1, 3, 5):
            self.client.send_headers(stream_id, _REQUEST, end_stream=stream_id == 5)
        self.deliver()

    @property
    def servers(self) -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
        return self.ours, self.theirs

    def deliver(self) -> None:
        data = self.client.data_to_send()
        if data:
            for server in self.servers:
                server.receive_data(data)

    def both(self, action: str, *args: Any, **kwargs: Any) -> None:
        outcomes = []
        for server in self.servers:
            try:
                getattr(server, action)(*args, **kwargs)
                outcomes.append(None)
            except (h2.exceptions.H2Error, ValueError, KeyError) as exc:
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1], (action, args, outcomes)
        self.compare()

    def compare(self) -> None:
        ours, theirs = self.servers
        sent = ours.data_to_send()
        assert sent == theirs.data_to_send()
        assert ours.outbound_flow_control_window == theirs.outbound_flow_control_window
        assert ours.state_machine.state == theirs.state_machine.state
        assert ours.streams.keys() == theirs.streams.keys()
        for stream_id, stream in ours.streams.items():
            other = theirs.streams[stream_id]
            assert stream.state_machine.state == other.state_machine.state, stream_id
            assert stream.outbound_flow_control_window == other.outbound_flow_control_window
        if sent and self.client_listens:
            # h2 lets a server send what a client refuses (DATA before
            # headers): the bytes are the same either way, so the client
            # only hears the servers while the exchange is a valid one.
            try:
                self.client.receive_data(sent)
            except h2.exceptions.ProtocolError:
                self.client_listens = False
                return
            self.deliver()


@settings(max_examples=200, deadline=None)
@given(stream_window=st.sampled_from([65_535, 100, 1]), operations=_operations)
def test_fast_frames_match_h2(stream_window: int, operations: list[tuple[Any, ...]]) -> None:
    pair = _Pair(stream_window)
    for operation in operations:
        kind = operation[0]
        if kind == "headers":
            _, stream_id, headers, end_stream = operation
            pair.both("send_headers", stream_id, list(headers), end_stream=end_stream)
        elif kind == "data":
            _, stream_id, size, end_stream = operation
            pair.both("send_data", stream_id, memoryview(b"d" * size), end_stream=end_stream)
        elif kind == "end":
            pair.both("end_stream", operation[1])
        elif kind == "reset":
            pair.both("reset_stream", operation[1])
        elif not pair.client_listens:
            continue  # the client is gone: nothing more to say from its side
        elif kind == "window":
            _, stream_id, increment = operation
            try:
                pair.client.increment_flow_control_window(increment, stream_id or None)
            except (h2.exceptions.H2Error, KeyError):
                continue
            pair.deliver()
            pair.compare()
        else:
            pair.client.update_settings({h2.settings.SettingCodes.MAX_FRAME_SIZE: operation[1]})
            pair.deliver()
            pair.compare()


def test_a_unary_answer_is_three_frames_in_one_buffer() -> None:
    pair = _Pair(65_535)
    ours = pair.ours
    ours.send_headers(1, list(_RESPONSE))
    ours.send_data(1, b"\x00\x00\x00\x00\x02hi")
    ours.send_headers(1, list(_TRAILERS), end_stream=True)
    data = ours.data_to_send()
    # HEADERS (END_HEADERS), DATA, HEADERS (END_HEADERS | END_STREAM), in order.
    kinds = []
    offset = 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 3], "big")
        kinds.append(
            (
                data[offset + 3],
                data[offset + 4],
                int.from_bytes(data[offset + 5 : offset + 9], "big"),
            )
        )
        offset += 9 + length
    assert kinds == [(1, 0x4, 1), (0, 0, 1), (1, 0x5, 1)]
    assert ours.streams[1].closed is False  # the client has not half-closed stream 1
    assert ours.streams[1].state_machine.trailers_sent


# ---------------------------------------------------------------- client side

_REQUESTS: dict[str, list[Header]] = {
    "post": list(_REQUEST),
    "head": [(b":method", b"HEAD"), *_REQUEST[1:]],
    "host": [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/x"), (b"host", b"h")],
    "bare": [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/x")],
    "trailers": list(_TRAILERS),
}
_client_operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("open"),
            st.sampled_from(["next", "next", "next", 1, 2, 3, 5]),
            st.sampled_from(sorted(_REQUESTS)),
            st.booleans(),
        ),
        st.tuples(
            st.just("data"), st.sampled_from([1, 3, 5, 7]), st.integers(0, 70), st.booleans()
        ),
        st.tuples(st.just("end"), st.sampled_from([1, 3, 5, 7])),
        st.tuples(st.just("reset"), st.sampled_from([1, 3, 5, 7])),
        st.tuples(st.just("max_streams"), st.sampled_from([1, 2, 100])),
    ),
    max_size=20,
)


class _Clients:
    """Two clients (ours, h2's) of one plain h2 server, asked for the same sends."""

    def __init__(self) -> None:
        self.server = h2.connection.H2Connection(_config(False))
        self.server.initiate_connection()
        self.ours = H2Connection(_config(True))
        self.theirs = h2.connection.H2Connection(_config(True))
        self.next_id = 1
        greeting = self.server.data_to_send()
        for client in self.both:
            client.initiate_connection()
            client.receive_data(greeting)
        self.compare()

    @property
    def both(self) -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
        return self.ours, self.theirs

    def act(self, action: str, *args: Any, **kwargs: Any) -> None:
        outcomes = []
        for client in self.both:
            try:
                getattr(client, action)(*args, **kwargs)
                outcomes.append(None)
            except (h2.exceptions.H2Error, ValueError, KeyError) as exc:
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1], (action, args, outcomes)
        self.compare()

    def server_settings(self, max_streams: int) -> None:
        self.server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams})
        data = self.server.data_to_send()
        outcomes = []
        for client in self.both:
            try:
                client.receive_data(data)
                outcomes.append(None)
            except h2.exceptions.H2Error as exc:  # a client already closed by an error
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1]
        self.compare()

    def compare(self) -> None:
        ours, theirs = self.both
        assert ours.data_to_send() == theirs.data_to_send()
        assert ours.state_machine.state == theirs.state_machine.state
        assert ours.highest_outbound_stream_id == theirs.highest_outbound_stream_id
        assert ours.open_outbound_streams == theirs.open_outbound_streams
        assert ours.outbound_flow_control_window == theirs.outbound_flow_control_window
        assert ours.streams.keys() == theirs.streams.keys()
        for stream_id, stream in ours.streams.items():
            other = theirs.streams[stream_id]
            assert stream.state_machine.state == other.state_machine.state, stream_id
            assert stream.state_machine.client == other.state_machine.client
            assert stream._authority == other._authority
            assert stream.request_method == other.request_method
            assert stream.outbound_flow_control_window == other.outbound_flow_control_window


@settings(max_examples=200, deadline=None)
@given(operations=_client_operations)
@example(operations=[("open", "next", "post", False), ("open", 1, "trailers", True)])
def test_fast_client_headers_match_h2(operations: list[tuple[Any, ...]]) -> None:
    # A client opening streams (in order, out of order, over the server's
    # limit), sending requests of several shapes, trailers, DATA, resets.
    clients = _Clients()
    for operation in operations:
        kind = operation[0]
        if kind == "open":
            _, which, shape, end_stream = operation
            stream_id = clients.next_id if which == "next" else which
            if which == "next":
                clients.next_id += 2
            clients.act("send_headers", stream_id, list(_REQUESTS[shape]), end_stream=end_stream)
        elif kind == "data":
            _, stream_id, size, end_stream = operation
            clients.act("send_data", stream_id, b"d" * size, end_stream=end_stream)
        elif kind == "end":
            clients.act("end_stream", operation[1])
        elif kind == "reset":
            clients.act("reset_stream", operation[1])
        else:
            clients.server_settings(operation[1])
