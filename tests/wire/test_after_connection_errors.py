"""Edge cases of the core: after a connection error, per-role statuses, fuzzer finds.

After h2 has found a connection error it refuses to send anything: the core
must neither hand back credit of calls that were still open, nor let a
driver's PING or graceful shutdown reach h2, or h2's own exception would
escape (only puregrpc's ProtocolError family may).
"""

from __future__ import annotations

import h2.errors
from helpers import (
    RESPONSE,
    Pair,
    RawClient,
    RawServer,
    WireLog,
    ended_of,
    grpc_request_headers,
    of_type,
)
from hyperframe.frame import DataFrame, GoAwayFrame, PingFrame

from puregrpc.wire import (
    CallEnded,
    CallStarted,
    ConnectionClosed,
    ConnectionConfig,
    MessageReceived,
    StatusCode,
)

PATH = "/pkg.After/Call"


def _messages(stream_id: int, count: int, size: int) -> bytes:
    """``count`` DATA frames, each one complete gRPC message of ``size`` bytes."""
    message = b"\x00" + size.to_bytes(4, "big") + b"m" * size
    return b"".join(bytes(DataFrame(stream_id, data=message).serialize()) for _ in range(count))


def test_unconsumed_messages_when_the_window_overflows_end_cleanly() -> None:
    # Nobody consumes: the 66th message overflows the 65535-byte connection
    # window, a connection error, while calls hold credit not yet returned.
    pair = Pair(client_config=ConnectionConfig(connection_window=65_535))
    sid = pair.client.start_call(PATH)
    other = pair.client.start_call(PATH)
    pair.pump()
    pair.server.send_response_headers(sid)
    pair.to_client()
    received = of_type(pair.client.receive_data(_messages(sid, 60, 995)), MessageReceived)
    assert len(received) == 60
    events = pair.client.receive_data(_messages(sid, 10, 995))
    assert of_type(events, MessageReceived) == []  # h2 gives no events of a failed read
    ended = of_type(events, CallEnded)
    assert sorted(e.stream_id for e in ended) == [sid, other]
    assert all(e.status.code is StatusCode.INTERNAL for e in ended)
    assert "window" in ended[0].status.details.lower()
    (closed,) = of_type(events, ConnectionClosed)
    assert closed.error_code == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR
    log = WireLog(preface=False)
    log.feed(pair.client.data_to_send())
    (goaway,) = log.of_type(GoAwayFrame)
    assert goaway.error_code == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR
    # Consuming what was delivered is a no-op now, not an error.
    assert pair.client.consume(sid, received[0].wire_length) is False


def test_ping_and_graceful_shutdown_after_a_connection_error_send_nothing() -> None:
    pair = Pair()
    pair.client.start_call(PATH)
    pair.pump()
    # A DATA frame on stream 0 is a connection error (RFC 9113 §6.1).
    events = pair.server.receive_data(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
    assert of_type(events, ConnectionClosed)
    pair.server.data_to_send()
    pair.server.ping(b"12345678")
    pair.server.begin_graceful_shutdown()
    assert pair.server.data_to_send() == b""
    assert not pair.server.shutdown_confirmed


def test_a_client_ping_after_a_connection_error_sends_nothing() -> None:
    pair = Pair()
    pair.client.start_call(PATH)
    pair.pump()
    pair.client.receive_data(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
    pair.client.data_to_send()
    pair.client.ping(b"abcdefgh")
    log = WireLog(preface=False)
    log.feed(pair.client.data_to_send())
    assert log.of_type(PingFrame) == []


def test_a_response_in_an_encoding_the_client_lacks_is_internal() -> None:
    # compression.md: "A message compressed by a server in a way not supported
    # by its client MUST fail with status INTERNAL".
    raw = RawServer()
    sid = raw.client.start_call(PATH)
    raw.client.end_stream(sid)
    raw.exchange()
    raw.h2.send_headers(sid, [*RESPONSE, (b"grpc-encoding", b"snappy")])
    raw.h2.send_data(sid, b"\x01\x00\x00\x00\x02zz")
    ended = ended_of(raw.exchange())
    assert ended.status.code is StatusCode.INTERNAL
    assert "unsupported encoding 'snappy'" in ended.status.details
    assert "gzip" in ended.status.details  # the supported ones are listed


def test_an_oversized_request_reset_and_followed_by_a_new_stream_in_one_read() -> None:
    # Found by the stateful fuzzer: in one read, a message over the limit on
    # stream 1, the client's RST_STREAM of it, and a new stream 3. When the
    # server comes to refuse the message, h2 has already forgotten stream 1
    # (opening stream 3 prunes closed streams), so the refusal has nobody to
    # go to; it must not escape as h2's StreamIDTooLowError.
    raw = RawClient(ConnectionConfig(max_receive_message_size=10))
    raw.h2.send_headers(1, grpc_request_headers())
    raw.h2.send_data(1, b"\x00\x00\x00\x00\x20" + b"x" * 32)
    raw.h2.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
    raw.h2.send_headers(3, grpc_request_headers(), end_stream=True)
    server_events, _ = raw.exchange()
    (ended,) = of_type(server_events, CallEnded)
    assert ended.stream_id == 1
    assert ended.status.code is StatusCode.RESOURCE_EXHAUSTED
    assert [e.stream_id for e in of_type(server_events, CallStarted)] == [1, 3]
    assert raw.server.is_open(3) and not raw.server.is_open(1)
