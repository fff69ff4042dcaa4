"""Connection faults, misuse of the API, and tracing of the connections."""

from __future__ import annotations

import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
from helpers import (
    Pair,
    RawClient,
    WireLog,
    ended_of,
    grpc_request_headers,
    of_type,
)
from hyperframe.frame import GoAwayFrame, PingFrame, RstStreamFrame, SettingsFrame

from puregrpc.wire import (
    NULL_TRACER,
    CallEnded,
    CallStarted,
    ConnectionClosed,
    ConnectionConfig,
    EndCause,
    ListTracer,
    LocalProtocolError,
    MessageReceived,
    NullTracer,
    PingAcknowledged,
    ResponseHeaders,
    ServerConnection,
    Status,
    StatusCode,
    TraceRecord,
)

PATH = "/pkg.Err/Call"
OK = Status(code=StatusCode.OK)
ALL_STREAMS = 2**31 - 1


# ---------------------------------------------------- connection faults


def test_garbage_to_a_client_closes_the_connection() -> None:
    pair = Pair()
    first = pair.client.start_call(PATH)
    second = pair.client.start_call(PATH)
    pair.pump()
    events = pair.client.receive_data(b"\x00\x00\x04\x03\x00\x00\x00\x00\x00garbage!")
    ended = of_type(events, CallEnded)
    assert sorted(e.stream_id for e in ended) == [first, second]
    assert all(
        e.cause is EndCause.CONNECTION_LOST and e.status.code is StatusCode.INTERNAL for e in ended
    )
    (closed,) = of_type(events, ConnectionClosed)
    assert not closed.remote
    assert closed.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert events[-1] is closed
    assert pair.client.closed and pair.client.open_calls == 0
    log = WireLog(preface=False)
    log.feed(pair.client.data_to_send())
    (goaway,) = log.of_type(GoAwayFrame)
    assert goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    with pytest.raises(LocalProtocolError, match="closing"):
        pair.client.start_call(PATH)


def test_bytes_after_a_connection_error_are_ignored() -> None:
    pair = Pair()
    pair.client.start_call(PATH)
    pair.pump()
    events = pair.client.receive_data(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
    assert len(of_type(events, ConnectionClosed)) == 1
    pair.client.data_to_send()
    # No second ConnectionClosed, no second GOAWAY.
    assert pair.client.receive_data(b"\x00\x00\x00\x06\x00\x00\x00\x00\x00" + b"x" * 8) == []
    assert pair.client.data_to_send() == b""


def test_garbage_instead_of_a_preface_closes_the_server() -> None:
    server = ServerConnection()
    server.data_to_send()
    events = server.receive_data(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    (closed,) = of_type(events, ConnectionClosed)
    assert not closed.remote
    assert closed.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert server.closed
    log = WireLog(preface=False)
    log.feed(server.data_to_send())
    assert len(log.of_type(GoAwayFrame)) == 1


def test_garbage_mid_connection_ends_open_server_calls() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.pump()
    # A DATA frame on stream 0 is a connection error (RFC 9113 §6.1).
    events = pair.server.receive_data(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
    assert [e.stream_id for e in of_type(events, CallEnded)] == [sid]
    assert of_type(events, ConnectionClosed)[0].remote is False
    pair.s2c.feed(pair.server.data_to_send())
    assert len(pair.s2c.of_type(GoAwayFrame)) == 1


def test_goaway_from_the_server_ends_calls_above_last_stream_id() -> None:
    pair = Pair()
    first = pair.client.start_call(PATH)
    pair.pump()
    second = pair.client.start_call(PATH)
    third = pair.client.start_call(PATH)
    # The server has not seen the two later calls when it closes.
    pair.server.close(last_stream_id=first)
    client_events = pair.to_client()
    (closed,) = of_type(client_events, ConnectionClosed)
    assert closed.remote and closed.last_stream_id == first and closed.error_code == 0
    ended = of_type(client_events, CallEnded)
    assert sorted(e.stream_id for e in ended) == [second, third]
    assert all(e.status.code is StatusCode.UNAVAILABLE for e in ended)
    assert pair.client.is_open(first) and pair.client.closed
    assert pair.client.available_streams == 0
    with pytest.raises(LocalProtocolError, match="GOAWAY"):
        pair.client.start_call(PATH)
    # The call at or below last_stream_id still completes.
    pair.server.send_message(first, b"still here")
    pair.server.end_call(first, OK)
    client_events, server_events = pair.pump()
    assert of_type(server_events, CallStarted) == []  # the late calls never start
    assert [e.data for e in of_type(client_events, MessageReceived)] == [b"still here"]
    assert ended_of(client_events).status.ok


def test_error_goaway_fails_every_call() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.pump()
    pair.server.close(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, debug_data=b"slow down")
    client_events = pair.to_client()
    assert [e.stream_id for e in of_type(client_events, CallEnded)] == [sid]
    (closed,) = of_type(client_events, ConnectionClosed)
    assert closed.debug_data == b"slow down"
    assert client_events[-1] is closed
    assert pair.client.open_calls == 0


def test_graceful_shutdown_two_goaways_and_a_ping() -> None:
    pair = Pair()
    running = pair.client.start_call(PATH)
    pair.pump()
    mark = len(pair.s2c)
    pair.server.begin_graceful_shutdown()
    pair.server.begin_graceful_shutdown()  # idempotent
    assert pair.server.closed
    # A call the client starts before it sees the first GOAWAY is in flight.
    in_flight = pair.client.start_call(PATH)
    client_events = pair.to_client()
    goaway, ping = pair.s2c.frames[mark:]
    assert isinstance(goaway, GoAwayFrame) and goaway.last_stream_id == ALL_STREAMS
    assert goaway.error_code == 0
    assert isinstance(ping, PingFrame) and "ACK" not in ping.flags
    (closed,) = of_type(client_events, ConnectionClosed)
    assert closed.last_stream_id == ALL_STREAMS
    assert of_type(client_events, CallEnded) == []  # nothing above 2^31-1
    # The client's PING ACK (behind the in-flight HEADERS) triggers GOAWAY #2.
    server_events = pair.to_server()
    assert [e.stream_id for e in of_type(server_events, CallStarted)] == [in_flight]
    # The shutdown PING's ACK is reported, so a driver knows step two is done.
    assert of_type(server_events, PingAcknowledged) == [PingAcknowledged(data=b"pgrpc-gs")]
    assert pair.server.shutdown_confirmed
    mark = len(pair.s2c)
    client_events = pair.to_client()
    (second,) = pair.s2c.of_type(GoAwayFrame, since=mark)
    assert second.last_stream_id == in_flight
    assert of_type(client_events, CallEnded) == []
    # Calls started after that are refused; running ones complete.
    for sid in (running, in_flight):
        pair.client.send_message(sid, b"req")
        pair.client.end_stream(sid)
    _, server_events = pair.pump()
    assert len(of_type(server_events, MessageReceived)) == 2
    for sid in (running, in_flight):
        pair.server.send_message(sid, b"resp %d" % sid)
        pair.server.end_call(sid, OK)
    client_events, _ = pair.pump()
    assert sorted(e.stream_id for e in of_type(client_events, CallEnded)) == [running, in_flight]
    assert all(e.status.ok for e in of_type(client_events, CallEnded))
    assert pair.server.open_calls == pair.client.open_calls == 0


def test_requests_after_the_final_goaway_are_refused() -> None:
    raw = RawClient()
    raw.request(grpc_request_headers(), end=False)
    raw.server.begin_graceful_shutdown()
    raw.exchange()  # GOAWAY, PING, ACK, GOAWAY(last=1)
    server_events, _, mark = raw.request(grpc_request_headers())
    assert of_type(server_events, CallStarted) == []
    (reset,) = raw.wire.of_type(RstStreamFrame, since=mark)
    assert reset.error_code == h2.errors.ErrorCodes.REFUSED_STREAM


def test_requests_after_close_are_refused() -> None:
    raw = RawClient()
    raw.request(grpc_request_headers(), end=False)
    raw.server.close(last_stream_id=1)
    server_events, _, mark = raw.request(grpc_request_headers())
    assert of_type(server_events, CallStarted) == []
    (reset,) = raw.wire.of_type(RstStreamFrame, since=mark)
    assert reset.error_code == h2.errors.ErrorCodes.REFUSED_STREAM


def test_connection_lost_ends_every_call_unavailable() -> None:
    pair = Pair()
    ids = [pair.client.start_call(PATH) for _ in range(3)]
    pair.pump()
    events = pair.client.connection_lost()
    assert [e.stream_id for e in of_type(events, CallEnded)] == ids
    assert all(e.status.code is StatusCode.UNAVAILABLE for e in of_type(events, CallEnded))
    assert pair.client.closed and pair.client.open_calls == 0


# --------------------------------------------------------------- misuse


def test_sending_on_an_ended_call_is_a_local_error() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.client.end_stream(sid)
    with pytest.raises(LocalProtocolError, match=r"already ended|in state CLOSED"):
        pair.client.send_message(sid, b"after end")
    with pytest.raises(LocalProtocolError, match=r"already ended|in state CLOSED"):
        pair.client.end_stream(sid)
    pair.pump()
    pair.server.end_call(sid, OK)
    with pytest.raises(LocalProtocolError, match="no open call"):
        pair.server.send_message(sid, b"after end_call")
    with pytest.raises(LocalProtocolError, match="no open call"):
        pair.server.end_call(sid, OK)
    pair.pump()
    with pytest.raises(LocalProtocolError, match="no open call"):
        pair.client.send_message(sid, b"after CallEnded")
    with pytest.raises(LocalProtocolError, match="no open call"):
        pair.client.stream_statistics(sid)
    # Harmless on ended calls.
    pair.client.consume(sid, 10)
    pair.client.reset(sid)
    assert pair.client.queued_bytes(sid) == 0


def test_server_misuse_is_a_local_error() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    other = pair.client.start_call(PATH)
    pair.pump()
    pair.server.send_response_headers(sid)
    with pytest.raises(LocalProtocolError, match="cannot headers on the send side"):
        pair.server.send_response_headers(sid)
    with pytest.raises(LocalProtocolError, match="no open call"):
        pair.server.send_message(99, b"x")
    with pytest.raises(LocalProtocolError, match="unsupported response encoding"):
        pair.server.send_response_headers(other, encoding="br")
    # The refused call did not change state: it can still send its headers.
    pair.server.send_response_headers(other, encoding="gzip")
    pair.server.send_message(other, b"z" * 100)
    pair.server.end_call(other, OK)
    client_events, _ = pair.pump()
    encodings = {e.stream_id: e.encoding for e in of_type(client_events, ResponseHeaders)}
    assert encodings == {sid: "identity", other: "gzip"}
    assert [e.data for e in of_type(client_events, MessageReceived)] == [b"z" * 100]


def test_unsupported_encodings_and_bad_ping_are_local_errors() -> None:
    pair = Pair()
    with pytest.raises(LocalProtocolError, match="unsupported request encoding"):
        pair.client.start_call(PATH, encoding="br")
    with pytest.raises(LocalProtocolError, match="8 bytes"):
        pair.client.ping(b"short")
    pair.client.ping(b"12345678")
    client_events, _ = pair.pump()
    assert client_events == [PingAcknowledged(data=b"12345678")]


def test_max_send_message_size_is_enforced() -> None:
    pair = Pair(ConnectionConfig(max_send_message_size=4))
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"1234")
    with pytest.raises(LocalProtocolError) as info:
        pair.client.send_message(sid, b"12345")
    assert info.value.code is StatusCode.RESOURCE_EXHAUSTED
    assert pair.client.queued_bytes(sid) == 9  # only the first message (5 + 4) is queued


def test_concurrency_limit_is_enforced_on_the_client() -> None:
    pair = Pair(server_config=ConnectionConfig(max_concurrent_streams=2))
    pair.client.start_call(PATH)
    pair.client.start_call(PATH)
    assert pair.client.available_streams == 0
    with pytest.raises(LocalProtocolError, match="concurrent"):
        pair.client.start_call(PATH)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stream_window": 0},
        {"connection_window": 65_534},
        {"max_frame_size": 16_383},
        {"grant_ratio": 0.0},
        {"grant_ratio": 1.5},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ConnectionConfig(**kwargs)  # type: ignore[arg-type]


# -------------------------------------------------------------- tracing


def test_list_tracer_records_frames_messages_and_flow() -> None:
    client_tracer, server_tracer = ListTracer(), ListTracer()
    config = ConnectionConfig(stream_window=65_535, grant_ratio=0.25)
    pair = Pair(config, client_tracer=client_tracer, server_tracer=server_tracer)
    sid = pair.client.start_call(PATH, timeout=2.0)
    pair.client.send_message(sid, b"hello")
    pair.client.end_stream(sid)
    pair.pump()
    for _ in range(5):
        pair.server.send_message(sid, b"m" * 16_384)
    client_events, _ = pair.pump()
    for event in of_type(client_events, MessageReceived):
        pair.client.consume(sid, event.wire_length)
    for _ in range(4):
        client_events, _ = pair.pump()
        for event in of_type(client_events, MessageReceived):
            pair.client.consume(sid, event.wire_length)
    pair.server.end_call(sid, OK)
    pair.pump()

    server_kinds = set(server_tracer.kinds())
    client_kinds = set(client_tracer.kinds())
    assert {"frame_in", "frame_out", "call_start", "message_in", "message_out"} <= server_kinds
    assert {"stall", "resume", "window_update", "call_end"} <= server_kinds
    assert {"frame_in", "frame_out", "message_in", "consume", "window_grant"} <= client_kinds

    def records(tracer: ListTracer, kind: str) -> list[TraceRecord]:
        return [r for r in tracer.records if r.kind == kind]

    # Frames: the client's first frame out is SETTINGS on stream 0.
    first_out = records(client_tracer, "frame_out")[0]
    assert first_out.stream_id == 0 and first_out.fields["type"] == "SETTINGS"
    headers_out = [r for r in records(client_tracer, "frame_out") if r.fields["type"] == "HEADERS"]
    assert headers_out[0].stream_id == sid
    # Frame records agree with what hyperframe parsed on the wire.
    data_in = [r for r in records(client_tracer, "frame_in") if r.fields["type"] == "DATA"]
    assert sum(int(str(r.fields["length"])) for r in data_in) == pair.s2c.data_bytes()
    (start,) = records(server_tracer, "call_start")
    assert start.fields["path"] == PATH and start.fields["timeout"] == pytest.approx(2.0)
    (message_in,) = records(server_tracer, "message_in")
    assert message_in.stream_id == sid and message_in.fields["length"] == 5
    assert message_in.fields["compressed"] is False
    out = records(server_tracer, "message_out")
    assert len(out) == 5 and all(r.fields["length"] == 16_384 for r in out)
    grants = records(client_tracer, "window_grant")
    stream_grants = sum(int(str(r.fields["increment"])) for r in grants if r.stream_id == sid)
    assert stream_grants == sum(pair.c2s.window_updates(sid))
    (stall,) = records(server_tracer, "stall")
    assert stall.fields["send_window"] == 0 and int(str(stall.fields["queued"])) > 0
    assert records(server_tracer, "resume")[0].stream_id == sid
    end = records(server_tracer, "call_end")[-1]
    assert end.fields["code"] == "OK"


class CountingTracer(NullTracer):
    """Disabled, but counts any record it is handed anyway."""

    def __init__(self) -> None:
        self.count = 0

    def record(self, record: TraceRecord) -> None:
        self.count += 1


def test_disabled_tracers_record_nothing() -> None:
    tracer = CountingTracer()
    pair = Pair(client_tracer=tracer, server_tracer=tracer)
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"x")
    pair.client.end_stream(sid)
    _, server_events = pair.pump()
    pair.server.consume(sid, 6)
    pair.server.end_call(sid, OK)
    pair.pump()
    assert tracer.count == 0
    assert NULL_TRACER.enabled is False
    assert len(server_events) == 3


def test_connection_config_is_exposed() -> None:
    config = ConnectionConfig(max_frame_size=32_768)
    pair = Pair(server_config=config)
    assert pair.server.config is config
    assert pair.client.statistics().max_frame_size == 32_768
    assert pair.server.statistics().max_frame_size == 16_384


def test_window_update_and_reset_in_one_batch() -> None:
    # The server grants window, then refuses the call (trailers-only and
    # RST_STREAM) before the client reads anything: the client sees all of it
    # in one read. h2 has closed the stream by the time the WINDOW_UPDATE is
    # dispatched, so the blocked call must not try to send into it.
    config = ConnectionConfig(stream_window=65_535, connection_window=65_535)
    pair = Pair(server_config=config)
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"x" * 200_000)
    assert pair.client.queued_bytes(sid) > 0
    pair.to_server()
    pair.server.end_call(sid, Status(code=StatusCode.RESOURCE_EXHAUSTED, details="too big"))
    client_events = pair.to_client()
    ended = ended_of(client_events)
    assert ended.status.code is StatusCode.RESOURCE_EXHAUSTED
    assert pair.client.open_calls == 0 and pair.client.statistics().blocked_streams == 0
    assert pair.client.statistics().queued_bytes == 0
    # The connection is still usable.
    other = pair.client.start_call(PATH)
    pair.client.end_stream(other)
    _, server_events = pair.pump()
    assert [e.stream_id for e in of_type(server_events, CallStarted)] == [other]


def test_settings_change_and_reset_in_one_batch() -> None:
    pair = Pair(server_config=ConnectionConfig(stream_window=65_535))
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"y" * 100_000)
    pair.to_server()
    # A larger initial window (flushes blocked streams) followed by a reset,
    # in one read: the SETTINGS frame is forged in front of the server's reset.
    pair.server.reset(sid)
    larger_window = SettingsFrame(
        0, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20}
    ).serialize()
    client_events = pair.client.receive_data(larger_window + pair.server.data_to_send())
    (reset,) = of_type(client_events, CallEnded)
    assert reset.cause is EndCause.PEER_RESET
    assert reset.status.code is StatusCode.CANCELLED
    assert pair.client.open_calls == 0 and pair.client.statistics().queued_bytes == 0


def test_consuming_more_than_was_received_is_a_local_error() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"abc")
    _, server_events = pair.pump()
    (message,) = of_type(server_events, MessageReceived)
    with pytest.raises(LocalProtocolError, match="exceeds the 8 bytes"):
        pair.server.consume(sid, message.wire_length + 1)
    pair.server.consume(sid, message.wire_length)
    with pytest.raises(LocalProtocolError, match="exceeds the 0 bytes"):
        pair.server.consume(sid, 1)
