"""A tour of puregrpc over loopback: ``python -m puregrpc.demo``.

Starts a real puregrpc server on a free 127.0.0.1 port and calls it with the
puregrpc client: all four call types, a deadline, a cancellation, and a slow
reader that shows HTTP/2 flow control holding the server back. Prints what
happens and a summary, then shuts the server down gracefully.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import time

import trio

from .client import Channel
from .runtime import Cardinality, raw_method
from .server import MethodHandler, RequestIterator, Server, ServicerContext
from .wire import RpcError, StatusCode

ECHO = raw_method("/puregrpc.demo.Demo/Echo", Cardinality.UNARY_UNARY)
DOWNLOAD = raw_method("/puregrpc.demo.Demo/Download", Cardinality.UNARY_STREAM)
UPLOAD = raw_method("/puregrpc.demo.Demo/Upload", Cardinality.STREAM_UNARY)
PING_PONG = raw_method("/puregrpc.demo.Demo/PingPong", Cardinality.STREAM_STREAM)
SLOW = raw_method("/puregrpc.demo.Demo/Slow", Cardinality.UNARY_UNARY)

CHUNK = 64 * 1024


class DemoService:
    """The server side: one handler per call type, plus a slow one."""

    def __init__(self) -> None:
        #: Flow-control snapshots taken while streaming to a slow reader.
        self.stall_log: list[str] = []
        self.slow_cancelled = trio.Event()

    async def echo(self, request: bytes, context: ServicerContext) -> bytes:
        return request

    async def download(self, request: bytes, context: ServicerContext) -> None:
        total = int(request)
        chunk = b"\x5a" * CHUNK
        for index in range(total // CHUNK):
            started = time.perf_counter()
            await context.send(chunk)
            waited = time.perf_counter() - started
            if waited > 0.05:
                # This send found the client's window closed and waited for a
                # WINDOW_UPDATE: backpressure, seen from the handler.
                stats = context.statistics()
                self.stall_log.append(
                    f"  chunk {index + 1}: send() waited {waited:.2f} s for the reader; "
                    f"{index * CHUNK:,} B sent so far, client window now "
                    f"{stats.send_window:,} B"
                )

    async def upload(self, requests: RequestIterator[bytes], context: ServicerContext) -> bytes:
        digest = hashlib.sha256()
        async for chunk in requests:
            digest.update(chunk)
        return digest.hexdigest().encode()

    async def ping_pong(self, requests: RequestIterator[bytes], context: ServicerContext) -> None:
        async for request in requests:
            await context.send(request)

    async def slow(self, request: bytes, context: ServicerContext) -> bytes:
        try:
            await trio.sleep(30)
        finally:
            self.slow_cancelled.set()
        return b""

    def __puregrpc_handlers__(self) -> dict[str, MethodHandler]:
        return {
            ECHO.path: MethodHandler(method=ECHO, func=self.echo),
            DOWNLOAD.path: MethodHandler(method=DOWNLOAD, func=self.download),
            UPLOAD.path: MethodHandler(method=UPLOAD, func=self.upload),
            PING_PONG.path: MethodHandler(method=PING_PONG, func=self.ping_pong),
            SLOW.path: MethodHandler(method=SLOW, func=self.slow),
        }


def _say(text: str) -> None:
    print(text, flush=True)


async def _tour(channel: Channel, service: DemoService) -> list[str]:
    summary: list[str] = []

    _say("1. unary: 2,000 Echo calls, 64 at a time")
    started = time.perf_counter()

    async def worker() -> None:
        for _ in range(2000 // 64 + 1):
            assert await channel.unary_unary(ECHO, b"x" * 64) == b"x" * 64

    async with trio.open_nursery() as nursery:
        for _ in range(64):
            nursery.start_soon(worker)
    elapsed = time.perf_counter() - started
    summary.append(f"unary echo, 64 concurrent: {64 * (2000 // 64 + 1) / elapsed:,.0f} calls/s")

    size = 64 * 1024 * 1024
    _say(f"2. server streaming: download {size >> 20} MiB in 64 KiB messages")
    started = time.perf_counter()
    received = 0
    async for chunk in channel.unary_stream(DOWNLOAD, str(size).encode()):
        received += len(chunk)
    elapsed = time.perf_counter() - started
    assert received == size, (received, size)
    summary.append(f"server stream, 64 KiB messages: {size / elapsed / 1e6:,.0f} MB/s")

    _say(f"3. client streaming: upload {size >> 20} MiB, the server returns its sha256")
    payload = bytes(range(256)) * (CHUNK // 256)
    expected = hashlib.sha256(payload * (size // CHUNK)).hexdigest().encode()
    started = time.perf_counter()
    digest = await channel.stream_unary(UPLOAD, (payload for _ in range(size // CHUNK)))
    elapsed = time.perf_counter() - started
    assert digest == expected
    summary.append(f"client stream upload: {size / elapsed / 1e6:,.0f} MB/s, sha256 verified")

    _say("4. bidi: 1,000 ping-pong round trips on one stream")
    rtts: list[float] = []
    async with channel.stream_stream(PING_PONG) as call:
        for index in range(1000):
            sent = time.perf_counter()
            await call.send(b"%d" % index)
            assert await call.receive() == b"%d" % index
            rtts.append(time.perf_counter() - sent)
        await call.done_writing()
        assert await call.receive() is None
    rtts.sort()
    summary.append(
        f"bidi ping-pong: p50 {statistics.median(rtts) * 1e6:,.0f} us, "
        f"p99 {rtts[int(len(rtts) * 0.99)] * 1e6:,.0f} us"
    )

    _say("5. backpressure: the server streams 8 MiB to a reader that pauses")
    service.stall_log.clear()
    async with channel.unary_stream(DOWNLOAD, str(8 * 1024 * 1024).encode()) as download:
        first = await download.receive()
        assert first is not None
        await trio.sleep(0.5)  # a slow reader: the windows fill, the server must wait
        rest = [chunk async for chunk in download]
    for line in service.stall_log[:3]:
        _say(line)
    assert service.stall_log, "the server never waited for the slow reader"
    summary.append(
        f"backpressure: server send() waited for the slow reader; {1 + len(rest)} chunks "
        "delivered, none lost"
    )

    _say("6. deadline: Slow with timeout=0.2 s")
    started = time.perf_counter()
    try:
        await channel.unary_unary(SLOW, b"", timeout=0.2)
    except RpcError as exc:
        assert exc.code is StatusCode.DEADLINE_EXCEEDED
        with trio.fail_after(2):
            await service.slow_cancelled.wait()
        summary.append(
            f"deadline: DEADLINE_EXCEEDED after {time.perf_counter() - started:.2f} s, "
            "server handler cancelled"
        )
    return summary


async def main() -> None:
    """Run the tour against a fresh server and print the summary."""
    service = DemoService()
    server = Server([service])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        _say(f"puregrpc server listening on 127.0.0.1:{port}")
        async with Channel(f"127.0.0.1:{port}") as channel:
            summary = await _tour(channel, service)
        await server.stop(grace=2)
    _say("\nsummary")
    for line in summary:
        _say(f"  {line}")
    _say("server stopped gracefully")


if __name__ == "__main__":
    try:
        trio.run(main)
    except KeyboardInterrupt:
        sys.exit(130)
