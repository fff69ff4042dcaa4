"""The connections against bytes grpcio produced, so the core is not only tested against itself.

``data/grpcio_c2s.bin`` and ``data/grpcio_s2c.bin`` hold one connection
between a grpcio client and a grpcio server, recorded by
``data/capture_grpcio.py``: four calls on streams 1, 3, 5, 7 (unary with
metadata; server stream of three messages ending FAILED_PRECONDITION; unary
aborted with NOT_FOUND, trailers-only; unary gzip-compressed both ways), with
grpcio's BDP PINGs, WINDOW_UPDATEs and its two-GOAWAY shutdown mixed in.
"""

from __future__ import annotations

import pathlib

import pytest
from helpers import WireLog, of_type
from hyperframe.frame import PingFrame, SettingsFrame

from puregrpc.wire import (
    CallEnded,
    CallStarted,
    ClientConnection,
    ConnectionClosed,
    Event,
    HalfClosed,
    MessageReceived,
    PingAcknowledged,
    PingReceived,
    ResponseHeaders,
    ServerConnection,
    Status,
    StatusCode,
)

DATA = pathlib.Path(__file__).parent / "data"
C2S = (DATA / "grpcio_c2s.bin").read_bytes()
S2C = (DATA / "grpcio_s2c.bin").read_bytes()
PATHS = ["/test.Echo/Unary", "/test.Echo/Stream", "/test.Echo/Abort", "/test.Echo/Gzip"]


def _feed(conn: ClientConnection | ServerConnection, data: bytes, chunk: int) -> list[Event]:
    events: list[Event] = []
    for start in range(0, len(data), chunk):
        events += conn.receive_data(data[start : start + chunk])
    return events


def _for(events: list[Event], stream_id: int) -> list[Event]:
    return [e for e in events if getattr(e, "stream_id", None) == stream_id]


def test_captures_are_small_and_well_formed() -> None:
    assert len(C2S) < 4096 and len(S2C) < 4096
    c2s, s2c = WireLog(preface=True), WireLog(preface=False)
    c2s.feed(C2S)
    s2c.feed(S2C)
    assert isinstance(c2s.frames[0], SettingsFrame)
    assert isinstance(s2c.frames[0], SettingsFrame)
    # grpcio's BDP probing put PINGs in both directions.
    assert c2s.of_type(PingFrame) and s2c.of_type(PingFrame)


@pytest.mark.parametrize("chunk", [len(C2S), 1, 13, 100])
def test_server_reads_a_grpcio_client(chunk: int) -> None:
    server = ServerConnection()
    server.data_to_send()
    events = _feed(server, C2S, chunk)
    started = of_type(events, CallStarted)
    assert [e.path for e in started] == PATHS
    assert [e.stream_id for e in started] == [1, 3, 5, 7]

    unary = started[0]
    assert (unary.service, unary.method) == ("test.Echo", "Unary")
    assert unary.metadata["client-key"] == "client-value"
    assert unary.metadata["client-bin"] == b"\x01\x02\x03"
    assert unary.timeout is not None and 29 < unary.timeout <= 30
    assert unary.user_agent is not None and unary.user_agent.startswith("grpc-python/")
    assert unary.encoding == "identity"
    assert set(unary.accept_encoding) == {"identity", "deflate", "gzip"}
    assert started[1].timeout is None

    for stream_id, request in [(1, b"hello"), (3, b"s"), (5, b"x")]:
        stream_events = _for(events, stream_id)
        assert [type(e) for e in stream_events] == [CallStarted, MessageReceived, HalfClosed]
        assert stream_events[1].data == request  # type: ignore[attr-defined]

    gzip_events = _for(events, 7)
    assert gzip_events[0].encoding == "gzip"  # type: ignore[attr-defined]
    (message,) = of_type(gzip_events, MessageReceived)
    assert message.data == b"compress me " * 20
    assert message.wire_length < len(message.data)  # it really was compressed
    assert isinstance(gzip_events[-1], HalfClosed)

    # The grpcio client's PING ACK answers the server's PING; its own PING is answered.
    assert len(of_type(events, PingAcknowledged)) == 1
    assert len(of_type(events, PingReceived)) == 1
    assert of_type(events, CallEnded) == []
    assert server.open_calls == 4


def test_server_can_answer_the_grpcio_client() -> None:
    server = ServerConnection()
    server.data_to_send()
    events = server.receive_data(C2S)
    for message in of_type(events, MessageReceived):
        server.consume(message.stream_id, message.wire_length)
    for started in of_type(events, CallStarted):
        server.send_message(started.stream_id, b"reply")
        server.end_call(started.stream_id, Status(code=StatusCode.OK))
    reply = WireLog(preface=False)
    reply.feed(server.data_to_send())
    assert server.open_calls == 0
    assert sorted({f.stream_id for f in reply.frames if f.stream_id}) == [1, 3, 5, 7]


@pytest.mark.parametrize("chunk", [len(S2C), 1, 13, 100])
def test_client_reads_a_grpcio_server(chunk: int) -> None:
    client = ClientConnection()
    ids = [client.start_call(path) for path in PATHS]
    assert ids == [1, 3, 5, 7]
    for stream_id in ids:
        client.end_stream(stream_id)
    client.data_to_send()
    events = _feed(client, S2C, chunk)

    unary = _for(events, 1)
    assert [type(e) for e in unary] == [ResponseHeaders, MessageReceived, CallEnded]
    assert unary[0].metadata["initial-key"] == "initial-value"  # type: ignore[attr-defined]
    assert unary[1].data == b"echo:hello"  # type: ignore[attr-defined]
    end = unary[2]
    assert isinstance(end, CallEnded)
    assert end.status.code is StatusCode.OK and not end.trailers_only
    assert end.trailing_metadata["trailing-key"] == "trailing-value"
    assert end.trailing_metadata["trace-bin"] == b"\x00\xff"

    stream = _for(events, 3)
    assert [e.data for e in of_type(stream, MessageReceived)] == [
        b"part-0:s",
        b"part-1:s",
        b"part-2:s",
    ]
    (end,) = of_type(stream, CallEnded)
    assert end.status.code is StatusCode.FAILED_PRECONDITION
    assert end.status.details == "stream stopped on purpose"
    assert end.trailing_metadata["stream-end"] == "yes"

    (end,) = _for(events, 5)
    assert isinstance(end, CallEnded)
    assert end.trailers_only
    assert end.status.code is StatusCode.NOT_FOUND
    assert end.status.details == "no such thing"

    gzip = _for(events, 7)
    assert gzip[0].encoding == "gzip"  # type: ignore[attr-defined]
    (message,) = of_type(gzip, MessageReceived)
    assert message.data == b"COMPRESS ME " * 20
    assert of_type(gzip, CallEnded)[0].status.ok

    # grpcio's shutdown: GOAWAY(2^31-1, NO_ERROR), PING, GOAWAY(7, error).
    closed = of_type(events, ConnectionClosed)
    assert [(c.last_stream_id, c.error_code) for c in closed] == [(2**31 - 1, 0), (7, 2)]
    assert all(c.remote for c in closed)
    assert closed[0].debug_data == b"Server shutdown"
    assert client.closed and client.open_calls == 0


def test_client_answers_the_grpcio_servers_pings() -> None:
    client = ClientConnection()
    for path in PATHS:
        client.start_call(path)
    client.data_to_send()
    events = client.receive_data(S2C)
    pings = of_type(events, PingReceived)
    answer = WireLog(preface=False)
    answer.feed(client.data_to_send())
    acks = [f.opaque_data for f in answer.of_type(PingFrame) if "ACK" in f.flags]
    assert acks == [p.data for p in pings] and len(acks) == 2
