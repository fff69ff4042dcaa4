"""Calls end to end through a ClientConnection and a ServerConnection in memory."""

from __future__ import annotations

import gzip
import zlib

import pytest
from helpers import Pair, consume_all, of_type
from hyperframe.frame import DataFrame, HeadersFrame

from puregrpc.wire import (
    CallEnded,
    CallStarted,
    EndCause,
    HalfClosed,
    MessageReceived,
    Metadata,
    ResponseHeaders,
    SettingsChanged,
    Status,
    StatusCode,
)

PATH = "/pkg.Echo/Call"
OK = Status(code=StatusCode.OK)


def test_handshake_exchanges_settings() -> None:
    pair = Pair(handshake=False)
    client_events, server_events = pair.pump()
    (client_settings,) = of_type(client_events, SettingsChanged)
    (server_settings,) = of_type(server_events, SettingsChanged)
    assert client_settings.initial_window_size == server_settings.initial_window_size == 1 << 20
    assert client_settings.max_concurrent_streams == 1024
    assert pair.client.available_streams == 1024
    assert not pair.client.closed and not pair.server.closed


def test_unary_call_with_metadata() -> None:
    pair = Pair()
    request_md = Metadata([("x-token", "abc"), ("trace-bin", b"\x00\xff\x10"), ("x-token", "def")])
    sid = pair.client.start_call(PATH, metadata=request_md, authority="example.com:443")
    assert sid == 1
    pair.client.send_message(sid, b"ping")
    pair.client.end_stream(sid)
    _, server_events = pair.pump()
    started, message, half_closed = server_events
    assert isinstance(started, CallStarted)
    assert (started.path, started.service, started.method) == (PATH, "pkg.Echo", "Call")
    assert started.authority == "example.com:443"
    assert started.timeout is None
    assert started.encoding == "identity"
    assert started.metadata.get_all("x-token") == ["abc", "def"]
    assert started.metadata["trace-bin"] == b"\x00\xff\x10"
    assert started.user_agent is not None and started.user_agent.startswith("puregrpc")
    assert message == MessageReceived(stream_id=sid, data=b"ping", wire_length=9)
    assert half_closed == HalfClosed(stream_id=sid)

    pair.server.consume(sid, message.wire_length)
    pair.server.send_response_headers(sid, Metadata([("initial", "1"), ("blob-bin", b"\x01")]))
    pair.server.send_message(sid, b"pong")
    pair.server.end_call(sid, OK, Metadata([("trailing", "t"), ("sum-bin", b"\xfe\xff")]))
    client_events, _ = pair.pump()
    headers, reply, ended = client_events
    assert isinstance(headers, ResponseHeaders)
    assert list(headers.metadata) == [("initial", "1"), ("blob-bin", b"\x01")]
    assert isinstance(reply, MessageReceived) and reply.data == b"pong"
    assert isinstance(ended, CallEnded)
    assert ended.status == OK
    assert list(ended.trailing_metadata) == [("trailing", "t"), ("sum-bin", b"\xfe\xff")]
    assert ended.cause is EndCause.TRAILERS and not ended.trailers_only and ended.completed
    assert pair.client.open_calls == pair.server.open_calls == 0
    assert not pair.client.is_open(sid) and not pair.server.is_open(sid)


def test_server_stream_of_several_messages() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"how many?")
    pair.client.end_stream(sid)
    pair.pump()
    for index in range(5):
        pair.server.send_message(sid, b"item %d" % index)
    pair.server.end_call(sid, OK)
    client_events, _ = pair.pump()
    assert isinstance(client_events[0], ResponseHeaders)
    assert [e.data for e in of_type(client_events, MessageReceived)] == [
        b"item %d" % i for i in range(5)
    ]
    assert isinstance(client_events[-1], CallEnded) and client_events[-1].status.ok


def test_client_stream_of_several_messages() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    for index in range(4):
        pair.client.send_message(sid, b"chunk %d" % index)
    pair.client.end_stream(sid)
    _, server_events = pair.pump()
    assert [e.data for e in of_type(server_events, MessageReceived)] == [
        b"chunk %d" % i for i in range(4)
    ]
    assert isinstance(server_events[-1], HalfClosed)
    pair.server.send_message(sid, b"total 4")
    pair.server.end_call(sid, OK)
    client_events, _ = pair.pump()
    assert [e.data for e in of_type(client_events, MessageReceived)] == [b"total 4"]
    assert of_type(client_events, CallEnded)[0].status.ok


def test_bidi_stream_interleaves_both_directions() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.pump()
    seen_by_client: list[bytes] = []
    for index in range(5):
        pair.client.send_message(sid, b"q%d" % index)
        _, server_events = pair.pump()
        (question,) = of_type(server_events, MessageReceived)
        assert question.data == b"q%d" % index
        pair.server.consume(sid, question.wire_length)
        pair.server.send_message(sid, b"a%d" % index)
        client_events, _ = pair.pump()
        answers = of_type(client_events, MessageReceived)
        seen_by_client += [a.data for a in answers]
        consume_all(pair.client, client_events)
    assert seen_by_client == [b"a%d" % i for i in range(5)]
    pair.client.end_stream(sid)
    _, server_events = pair.pump()
    assert server_events == [HalfClosed(stream_id=sid)]
    pair.server.end_call(sid, OK)
    client_events, _ = pair.pump()
    assert of_type(client_events, CallEnded)[0].status.ok


def test_non_ok_status_with_message_details_and_trailing_metadata() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.client.end_stream(sid)
    pair.pump()
    pair.server.send_message(sid, b"partial")
    status = Status(
        code=StatusCode.FAILED_PRECONDITION,
        details="bad state: 100% ünïcode\nnewline",
        details_bin=b"\x08\x09\x00binary",
    )
    pair.server.end_call(sid, status, Metadata([("retry-after", "5")]))
    client_events, _ = pair.pump()
    ended = client_events[-1]
    assert isinstance(ended, CallEnded)
    assert ended.status == status
    assert ended.trailing_metadata["retry-after"] == "5"
    assert not ended.trailers_only


def test_trailers_only_response_with_non_ok_status() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"x")
    pair.client.end_stream(sid)
    pair.pump()
    mark = len(pair.s2c)
    status = Status(code=StatusCode.PERMISSION_DENIED, details="go away", details_bin=b"\x01")
    pair.server.end_call(sid, status, Metadata([("why", "policy")]))
    client_events, _ = pair.pump()
    # One HEADERS frame with END_STREAM carries :status, content-type and status.
    (frame,) = pair.s2c.of_type(HeadersFrame, since=mark)
    assert "END_STREAM" in frame.flags
    (block,) = pair.s2c.header_blocks(sid, since=mark)
    assert block[b":status"] == b"200"
    assert block[b"grpc-status"] == b"7"
    assert block[b"content-type"].startswith(b"application/grpc")
    assert client_events == [
        CallEnded(
            stream_id=sid,
            status=status,
            trailing_metadata=Metadata([("why", "policy")]),
            cause=EndCause.TRAILERS_ONLY,
        )
    ]


def test_trailers_only_while_client_still_sending_stops_the_client() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.pump()
    pair.server.end_call(sid, Status(code=StatusCode.UNAUTHENTICATED, details="no"))
    client_events, _ = pair.pump()
    (ended,) = of_type(client_events, CallEnded)
    assert ended.status.code is StatusCode.UNAUTHENTICATED
    assert pair.client.open_calls == pair.server.open_calls == 0
    # The client may not send on the call any more.
    assert not pair.client.is_open(sid)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compression_both_directions(encoding: str) -> None:
    pair = Pair()
    request = b"request text " * 100
    reply = b"reply text " * 100
    sid = pair.client.start_call(PATH, encoding=encoding)
    c2s_mark = len(pair.c2s)
    pair.client.send_message(sid, request)
    pair.client.end_stream(sid)
    _, server_events = pair.pump()
    (started,) = of_type(server_events, CallStarted)
    assert started.encoding == encoding
    assert encoding in started.accept_encoding
    (message,) = of_type(server_events, MessageReceived)
    assert message.data == request
    # The bytes on the wire are compressed, flagged, and decompress to the request.
    wire = b"".join(f.data for f in pair.c2s.of_type(DataFrame, since=c2s_mark))
    assert wire[0] == 1
    assert int.from_bytes(wire[1:5], "big") == len(wire) - 5 == message.wire_length - 5
    assert len(wire) < len(request)
    assert _decompress(encoding, wire[5:]) == request

    s2c_mark = len(pair.s2c)
    pair.server.send_response_headers(sid, encoding=encoding)
    pair.server.send_message(sid, reply)
    pair.server.send_message(sid, b"raw", compress_message=False)
    pair.server.end_call(sid, OK)
    client_events, _ = pair.pump()
    (headers,) = of_type(client_events, ResponseHeaders)
    assert headers.encoding == encoding
    assert pair.s2c.header_blocks(sid, since=s2c_mark)[0][b"grpc-encoding"] == encoding.encode()
    first, second = of_type(client_events, MessageReceived)
    assert (first.data, second.data) == (reply, b"raw")
    wire = b"".join(f.data for f in pair.s2c.of_type(DataFrame, since=s2c_mark))
    assert wire[0] == 1
    length = int.from_bytes(wire[1:5], "big")
    assert _decompress(encoding, wire[5 : 5 + length]) == reply
    # compress_message=False sends an uncompressed message on a compressed call.
    assert wire[5 + length :] == b"\x00\x00\x00\x00\x03raw"


def _decompress(encoding: str, data: bytes) -> bytes:
    return gzip.decompress(data) if encoding == "gzip" else zlib.decompress(data)


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [(1.5, 1.5), (0.25, 0.25), (30.0, 30.0), (3600.0, 3600.0), (0.000001, 0.000001)],
)
def test_timeout_delivered_as_call_started_timeout(timeout: float, expected: float) -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH, timeout=timeout)
    _, server_events = pair.pump()
    (started,) = of_type(server_events, CallStarted)
    assert started.stream_id == sid
    assert started.timeout == pytest.approx(expected, rel=1e-6)
    (block,) = pair.c2s.header_blocks(sid)
    assert b"grpc-timeout" in block


def test_two_hundred_concurrent_calls_interleaved() -> None:
    pair = Pair()
    count = 200
    ids = [pair.client.start_call(PATH, metadata=Metadata([("n", str(i))])) for i in range(count)]
    assert ids == list(range(1, 2 * count, 2))
    # Interleave: every call sends its first message, then every call its second.
    for round_ in range(2):
        for index, sid in enumerate(ids):
            pair.client.send_message(sid, b"%d-%d" % (index, round_))
    for sid in reversed(ids):
        pair.client.end_stream(sid)
    _, server_events = pair.pump()
    started = {e.stream_id: e for e in of_type(server_events, CallStarted)}
    assert sorted(started) == ids
    assert all(started[sid].metadata["n"] == str(i) for i, sid in enumerate(ids))
    received: dict[int, list[bytes]] = {}
    for event in of_type(server_events, MessageReceived):
        received.setdefault(event.stream_id, []).append(event.data)
    assert received == {sid: [b"%d-0" % i, b"%d-1" % i] for i, sid in enumerate(ids)}
    assert len(of_type(server_events, HalfClosed)) == count
    consume_all(pair.server, server_events)
    # Answer in a shuffled order, every call with its own status.
    for index, sid in sorted(enumerate(ids), key=lambda item: (item[0] * 7) % count):
        pair.server.send_message(sid, b"r%d" % index)
        pair.server.end_call(sid, Status(code=StatusCode(index % 17), details=str(index)))
    client_events, _ = pair.pump()
    ended = {e.stream_id: e for e in of_type(client_events, CallEnded)}
    assert len(ended) == count
    for index, sid in enumerate(ids):
        assert ended[sid].status.code == StatusCode(index % 17)
        assert ended[sid].status.details == str(index)
    replies = {e.stream_id: e.data for e in of_type(client_events, MessageReceived)}
    assert replies == {sid: b"r%d" % i for i, sid in enumerate(ids)}
    assert pair.client.open_calls == pair.server.open_calls == 0


def test_empty_messages_round_trip() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"")
    pair.client.send_message(sid, b"")
    pair.client.end_stream(sid)
    _, server_events = pair.pump()
    messages = of_type(server_events, MessageReceived)
    assert [(m.data, m.wire_length) for m in messages] == [(b"", 5), (b"", 5)]


def test_first_send_message_sends_default_response_headers() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.pump()
    pair.server.send_message(sid, b"hi")
    client_events, _ = pair.pump()
    assert client_events[0] == ResponseHeaders(
        stream_id=sid, metadata=Metadata(), encoding="identity"
    )
    assert isinstance(client_events[1], MessageReceived)


def test_repeated_request_blocks_are_parsed_once_but_never_shared() -> None:
    # The server keeps the parsed form of recent header blocks: a call's
    # metadata must still be its own, and a different block its own parse.
    pair = Pair()
    request_md = Metadata([("x-token", "abc")])
    started_events: list[CallStarted] = []
    for metadata in (request_md, request_md, Metadata([("x-token", "other")])):
        sid = pair.client.start_call(PATH, metadata=metadata)
        pair.client.send_message(sid, b"ping")
        pair.client.end_stream(sid)
        _, server_events = pair.pump()
        (started,) = of_type(server_events, CallStarted)
        started_events.append(started)
        started.metadata.add("x-added-by-handler", "1")
    first, second, third = started_events
    assert first.metadata is not second.metadata
    assert second.metadata.get_all("x-added-by-handler") == ["1"]
    assert second.metadata["x-token"] == "abc"
    assert third.metadata["x-token"] == "other"
    assert (first.stream_id, second.stream_id, third.stream_id) == (1, 3, 5)
