"""The in-process tracer over real loopback calls; sinks, formats and PUREGRPC_TRACE."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from puregrpc.client import Channel, ChannelOptions
from puregrpc.server import Server, ServerOptions, ServicerContext
from puregrpc.testing.protos.echo_pb2 import EchoReply, EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoServicer, EchoStub
from puregrpc.trace import (
    SCHEMA_VERSION,
    JsonLinesSink,
    ListSink,
    TextSink,
    Trace,
    TraceEvent,
    format_text,
    read_jsonl,
    sink_for_destination,
    tracer_from_environment,
)
from puregrpc.wire import NULL_TRACER, ConnectionConfig

SMALL = ConnectionConfig(stream_window=65_535, connection_window=65_535)


class Streamer(EchoServicer):
    async def ServerStream(
        self, request: EchoRequest, context: ServicerContext
    ) -> AsyncIterator[EchoReply]:
        for index in range(request.count):
            yield EchoReply(message=request.message, index=index, payload=request.payload)


async def slow_reader(trace: Trace, *, channel_trace: Trace | None = None) -> None:
    """A server stream of 4 x 40 KB to a client with 64 KiB windows reading every 20 ms."""
    server = Server([Streamer()], options=ServerOptions(tracer=trace))
    options = ChannelOptions(connection=SMALL, tracer=channel_trace or trace)
    request = EchoRequest(message="m", count=4, payload=b"." * 40_000)
    with trio.fail_after(10):
        async with (
            server.listening("127.0.0.1", 0) as listening,
            Channel(f"127.0.0.1:{listening.port}", options=options) as channel,
        ):
            replies = [r async for r in _slowly(EchoStub(channel).ServerStream(request, timeout=5))]
    assert [r.index for r in replies] == [0, 1, 2, 3]


async def _slowly(replies: AsyncIterator[EchoReply]) -> AsyncIterator[EchoReply]:
    async for reply in replies:
        await trio.sleep(0.02)
        yield reply


async def test_slow_reader_trace_shows_backpressure() -> None:
    sink = ListSink()
    await slow_reader(Trace([sink]))
    server = [e for e in sink.events if e.role == "server" and e.stream == 1]
    client = [e for e in sink.events if e.role == "client" and e.stream == 1]
    kinds = [e.kind for e in server]
    assert "stall" in kinds and "resume" in kinds
    resumes = [e for e in server if e.kind == "resume"]
    assert all(e.fields["stalled_for"] > 0 for e in resumes)
    # Each stall comes with a closed window, and every resume follows a grant.
    for stall in (e for e in server if e.kind == "stall"):
        assert stall.fields["send_window"] <= 0 or stall.fields["conn_send_window"] <= 0
        assert stall.fields["queued"] > 0
    for resume in resumes:
        before = server[: server.index(resume)]
        assert any(e.fields.get("type") == "WINDOW_UPDATE" for e in before)
    # Messages are decoded with the Echo schema, both ways.
    sent = [e for e in server if e.kind == "message_out"]
    assert [e.fields["seq"] for e in sent] == [1, 2, 3, 4]
    assert all(e.fields["value"].startswith("EchoReply {") for e in sent)
    (request,) = [e for e in client if e.kind == "message_out"]
    assert request.fields["value"].startswith('EchoRequest {message: "m" count: 4')

    # Frames name the messages they carried; the client sees the same parts.
    def parts(events: list[TraceEvent], kind: str) -> list[list[int]]:
        return [
            p
            for e in events
            if e.kind == kind and e.fields.get("type") == "DATA"
            for p in e.fields["parts"]
        ]

    assert parts(server, "frame_out") == parts(client, "frame_in")
    totals = {e.fields["seq"]: e.fields["length"] + 5 for e in sent}
    assert {p[0]: p[3] for p in parts(server, "frame_out")} == totals
    # HEADERS frames come decoded; the client's consumption is recorded.
    (headers,) = [e for e in client if e.fields.get("block") == "request"]
    assert ["content-type", "application/grpc"] in headers.fields["headers"]
    # (a call that has ended takes no more credit, so its last reads record nothing)
    consumed = [e.fields["length"] for e in client if e.kind == "consume"]
    received = [e.fields["length"] + 5 for e in client if e.kind == "message_in"]
    assert consumed and consumed == received[: len(consumed)]
    assert [e.fields["code"] for e in sink.of("call_end")] == ["OK", "OK"]


async def test_json_lines_round_trip_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    with path.open("w", encoding="utf-8") as file:
        sink = ListSink()
        trace = Trace([JsonLinesSink(file), sink])
        await slow_reader(trace)
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) == len(sink.events)
    for line in lines:
        obj = json.loads(line)
        assert obj["v"] == SCHEMA_VERSION
        assert {"t", "conn", "role", "kind", "stream"} <= obj.keys()
    assert read_jsonl(text) == [
        TraceEvent(
            t=round(e.t, 6),
            conn=e.conn,
            role=e.role,
            kind=e.kind,
            stream=e.stream,
            fields=json.loads(json.dumps(e.fields)),
        )
        for e in sink.events
    ]
    times = [e.t for e in sink.events]
    assert times == sorted(times)


def test_read_jsonl_names_bad_lines() -> None:
    with pytest.raises(ValueError, match="line 2: not JSON"):
        read_jsonl('{"v":1,"t":0,"conn":1,"role":"client","kind":"x","stream":0}\n{oops\n')
    with pytest.raises(ValueError, match="line 1: unsupported trace schema version 7"):
        read_jsonl('{"v":7}\n')
    with pytest.raises(ValueError, match="lacks the 'role' key"):
        read_jsonl('{"v":1,"t":0,"conn":1,"kind":"x","stream":0}')


def test_text_lines_are_aligned_and_coloured_on_request() -> None:
    event = TraceEvent(
        t=0.0125,
        conn=3,
        role="server",
        kind="stall",
        stream=5,
        fields={"send_window": 0, "conn_send_window": 10, "queued": 99},
    )
    plain = format_text(event)
    assert plain == "    12.500 ms  server#3  s5    · STALL         win=0 conn=10 queued=99"
    coloured = format_text(event, color=True)
    assert coloured.startswith("\x1b[1;31m") and plain in coloured
    out = io.StringIO()
    TextSink(out).write(event)  # a StringIO is not a tty: no colour
    assert out.getvalue() == plain + "\n"


def test_a_failing_sink_is_dropped_not_raised() -> None:
    class Broken:
        def write(self, event: TraceEvent) -> None:
            raise BrokenPipeError

        def close(self) -> None:
            pass

    good = ListSink()
    trace = Trace([Broken(), good])
    from puregrpc.wire import TraceRecord

    trace.record(
        TraceRecord(kind="call_start", stream_id=1, fields={"path": "/a/b"}, role="client")
    )
    trace.record(TraceRecord(kind="call_end", stream_id=1, fields={"code": "OK"}, role="client"))
    assert [e.kind for e in good.events] == ["call_start", "call_end"]
    assert len(trace.sinks) == 1


def test_environment_destinations(tmp_path: Path) -> None:
    assert tracer_from_environment({}) is NULL_TRACER
    assert tracer_from_environment({"PUREGRPC_TRACE": "0"}) is NULL_TRACER
    target = str(tmp_path / "t.jsonl")
    first = tracer_from_environment({"PUREGRPC_TRACE": target})
    assert first.enabled and tracer_from_environment({"PUREGRPC_TRACE": target}) is first
    assert isinstance(first, Trace)
    first.close()
    assert isinstance(sink_for_destination("stderr"), TextSink)
    json_sink = sink_for_destination(f"json:{tmp_path / 'x.log'}")
    text_sink = sink_for_destination(str(tmp_path / "x.txt"))
    json_sink.close()
    text_sink.close()
    assert isinstance(json_sink, JsonLinesSink) and isinstance(text_sink, TextSink)
    with pytest.raises(ValueError, match="cannot open"):
        sink_for_destination(str(tmp_path / "missing" / "t.jsonl"))
    with pytest.raises(ValueError, match="names no file"):
        sink_for_destination("text:")


async def test_server_and_channel_pick_up_puregrpc_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "env.jsonl"
    monkeypatch.setenv("PUREGRPC_TRACE", str(path))
    server = Server([Streamer()])
    assert server.options.tracer.enabled
    with trio.fail_after(5):
        async with (
            server.listening("127.0.0.1", 0) as listening,
            Channel(f"127.0.0.1:{listening.port}") as channel,
        ):
            assert channel.options.tracer is server.options.tracer
            [reply] = [
                r async for r in EchoStub(channel).ServerStream(EchoRequest(count=1), timeout=5)
            ]
    assert reply.index == 0
    trace = server.options.tracer
    assert isinstance(trace, Trace)
    trace.close()
    events = read_jsonl(path.read_text(encoding="utf-8"))
    assert {e.role for e in events} == {"client", "server"}
    assert len([e for e in events if e.kind == "call_end"]) == 2
    # An explicit tracer wins over the environment.
    mine = ListSink()
    explicit = Trace([mine])
    assert Server([], options=ServerOptions(tracer=explicit)).options.tracer is explicit
