"""Rare but legal (or hostile) stream events: padding, late frames, bad trailers, GOAWAY rules."""

from __future__ import annotations

import h2.errors
import pytest
from helpers import RESPONSE, Pair, RawClient, RawServer, ended_of, grpc_request_headers, of_type
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame, WindowUpdateFrame

from puregrpc.wire import (
    CallStarted,
    ConnectionClosed,
    ConnectionConfig,
    EndCause,
    MessageReceived,
    Status,
    StatusCode,
    check_h2_compatibility,
)
from puregrpc.wire.codecs import frame_message

PATH = "/pkg.Edge/Call"
OK = Status(code=StatusCode.OK)


def test_padding_is_credited_at_once_on_both_levels() -> None:
    config = ConnectionConfig(stream_window=65_535, connection_window=65_535, grant_ratio=0.001)
    raw = RawClient(config)
    stream_id = raw.h2.get_next_available_stream_id()
    raw.h2.send_headers(stream_id, grpc_request_headers())
    # 9 bytes of message, 200 bytes of padding (201 with the Pad Length field).
    raw.h2.send_data(stream_id, frame_message(b"abcd"), pad_length=200)
    mark = len(raw.wire)
    server_events, _ = raw.exchange()
    assert [e.data for e in of_type(server_events, MessageReceived)] == [b"abcd"]
    grants = [
        (f.stream_id, f.window_increment) for f in raw.wire.of_type(WindowUpdateFrame, since=mark)
    ]
    # Nothing was consumed, yet the padding came back on the stream and the connection.
    assert (stream_id, 201) in grants and (0, 201) in grants


def test_data_after_our_reset_earns_rst_stream_and_the_connection_lives() -> None:
    raw = RawClient()
    server_events, _, _ = raw.request(grpc_request_headers(), end=False)
    (started,) = of_type(server_events, CallStarted)
    ended = raw.server.reset(started.stream_id)
    assert ended is not None and ended.cause is EndCause.LOCAL_CANCEL
    raw.exchange()
    mark = len(raw.wire)
    # The client had not seen the reset yet: a late DATA frame arrives, forged
    # past h2's own bookkeeping of the stream.
    late = DataFrame(started.stream_id, data=frame_message(b"late"))
    server_events = raw.server.receive_data(late.serialize())
    raw.wire.feed(raw.server.data_to_send())
    assert server_events == []
    (reset,) = raw.wire.of_type(RstStreamFrame, since=mark)
    assert reset.stream_id == started.stream_id
    assert reset.error_code == h2.errors.ErrorCodes.STREAM_CLOSED
    assert raw.wire.of_type(GoAwayFrame, since=mark) == []
    # A new call on the same connection still works.
    server_events, _, _ = raw.request(grpc_request_headers())
    assert len(of_type(server_events, CallStarted)) == 1


def test_data_on_a_stream_the_peer_ended_is_a_stream_error() -> None:
    raw = RawClient()
    server_events, _, _ = raw.request(grpc_request_headers(), data=frame_message(b"x"))
    (started,) = of_type(server_events, CallStarted)
    mark = len(raw.wire)
    # END_STREAM was sent already: more DATA on that stream is a stream error
    # of type STREAM_CLOSED (RFC 9113 §5.1, half-closed remote).
    late = DataFrame(started.stream_id, data=b"more")
    events = raw.server.receive_data(late.serialize())
    raw.wire.feed(raw.server.data_to_send())
    (reset,) = raw.wire.of_type(RstStreamFrame, since=mark)
    assert reset.error_code == h2.errors.ErrorCodes.STREAM_CLOSED
    assert raw.wire.of_type(GoAwayFrame, since=mark) == []
    # Our reset, not the peer's: the call broke the protocol.
    ended = ended_of(events)
    assert ended.cause is EndCause.PROTOCOL_ERROR and ended.reset_code is None
    assert ended.status.code is StatusCode.INTERNAL
    assert "state forbids" in ended.status.details and "STREAM_CLOSED (5)" in ended.status.details
    server_events, _, _ = raw.request(grpc_request_headers())
    assert len(of_type(server_events, CallStarted)) == 1


@pytest.mark.parametrize("trailers_only", [True, False], ids=["trailers-only", "trailers"])
def test_a_malformed_grpc_status_ends_the_call_unknown(trailers_only: bool) -> None:
    raw = RawServer()
    sid = raw.client.start_call(PATH)
    raw.client.end_stream(sid)
    raw.exchange()
    bad_status = [(b"grpc-status", b"banana")]
    if trailers_only:
        raw.h2.send_headers(sid, RESPONSE + bad_status, end_stream=True)
    else:
        raw.h2.send_headers(sid, RESPONSE)
        raw.h2.send_headers(sid, bad_status, end_stream=True)
    ended = ended_of(raw.exchange())
    assert ended.status.code is StatusCode.UNKNOWN
    assert "malformed grpc-status" in ended.status.details
    expected = EndCause.TRAILERS_ONLY if trailers_only else EndCause.TRAILERS
    assert ended.cause is expected


def test_a_later_goaway_never_raises_the_last_stream_id() -> None:
    pair = Pair()
    first = pair.client.start_call(PATH)
    pair.client.end_stream(first)
    pair.pump()
    pair.server.close(last_stream_id=first)
    mark = len(pair.s2c)
    pair.server.close(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, last_stream_id=99)
    pair.pump()
    goaways = pair.s2c.of_type(GoAwayFrame, since=mark)
    assert [g.last_stream_id for g in goaways] == [first, first]


def test_a_refusal_for_a_stream_reset_in_the_same_read_is_not_sent() -> None:
    raw = RawClient()
    stream_id = raw.h2.get_next_available_stream_id()
    raw.h2.send_headers(stream_id, [(b":method", b"GET"), *grpc_request_headers()[1:]])
    raw.h2.reset_stream(stream_id)
    mark = len(raw.wire)
    server_events, _ = raw.exchange()
    # The 405 had nobody to go to; the refusal is still reported.
    assert raw.wire.of_type(HeadersFrame, since=mark) == []
    assert ended_of(server_events).cause is EndCause.REFUSED


def test_a_bad_message_after_our_trailers_were_queued_resets_the_stream() -> None:
    pair = Pair(
        client_config=ConnectionConfig(stream_window=65_535),
        server_config=ConnectionConfig(max_receive_message_size=100),
    )
    sid = pair.client.start_call(PATH)
    pair.pump()
    # The server's answer waits for window: its trailers are queued, not sent.
    # (The client consumes nothing, so it grants no window back.)
    pair.server.send_message(sid, b"z" * 60_000)
    pair.server.send_message(sid, b"w" * 10_000)
    pair.server.end_call(sid, OK)
    pair.to_client()
    assert pair.server.is_blocked(sid)
    pair.client.send_message(sid, b"y" * 101)  # over the server's limit
    server_events = pair.to_server()
    ended = ended_of(server_events)
    assert ended.cause is EndCause.PROTOCOL_ERROR
    assert ended.status.code is StatusCode.RESOURCE_EXHAUSTED
    pair.to_client()
    (reset,) = pair.s2c.of_type(RstStreamFrame)
    assert reset.error_code == h2.errors.ErrorCodes.INTERNAL_ERROR


def test_a_large_memoryview_message_is_copied_once_and_arrives_whole() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    buffer = bytearray(b"m" * 40_000)
    pair.client.send_message(sid, memoryview(buffer))
    buffer[:] = b"X" * 40_000  # the caller reuses its buffer at once
    pair.client.end_stream(sid)
    _, server_events = pair.pump()
    (message,) = of_type(server_events, MessageReceived)
    assert message.data == b"m" * 40_000
    assert repr(message) == f"MessageReceived(stream_id={sid}, 40000 bytes, wire_length=40005)"


def test_version_strings_with_suffixes_are_compared_by_their_numbers() -> None:
    assert check_h2_compatibility("4.2.0rc1") == []
    assert check_h2_compatibility("4.dev") != []


def test_late_data_for_a_long_forgotten_reset_stream_earns_rst_stream() -> None:
    raw = RawClient()
    server_events, _, _ = raw.request(grpc_request_headers(), end=False)
    (started,) = of_type(server_events, CallStarted)
    raw.server.reset(started.stream_id)
    raw.exchange()
    # More calls make h2 drop the closed stream from its table: the late
    # frame now meets a stream h2 only remembers as reset.
    for _ in range(3):
        raw.request(grpc_request_headers())
    mark = len(raw.wire)
    late = DataFrame(started.stream_id, data=frame_message(b"late"))
    assert raw.server.receive_data(late.serialize()) == []
    raw.wire.feed(raw.server.data_to_send())
    (reset,) = raw.wire.of_type(RstStreamFrame, since=mark)
    assert reset.stream_id == started.stream_id
    assert raw.wire.of_type(GoAwayFrame, since=mark) == []


def test_headers_reusing_a_reset_stream_id_earn_rst_stream_closed() -> None:
    raw = RawClient()
    server_events, _, _ = raw.request(grpc_request_headers(), end=False)
    (started,) = of_type(server_events, CallStarted)
    raw.server.reset(started.stream_id)
    raw.exchange()
    for _ in range(3):
        raw.request(grpc_request_headers())
    mark = len(raw.wire)
    # A forged HEADERS frame on the old (lower) stream id: h2's own client
    # would refuse to send it.
    block = raw.h2.encoder.encode(grpc_request_headers())
    reused = HeadersFrame(started.stream_id, data=block, flags=["END_HEADERS", "END_STREAM"])
    events = raw.server.receive_data(reused.serialize())
    raw.wire.feed(raw.server.data_to_send())
    assert of_type(events, CallStarted) == []
    (reset,) = raw.wire.of_type(RstStreamFrame, since=mark)
    assert reset.error_code == h2.errors.ErrorCodes.STREAM_CLOSED
    assert raw.wire.of_type(GoAwayFrame, since=mark) == []


def test_headers_reusing_an_ended_stream_id_are_a_connection_error() -> None:
    raw = RawClient()
    server_events, _, _ = raw.request(grpc_request_headers())
    (started,) = of_type(server_events, CallStarted)
    raw.server.end_call(started.stream_id, OK)
    raw.exchange()
    for _ in range(3):
        raw.request(grpc_request_headers())
    mark = len(raw.wire)
    block = raw.h2.encoder.encode(grpc_request_headers())
    reused = HeadersFrame(started.stream_id, data=block, flags=["END_HEADERS", "END_STREAM"])
    events = raw.server.receive_data(reused.serialize())
    raw.wire.feed(raw.server.data_to_send())
    (goaway,) = raw.wire.of_type(GoAwayFrame, since=mark)
    assert goaway.error_code == h2.errors.ErrorCodes.STREAM_CLOSED
    assert any(isinstance(e, ConnectionClosed) and not e.remote for e in events)
