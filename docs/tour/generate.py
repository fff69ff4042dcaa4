"""Regenerate the guided tour "gRPC streaming on the wire" from real runs.

    python docs/tour/generate.py            # writes docs/wire-tour.md and the timeline
    python docs/tour/generate.py --out DIR  # somewhere else (the tests do this)

Each scenario starts a puregrpc server and channel on 127.0.0.1, traces both
with one :class:`puregrpc.trace.Trace` and keeps the events; the page shows
them as the text trace prints them. Nothing in the page is written by hand
except the prose around the traces, so the traces are always what the code
does today. The slow-reader scenario is also written as JSON Lines and drawn
as a timeline (``wire-tour-timeline.html``); ``docs/tour/screenshot.py``
turns that into the PNG the page shows.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import trio

from puregrpc import StatusCode
from puregrpc.client import Channel, ChannelOptions
from puregrpc.server import RequestIterator, Server, ServerOptions, ServicerContext
from puregrpc.testing.protos.echo_pb2 import EchoReply, EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoServicer, EchoStub
from puregrpc.trace import ListSink, Trace, TraceEvent, format_text, render_html
from puregrpc.wire import ConnectionConfig, RpcError

DOCS = Path(__file__).resolve().parent.parent
#: A client window small enough that a 40 KB message fills most of it.
SMALL_WINDOWS = ConnectionConfig(stream_window=65_535, connection_window=65_535)


class TourEcho(EchoServicer):
    """The Echo service, with knobs the scenarios need."""

    async def Unary(self, request: EchoRequest, context: ServicerContext) -> EchoReply:
        if request.message == "missing":
            # Before any reply: a trailers-only response.
            await context.abort(StatusCode.NOT_FOUND, "no such thing")
        if request.message == "slow":
            await trio.sleep(1)
        return EchoReply(message=request.message, payload=request.payload)

    async def ServerStream(
        self, request: EchoRequest, context: ServicerContext
    ) -> AsyncIterator[EchoReply]:
        for index in range(request.count):
            if request.message == "ticking":
                await trio.sleep(0.01)
            yield EchoReply(message=request.message, index=index, payload=request.payload)

    async def ClientStream(
        self, requests: RequestIterator[EchoRequest], context: ServicerContext
    ) -> EchoReply:
        words = [request.message async for request in requests]
        return EchoReply(message=",".join(words), index=len(words))

    async def Bidi(
        self, requests: RequestIterator[EchoRequest], context: ServicerContext
    ) -> AsyncIterator[EchoReply]:
        index = 0
        async for request in requests:
            yield EchoReply(message=request.message.upper(), index=index)
            index += 1


Scenario = Callable[[EchoStub], Awaitable[None]]


async def traced(scenario: Scenario, *, client: ConnectionConfig | None = None) -> list[TraceEvent]:
    """Run ``scenario`` against a fresh server and channel; return both sides' events."""
    sink = ListSink()
    trace = Trace([sink])
    server = Server([TourEcho()], options=ServerOptions(tracer=trace))
    options = ChannelOptions(tracer=trace)
    if client is not None:
        options = replace(options, connection=client)
    with trio.fail_after(10):
        async with (
            server.listening("127.0.0.1", 0) as listening,
            Channel(f"127.0.0.1:{listening.port}", options=options) as channel,
        ):
            await scenario(EchoStub(channel))
    return renumber(sink.events)


def renumber(events: list[TraceEvent]) -> list[TraceEvent]:
    """Connections as #1, #2... in order of appearance, time from the first event."""
    numbers: dict[int, int] = {}
    t0 = events[0].t if events else 0.0
    return [
        replace(e, conn=numbers.setdefault(e.conn, len(numbers) + 1), t=e.t - t0) for e in events
    ]


def show(events: list[TraceEvent], *, role: str | None = None, calls_only: bool = True) -> str:
    """The text trace of ``events``: one side only, and without connection chatter."""
    chosen = [
        e
        for e in events
        if (role is None or e.role == role)
        and not (calls_only and e.stream == 0)
        and e.kind != "connection_end"
    ]
    t0 = chosen[0].t if chosen else 0.0
    return "\n".join(format_text(replace(e, t=e.t - t0)) for e in chosen)


def block(text: str) -> str:
    """A fenced text block."""
    return f"```text\n{text}\n```\n"


# ------------------------------------------------------------ scenarios


async def unary(echo: EchoStub) -> None:
    await echo.Unary(EchoRequest(message="hello"), timeout=5)


async def server_stream(echo: EchoStub) -> None:
    async for _ in echo.ServerStream(EchoRequest(message="tick", count=3), timeout=5):
        pass


async def client_stream(echo: EchoStub) -> None:
    await echo.ClientStream([EchoRequest(message=m) for m in ("a", "b", "c")], timeout=5)


async def bidi(echo: EchoStub) -> None:
    async with echo.Bidi(timeout=5) as call:
        for word in ("ping", "pong"):
            await call.send(EchoRequest(message=word))
            await call.receive()
        await call.done_writing()
        await call.receive()


async def slow_reader(echo: EchoStub) -> None:
    request = EchoRequest(message="big", count=5, payload=b"." * 40_000)
    async for _ in echo.ServerStream(request, timeout=5):
        await trio.sleep(0.03)  # a slow consumer: the server must wait for it


async def cancel(echo: EchoStub) -> None:
    call = echo.ServerStream(EchoRequest(message="ticking", count=100), timeout=5)
    received = 0
    async for _ in call:
        received += 1
        if received == 2:
            call.cancel()
            break
    await trio.sleep(0.02)  # let the server see the RST_STREAM


async def deadline(echo: EchoStub) -> None:
    try:
        await echo.Unary(EchoRequest(message="slow"), timeout=0.05)
    except RpcError as exc:
        assert exc.code is StatusCode.DEADLINE_EXCEEDED, exc
    await trio.sleep(0.02)


async def trailers_only(echo: EchoStub) -> None:
    try:
        await echo.Unary(EchoRequest(message="missing"), timeout=5)
    except RpcError as exc:
        assert exc.code is StatusCode.NOT_FOUND, exc


async def compression(echo: EchoStub) -> None:
    await echo.Unary(
        EchoRequest(message="squeeze", payload=b"abc" * 2000), timeout=5, compression="gzip"
    )


# ----------------------------------------------------------------- page

INTRO = """\
# gRPC streaming on the wire

*Generated by `docs/tour/generate.py` from real runs of puregrpc on
127.0.0.1; regenerate it after changing the wire code.*

Every trace below is what `puregrpc.trace` prints: one line per event, the
time since the call began, who saw it (`client#2` is the channel's side of
connection 2, `server#1` the server's side of the same TCP connection, as
each side numbers connections for itself), the stream, and `→` for sent,
`←` for received, `·` for something that happened inside that side. HEADERS
frames are shown decoded from HPACK; each DATA frame lists the pieces of gRPC
messages it carried as `msg#N[from..to/total]` (total includes the 5-byte
length prefix) and the sender's stream (`win`) and connection (`conn`)
windows after it. To get these traces from your own program, set
`PUREGRPC_TRACE=stderr` (or `=trace.jsonl`); to get them from *any* gRPC
client and server, put `puregrpc trace-proxy` between them. The cost of
tracing is in [tracing.md](tracing.md).
"""


async def build(out: Path) -> str:
    """Run every scenario; write the page and the timeline into ``out``; return the page."""
    parts = [INTRO]

    events = await traced(unary)
    parts.append(
        "\n## Unary: one request, one response\n\n"
        "The whole connection, from the client's side. The connection opens with both "
        "SETTINGS and a WINDOW_UPDATE on stream 0 that raises the connection window from "
        "the 65,535 bytes every connection starts with (RFC 9113 §6.9.2) to 16 MiB. The "
        "call is one HEADERS frame (`:path`, `grpc-timeout`), one DATA frame with the "
        "request and END_STREAM (the client half-closes), and back: HEADERS, DATA, and "
        "trailers carrying `grpc-status: 0`.\n\n"
    )
    parts.append(block(show(events, role="client", calls_only=False)))

    events = await traced(server_stream)
    parts.append(
        "\n## Server streaming\n\n"
        "The client sends one request and half-closes; the server sends three messages, "
        "each a DATA frame, then trailers. Seen from the server:\n\n"
    )
    parts.append(block(show(events, role="server")))

    events = await traced(client_stream)
    parts.append(
        "\n## Client streaming\n\n"
        "Three request messages, then an empty DATA frame with END_STREAM: the half-close "
        "that tells the server the requests are over. Only then does it answer. From the "
        "client:\n\n"
    )
    parts.append(block(show(events, role="client")))

    events = await traced(bidi)
    parts.append(
        "\n## Bidirectional streaming\n\n"
        "Requests and replies interleave on one stream: each reply goes out as its request "
        "arrives. From the server:\n\n"
    )
    parts.append(block(show(events, role="server")))

    events = await traced(slow_reader, client=SMALL_WINDOWS)
    jsonl = out / "wire-tour-slow-reader.jsonl"
    jsonl.write_text("".join(e.to_json() + "\n" for e in events), encoding="utf-8")
    (out / "wire-tour-timeline.html").write_text(
        render_html(events, title="A server stream meeting a slow reader"), encoding="utf-8"
    )
    parts.append(
        "\n## Flow control and backpressure: a slow reader\n\n"
        "The client advertises a 64 KiB window (stream and connection) and reads one "
        "40 KB message every 30 ms; the server wants to send five at once. Each message "
        "takes three DATA frames (16 KiB each at most: SETTINGS_MAX_FRAME_SIZE). After "
        "about a message and a half the window is gone: the server's sender **stalls** "
        "with bytes queued. It does not buffer more: the handler is suspended in its "
        "`yield` until the queue drains. The client grants window back only as its "
        "application *consumes* messages, in batches of half a window, so each "
        "WINDOW_UPDATE arrives one read later and each **resume** says how long the "
        "sender waited. The server's side:\n\n"
    )
    parts.append(block(show(events, role="server")))
    parts.append(
        "\nAnd the client's: messages arrive, the application consumes them 30 ms apart, "
        "and the grants go out (`unconsumed` is what arrived but was not read yet, "
        "`ungranted` what was read but not yet granted back):\n\n"
    )
    parts.append(block(show(events, role="client")))
    parts.append(
        "\nThe same run as a timeline (`puregrpc trace-view wire-tour-slow-reader.jsonl "
        "-o wire-tour-timeline.html`): one lane per stream as each side saw it, the "
        "windows as curves, stalls shaded red, grants as yellow triangles.\n\n"
        "![timeline of a slow reader](wire-tour-timeline.png)\n"
    )

    events = await traced(cancel)
    parts.append(
        "\n## Cancellation and deadlines\n\n"
        "A client that stops reading and cancels sends RST_STREAM(CANCEL, code 8); the "
        "server's handler is cancelled and the stream is gone, no trailers. From the "
        "server:\n\n"
    )
    parts.append(block(show(events, role="server")))
    events = await traced(deadline)
    parts.append(
        "\nA deadline travels as `grpc-timeout` in the request headers (an integer and "
        "a unit, `u` for microseconds here). When it expires the client gives up with "
        "DEADLINE_EXCEEDED and resets the stream (RST_STREAM CANCEL); the server enforces "
        "the same deadline on its own clock, so its trailers-only DEADLINE_EXCEEDED "
        "answer may cross the reset on the wire and reach a stream the client has "
        "already closed (which h2 answers with RST_STREAM STREAM_CLOSED). From the "
        "client:\n\n"
    )
    parts.append(block(show(events, role="client")))

    events = await traced(trailers_only)
    parts.append(
        "\n## Trailers-only errors\n\n"
        "A call that fails before sending anything is answered with a single HEADERS "
        "frame with END_STREAM: `:status: 200`, `content-type` and the status "
        "(`grpc-status: 5`, NOT_FOUND, `grpc-message`) all in one block, no DATA. From "
        "the client:\n\n"
    )
    parts.append(block(show(events, role="client")))

    events = await traced(compression)
    parts.append(
        "\n## Compression\n\n"
        'With `compression="gzip"` the request headers say `grpc-encoding: gzip`, and '
        "the message's first prefix byte (the Compressed-Flag) is 1: the 6,000-byte "
        "payload crosses the wire in a few dozen bytes (the trace shows the message "
        "decoded all the same). The server answers uncompressed: it compresses only when "
        "its options ask (`ServerOptions.compression`), whatever the client accepts in "
        "`grpc-accept-encoding`. From the client:\n\n"
    )
    parts.append(block(show(events, role="client")))
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Regenerate the tour; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS, help="directory to write into")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    page = trio.run(build, out)
    (out / "wire-tour.md").write_text(page, encoding="utf-8")
    print(f"wrote {out / 'wire-tour.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
