"""RFC 9113 §3.4: after the connection preface, the first frame must be SETTINGS.

A peer that starts with anything else (a PING, a SETTINGS ACK, HEADERS, an
HTTP/1.x reply, a TLS record) gets GOAWAY(PROTOCOL_ERROR) as soon as the 9
octets of its first frame header are in, and none of its frames is acted on.
Calls on a connection that never started end UNAVAILABLE.
"""

from __future__ import annotations

import h2.errors
import pytest
from helpers import PREFACE, Pair, WireLog, of_type
from hyperframe.frame import (
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import given
from hypothesis import strategies as st

from puregrpc.wire import (
    CallEnded,
    CallStarted,
    ClientConnection,
    ConnectionClosed,
    EndCause,
    Event,
    PingReceived,
    ServerConnection,
    StatusCode,
)

PATH = "/pkg.First/Call"
PROTOCOL_ERROR = h2.errors.ErrorCodes.PROTOCOL_ERROR


def _ping() -> bytes:
    frame = PingFrame(0)
    frame.opaque_data = b"12345678"
    return bytes(frame.serialize())


def _settings(*, ack: bool = False) -> bytes:
    frame = SettingsFrame(0)
    if ack:
        frame.flags.add("ACK")
    else:
        frame.settings = {SettingsFrame.INITIAL_WINDOW_SIZE: 65_535}
    return bytes(frame.serialize())


def _headers() -> bytes:
    frame = HeadersFrame(1)
    frame.flags.add("END_HEADERS")
    frame.data = b"\x83\x86"  # :method POST, :scheme http (HPACK static table)
    return bytes(frame.serialize())


def _window_update() -> bytes:
    frame = WindowUpdateFrame(0)
    frame.window_increment = 1000
    return bytes(frame.serialize())


def _fresh_server() -> ServerConnection:
    server = ServerConnection()
    server.data_to_send()  # our preface
    return server


def _goaways(conn: ClientConnection | ServerConnection) -> list[GoAwayFrame]:
    """The GOAWAYs queued since the last ``data_to_send`` (our preface went already)."""
    log = WireLog(preface=False)
    log.feed(conn.data_to_send())
    assert not log.of_type(PingFrame), "a PING of a rejected start was answered"
    return log.of_type(GoAwayFrame)


def _feed(conn: ClientConnection | ServerConnection, data: bytes, cuts: list[int]) -> list[Event]:
    events: list[Event] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        events += conn.receive_data(data[start:cut])
        start = cut
    return events


@pytest.mark.parametrize(
    ("first", "fragment"),
    [
        (_ping(), "it sent a PING frame"),
        (_settings(ack=True), "SETTINGS acknowledgement"),
        (_headers(), "it sent a HEADERS frame"),
        (_window_update(), "it sent a WINDOW_UPDATE frame"),
        (b"\x00\x00\x00\xfa\x00\x00\x00\x00\x00", "bytes b'\\x00\\x00\\x00\\xfa"),
    ],
)
def test_a_client_whose_first_frame_is_not_settings_is_closed(first: bytes, fragment: str) -> None:
    server = _fresh_server()
    events = server.receive_data(PREFACE + first + _settings())
    assert of_type(events, PingReceived) == [] and of_type(events, CallStarted) == []
    (closed,) = of_type(events, ConnectionClosed)
    assert not closed.remote and closed.error_code == PROTOCOL_ERROR
    message = closed.debug_data.decode()
    assert "client's first frame must be" in message and fragment in message
    assert "RFC 9113" in message
    (goaway,) = _goaways(server)
    assert goaway.error_code == PROTOCOL_ERROR and goaway.last_stream_id == 0
    assert b"first frame" in goaway.additional_data
    assert server.closed
    # Whatever comes later is ignored: no second GOAWAY.
    assert server.receive_data(_settings() + _ping()) == []
    assert server.data_to_send() == b""


def test_a_server_whose_first_frame_is_ping_fails_the_calls_unavailable() -> None:
    client = ClientConnection()
    first = client.start_call(PATH)
    second = client.start_call(PATH)
    client.data_to_send()
    events = client.receive_data(_ping() + _settings())
    assert of_type(events, PingReceived) == []
    ended = of_type(events, CallEnded)
    assert sorted(e.stream_id for e in ended) == [first, second]
    for end in ended:
        assert end.cause is EndCause.CONNECTION_LOST
        assert end.status.code is StatusCode.UNAVAILABLE
        assert "protocol error" in end.status.details
        assert "server's first frame must be SETTINGS" in end.status.details
        assert "PING" in end.status.details
    (closed,) = of_type(events, ConnectionClosed)
    assert events[-1] is closed and closed.error_code == PROTOCOL_ERROR
    (goaway,) = _goaways(client)
    assert goaway.error_code == PROTOCOL_ERROR
    assert client.open_calls == 0 and client.available_streams == 0


@pytest.mark.parametrize(
    ("garbage", "fragment"),
    [
        (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "'HTTP/1.1 400 Bad Request'"),
        (b"\x16\x03\x03\x00\x5a\x02\x00\x00\x56\x03\x03", "TLS record"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "SSH-2.0"),
    ],
)
def test_a_server_answering_with_garbage_fails_at_once(garbage: bytes, fragment: str) -> None:
    client = ClientConnection()
    client.start_call(PATH)
    client.data_to_send()
    events = client.receive_data(garbage)
    (ended,) = of_type(events, CallEnded)
    assert ended.status.code is StatusCode.UNAVAILABLE
    assert fragment in ended.status.details
    assert len(_goaways(client)) == 1


@pytest.mark.parametrize(
    ("sent", "fragment"),
    [
        (b"", "the server sent no HTTP/2 SETTINGS before closing the connection"),
        (b"\x15\x03\x01\x00\x02\x02\x46", "a TLS record (does the server expect TLS?)"),
        (b"\x00\x00", "closed the connection after sending b'\\x00\\x00', not HTTP/2 SETTINGS"),
    ],
)
def test_a_server_closing_before_its_settings_is_named_in_the_status(
    sent: bytes, fragment: str
) -> None:
    client = ClientConnection()
    client.start_call(PATH)
    client.data_to_send()
    assert client.receive_data(sent) == []
    (ended,) = of_type(client.connection_lost("connection closed"), CallEnded)
    assert ended.status.code is StatusCode.UNAVAILABLE
    assert ended.status.details.startswith("connection closed: ")
    assert fragment in ended.status.details


def test_an_http1_request_instead_of_the_preface_is_named() -> None:
    server = _fresh_server()
    events = server.receive_data(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    (closed,) = of_type(events, ConnectionClosed)
    assert closed.error_code == PROTOCOL_ERROR
    message = closed.debug_data.decode()
    assert "did not send the HTTP/2 connection preface" in message
    assert "HTTP/1.x request" in message


def test_an_oversized_first_settings_frame_is_a_frame_size_error() -> None:
    server = _fresh_server()
    # The header alone: a 1 MiB SETTINGS frame is refused before its body.
    events = server.receive_data(PREFACE + b"\x10\x00\x00\x04\x00\x00\x00\x00\x00")
    (closed,) = of_type(events, ConnectionClosed)
    assert closed.error_code == h2.errors.ErrorCodes.FRAME_SIZE_ERROR
    assert "over our maximum frame size of 16384" in closed.debug_data.decode()


def test_a_short_start_waits_for_the_whole_frame_header() -> None:
    server = _fresh_server()
    assert server.receive_data(PREFACE + _ping()[:8]) == []
    events = server.receive_data(_ping()[8:])
    assert of_type(events, ConnectionClosed)[0].error_code == PROTOCOL_ERROR


def test_only_the_first_frame_is_checked() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.pump()
    # PINGs and WINDOW_UPDATEs after the SETTINGS are fine, both ways.
    assert of_type(pair.server.receive_data(_ping()), PingReceived)
    assert of_type(pair.client.receive_data(_ping()), PingReceived)
    pair.client.receive_data(_window_update())
    assert pair.client.is_open(sid) and not pair.client.closed and not pair.server.closed


@given(cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_a_valid_start_cut_anywhere_is_accepted(cuts: list[int]) -> None:
    client = ClientConnection()
    client.start_call(PATH)
    start = client.data_to_send()
    server = _fresh_server()
    events = _feed(server, start, [c % (len(start) + 1) for c in cuts])
    assert of_type(events, ConnectionClosed) == []
    (started,) = of_type(events, CallStarted)
    assert started.path == PATH


@given(
    frame_type=st.integers(min_value=0, max_value=255).filter(lambda t: t != 0x4),
    flags=st.integers(min_value=0, max_value=255),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=8),
)
def test_any_other_first_frame_type_is_refused_wherever_the_bytes_are_cut(
    frame_type: int, flags: int, cuts: list[int]
) -> None:
    first = b"\x00\x00\x08" + bytes([frame_type, flags]) + b"\x00\x00\x00\x00" + b"x" * 8
    data = PREFACE + first + bytes(DataFrame(1, data=b"hi").serialize())
    server = _fresh_server()
    events = _feed(server, data, [c % (len(data) + 1) for c in cuts])
    assert [type(e) for e in events] == [ConnectionClosed]
    (closed,) = of_type(events, ConnectionClosed)
    assert closed.error_code == PROTOCOL_ERROR
    assert len(_goaways(server)) == 1
