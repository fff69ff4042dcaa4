"""Refusals, per-call protocol faults and resets: how a call ends when something is wrong."""

from __future__ import annotations

import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
from helpers import (
    RESPONSE,
    Pair,
    RawClient,
    RawServer,
    ended_of,
    grpc_request_headers,
    of_type,
    response_of,
)
from hyperframe.frame import HeadersFrame, RstStreamFrame

from puregrpc.wire import (
    CallEnded,
    CallStarted,
    ConnectionConfig,
    EndCause,
    HalfClosed,
    LocalProtocolError,
    MessageReceived,
    Metadata,
    Status,
    StatusCode,
)

PATH = "/pkg.Err/Call"
OK = Status(code=StatusCode.OK)
ALL_STREAMS = 2**31 - 1


# ------------------------------------------------------ request refusals


def test_non_post_gets_405() -> None:
    raw = RawClient()
    headers = [(n, b"GET" if n == b":method" else v) for n, v in grpc_request_headers()]
    server_events, client_events, _ = raw.request(headers)
    response = response_of(client_events)
    assert response[b":status"] == b"405"
    assert of_type(server_events, CallStarted) == []
    ended = ended_of(server_events)
    assert ended.cause is EndCause.REFUSED
    assert raw.server.open_calls == 0


def test_non_grpc_content_type_gets_415() -> None:
    raw = RawClient()
    headers = [
        (n, b"application/json" if n == b"content-type" else v) for n, v in grpc_request_headers()
    ]
    server_events, client_events, _ = raw.request(headers, data=b"{}")
    assert response_of(client_events)[b":status"] == b"415"
    assert of_type(server_events, CallStarted) == []
    assert of_type(server_events, MessageReceived) == []
    assert ended_of(server_events).cause is EndCause.REFUSED


@pytest.mark.parametrize("path", [b"no-slash", b"/only-service", b"/svc/", b"//method"])
def test_malformed_path_is_unimplemented_trailers_only(path: bytes) -> None:
    raw = RawClient()
    server_events, client_events, mark = raw.request(grpc_request_headers(path))
    response = response_of(client_events)
    assert response[b":status"] == b"200"
    assert response[b"grpc-status"] == b"%d" % StatusCode.UNIMPLEMENTED
    (frame,) = raw.wire.of_type(HeadersFrame, since=mark)
    assert "END_STREAM" in frame.flags
    assert ended_of(server_events).status.code is StatusCode.UNIMPLEMENTED


def test_unknown_grpc_encoding_is_unimplemented_with_accept_encoding() -> None:
    raw = RawClient()
    headers = grpc_request_headers(grpc_encoding=b"snappy")
    server_events, client_events, _ = raw.request(headers, data=b"\x01\x00\x00\x00\x00")
    response = response_of(client_events)
    assert response[b"grpc-status"] == b"%d" % StatusCode.UNIMPLEMENTED
    accepted = [v.strip() for v in response[b"grpc-accept-encoding"].split(b",")]
    assert b"gzip" in accepted and b"snappy" not in accepted
    assert b"snappy" in response[b"grpc-message"]
    assert ended_of(server_events).status.code is StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("value", [b"", b"10", b"S", b"1x", b"123456789S", b"-1S", b"1.5S"])
def test_malformed_grpc_timeout_is_internal(value: bytes) -> None:
    raw = RawClient()
    server_events, client_events, _ = raw.request(grpc_request_headers(grpc_timeout=value))
    assert response_of(client_events)[b"grpc-status"] == b"%d" % StatusCode.INTERNAL
    assert of_type(server_events, CallStarted) == []


@pytest.mark.parametrize(
    "headers",
    [
        [*grpc_request_headers(), (b"X-Upper", b"1")],
        [*grpc_request_headers(), (b"connection", b"keep-alive")],
        [*grpc_request_headers(), (b":path", b"/pkg.Svc/Other")],
        [*grpc_request_headers(), (b":method", b"POST")],
        [(b"x-first", b"1"), *grpc_request_headers()],  # pseudo-header after a regular one
    ],
    ids=["uppercase", "connection", "duplicate-path", "duplicate-method", "pseudo-after"],
)
def test_malformed_http2_headers_get_rst_stream_protocol_error(
    headers: list[tuple[bytes, bytes]],
) -> None:
    raw = RawClient()
    server_events, client_events, mark = raw.request(headers, end=False)
    (reset,) = raw.wire.of_type(RstStreamFrame, since=mark)
    assert reset.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert raw.wire.of_type(HeadersFrame, since=mark) == []
    assert of_type(server_events, CallStarted) == []
    assert ended_of(server_events).cause is EndCause.REFUSED
    assert any(isinstance(e, h2.events.StreamReset) for e in client_events)
    # The connection survives: a good request on the next stream still works.
    server_events, _, _ = raw.request(grpc_request_headers())
    assert len(of_type(server_events, CallStarted)) == 1


# ------------------------------------------------------ message faults


def test_oversized_message_is_resource_exhausted() -> None:
    pair = Pair(server_config=ConnectionConfig(max_receive_message_size=1000))
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"a" * 1000)  # exactly the limit: fine
    pair.client.send_message(sid, b"b" * 1001)
    client_events, server_events = pair.pump()
    assert [len(e.data) for e in of_type(server_events, MessageReceived)] == [1000]
    server_end = ended_of(server_events)
    assert server_end.cause is EndCause.PROTOCOL_ERROR
    assert server_end.status.code is StatusCode.RESOURCE_EXHAUSTED
    client_end = ended_of(client_events)
    assert client_end.status.code is StatusCode.RESOURCE_EXHAUSTED
    assert "1001" in client_end.status.details
    assert client_end.cause is EndCause.TRAILERS_ONLY
    assert pair.client.open_calls == pair.server.open_calls == 0


def test_oversized_response_is_resource_exhausted_on_the_client() -> None:
    pair = Pair(ConnectionConfig(max_receive_message_size=10))
    sid = pair.client.start_call(PATH)
    pair.pump()
    pair.server.send_message(sid, b"x" * 11)
    client_events, server_events = pair.pump()
    ended = ended_of(client_events)
    assert ended.status.code is StatusCode.RESOURCE_EXHAUSTED
    assert ended.cause is EndCause.PROTOCOL_ERROR
    # The client cancelled the stream so the server stops.
    (reset,) = of_type(server_events, CallEnded)
    assert reset.cause is EndCause.PEER_RESET
    assert reset.reset_code == h2.errors.ErrorCodes.CANCEL


def test_stream_ending_mid_message_is_internal() -> None:
    raw = RawClient()
    # Prefix announces 10 bytes; only 3 arrive before END_STREAM.
    server_events, client_events, _ = raw.request(
        grpc_request_headers(), data=b"\x00\x00\x00\x00\x0aabc"
    )
    assert len(of_type(server_events, CallStarted)) == 1
    ended = ended_of(server_events)
    assert ended.status.code is StatusCode.INTERNAL
    assert ended.cause is EndCause.PROTOCOL_ERROR
    assert of_type(server_events, HalfClosed) == []
    assert response_of(client_events)[b"grpc-status"] == b"%d" % StatusCode.INTERNAL


def test_compressed_flag_without_encoding_is_internal() -> None:
    raw = RawClient()
    server_events, client_events, _ = raw.request(
        grpc_request_headers(), data=b"\x01\x00\x00\x00\x02hi"
    )
    ended = ended_of(server_events)
    assert ended.status.code is StatusCode.INTERNAL
    assert "grpc-encoding" in ended.status.details
    assert response_of(client_events)[b"grpc-status"] == b"%d" % StatusCode.INTERNAL


def test_compressed_flag_without_encoding_on_the_client() -> None:
    raw = RawServer()
    sid = raw.client.start_call(PATH)
    raw.exchange()
    raw.h2.send_headers(sid, RESPONSE)
    raw.h2.send_data(sid, b"\x01\x00\x00\x00\x02hi")
    client_events = raw.exchange()
    assert ended_of(client_events).status.code is StatusCode.INTERNAL
    assert raw.wire.of_type(RstStreamFrame)[-1].error_code == h2.errors.ErrorCodes.CANCEL


def test_server_ending_without_trailers_is_internal() -> None:
    raw = RawServer()
    sid = raw.client.start_call(PATH)
    raw.client.end_stream(sid)
    raw.exchange()
    raw.h2.send_headers(sid, RESPONSE)
    raw.h2.send_data(sid, b"\x00\x00\x00\x00\x02ok", end_stream=True)
    client_events = raw.exchange()
    assert [e.data for e in of_type(client_events, MessageReceived)] == [b"ok"]
    ended = ended_of(client_events)
    assert ended.status.code is StatusCode.INTERNAL
    assert "trailers" in ended.status.details
    assert raw.client.open_calls == 0


def test_truncated_message_before_ok_trailers_is_internal() -> None:
    raw = RawServer()
    sid = raw.client.start_call(PATH)
    raw.client.end_stream(sid)
    raw.exchange()
    raw.h2.send_headers(sid, RESPONSE)
    raw.h2.send_data(sid, b"\x00\x00\x00\x00\x09part")
    raw.h2.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
    ended = ended_of(raw.exchange())
    assert ended.status.code is StatusCode.INTERNAL


@pytest.mark.parametrize(
    ("http_status", "code"),
    [
        (b"400", StatusCode.INTERNAL),
        (b"401", StatusCode.UNAUTHENTICATED),
        (b"403", StatusCode.PERMISSION_DENIED),
        (b"404", StatusCode.UNIMPLEMENTED),
        (b"429", StatusCode.UNAVAILABLE),
        (b"502", StatusCode.UNAVAILABLE),
        (b"503", StatusCode.UNAVAILABLE),
        (b"504", StatusCode.UNAVAILABLE),
        (b"500", StatusCode.UNKNOWN),
        (b"418", StatusCode.UNKNOWN),
    ],
)
def test_non_200_response_maps_to_a_status(http_status: bytes, code: StatusCode) -> None:
    raw = RawServer()
    sid = raw.client.start_call(PATH)
    raw.exchange()
    raw.h2.send_headers(sid, [(b":status", http_status), (b"content-type", b"text/plain")])
    raw.h2.send_data(sid, b"service unavailable", end_stream=True)
    client_events = raw.exchange()
    ended = ended_of(client_events)
    assert ended.status.code is code
    assert http_status.decode() in ended.status.details
    assert raw.client.open_calls == 0


def test_non_200_trailers_only_maps_to_a_status() -> None:
    raw = RawServer()
    sid = raw.client.start_call(PATH)
    raw.exchange()
    raw.h2.send_headers(sid, [(b":status", b"503")], end_stream=True)
    ended = ended_of(raw.exchange())
    assert ended.status.code is StatusCode.UNAVAILABLE
    assert ended.trailers_only


@pytest.mark.parametrize(
    ("trailers", "fragment"),
    [
        ([(b"x-note", b"kept")], "missing grpc-status in trailers"),
        ([(b"grpc-status", b"fine"), (b"x-note", b"kept")], "malformed grpc-status b'fine'"),
        ([(b"grpc-status", b"-1")], "malformed grpc-status b'-1'"),
        ([(b"grpc-status", b"17")], ""),
        ([(b"grpc-status", b"99999999999999999999")], ""),
    ],
)
def test_trailers_without_a_usable_grpc_status_end_the_call_unknown(
    trailers: list[tuple[bytes, bytes]], fragment: str
) -> None:
    raw = RawServer()
    sid = raw.client.start_call(PATH)
    raw.client.end_stream(sid)
    raw.exchange()
    raw.h2.send_headers(sid, RESPONSE)
    raw.h2.send_data(sid, b"\x00\x00\x00\x00\x02ok")
    raw.h2.send_headers(sid, trailers, end_stream=True)
    events = raw.exchange()
    assert [m.data for m in of_type(events, MessageReceived)] == [b"ok"]
    ended = ended_of(events)
    assert ended.status.code is StatusCode.UNKNOWN
    assert fragment in ended.status.details
    assert ended.cause is EndCause.TRAILERS
    if (b"x-note", b"kept") in trailers:
        assert ended.trailing_metadata["x-note"] == "kept"
    assert raw.client.open_calls == 0


def test_trailers_only_without_grpc_status_and_200_is_unknown() -> None:
    raw = RawServer()
    sid = raw.client.start_call(PATH)
    raw.exchange()
    raw.h2.send_headers(
        sid, [(b":status", b"200"), (b"content-type", b"application/grpc")], end_stream=True
    )
    ended = ended_of(raw.exchange())
    assert ended.status.code is StatusCode.UNKNOWN
    assert ended.status.details.startswith("HTTP status 200")
    assert "without grpc-status" in ended.status.details


# ------------------------------------------------------------ resets


@pytest.mark.parametrize(
    ("error_code", "code"),
    [
        (h2.errors.ErrorCodes.CANCEL, StatusCode.CANCELLED),
        (h2.errors.ErrorCodes.REFUSED_STREAM, StatusCode.UNAVAILABLE),
        (h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, StatusCode.RESOURCE_EXHAUSTED),
        (h2.errors.ErrorCodes.INTERNAL_ERROR, StatusCode.INTERNAL),
        (h2.errors.ErrorCodes.NO_ERROR, StatusCode.INTERNAL),
    ],
)
def test_rst_stream_from_the_peer_maps_to_a_status(error_code: int, code: StatusCode) -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"unconsumed")
    pair.pump()
    pair.server.reset(sid, error_code)
    assert not pair.server.is_open(sid)
    client_events, _ = pair.pump()
    assert client_events == [
        CallEnded(
            stream_id=sid,
            status=client_events[0].status,
            trailing_metadata=Metadata(),
            cause=EndCause.PEER_RESET,
            reset_code=error_code,
        )
    ]
    assert client_events[0].status.code is code
    assert client_events[0].never_processed is (error_code == h2.errors.ErrorCodes.REFUSED_STREAM)
    assert not pair.client.is_open(sid)
    with pytest.raises(LocalProtocolError, match="no open call"):
        pair.client.send_message(sid, b"late")


def test_client_cancel_sends_rst_stream_cancel() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"hello")
    pair.pump()
    mark = len(pair.c2s)
    ended = pair.client.cancel(sid)
    assert ended is not None and ended.cause is EndCause.LOCAL_CANCEL
    assert ended.status.code is StatusCode.CANCELLED
    assert pair.client.cancel(sid) is None  # a second cancel is a no-op
    _, server_events = pair.pump()
    (frame,) = pair.c2s.of_type(RstStreamFrame, since=mark)
    assert (frame.stream_id, frame.error_code) == (sid, h2.errors.ErrorCodes.CANCEL)
    (reset,) = of_type(server_events, CallEnded)
    assert reset.cause is EndCause.PEER_RESET
    assert reset.status.code is StatusCode.CANCELLED
    assert pair.server.open_calls == pair.client.open_calls == 0


def test_server_end_call_while_client_sends_resets_no_error() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"more to come")
    pair.pump()
    mark = len(pair.s2c)
    pair.server.end_call(sid, OK)
    client_events, _ = pair.pump()
    frames = [f for f in pair.s2c.frames[mark:] if f.stream_id == sid]
    assert [type(f) for f in frames] == [HeadersFrame, RstStreamFrame]
    assert frames[1].error_code == h2.errors.ErrorCodes.NO_ERROR
    # The client sees the status, not a reset.
    assert [type(e) for e in client_events] == [CallEnded]
    assert ended_of(client_events).status.ok


@pytest.mark.parametrize("trailers_only", [True, False], ids=["trailers-only", "trailers"])
def test_malformed_trailer_fields_end_the_call_internal(trailers_only: bool) -> None:
    raw = RawServer()
    sid = raw.client.start_call(PATH)
    raw.client.end_stream(sid)
    raw.exchange()
    bad = [(b"grpc-status", b"3"), (b"Grpc-Message", b"upper-case name")]
    if trailers_only:
        raw.h2.send_headers(sid, RESPONSE + bad, end_stream=True)
    else:
        raw.h2.send_headers(sid, RESPONSE)
        raw.h2.send_headers(sid, bad, end_stream=True)
    ended = ended_of(raw.exchange())
    assert ended.status.code is StatusCode.INTERNAL
    assert "Grpc-Message" in ended.status.details
