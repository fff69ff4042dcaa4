"""grpclib's TestService server and client, on asyncio or uvloop.

A pass-through codec keeps messages as bytes (no protobuf).

    python grpclib_impl.py server asyncio|uvloop PORT
    python grpclib_impl.py client asyncio|uvloop HOST PORT [--workloads ...] [--scale F]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as c
from grpclib.client import (
    Channel,
    StreamStreamMethod,
    StreamUnaryMethod,
    UnaryStreamMethod,
    UnaryUnaryMethod,
)
from grpclib.const import Cardinality, Handler
from grpclib.encoding.base import CodecBase
from grpclib.server import Server


class RawCodec(CodecBase):
    """Messages are bytes already."""

    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        return message

    def decode(self, data: bytes, message_type: Any) -> Any:
        return data


class TestService:
    async def unary(self, stream) -> None:
        request = await stream.recv_message()
        await stream.send_message(c.responses_for(c.UNARY, request)[0])

    async def stream_out(self, stream) -> None:
        request = await stream.recv_message()
        for response in c.responses_for(c.STREAM_OUT, request):
            await stream.send_message(response)

    async def stream_in(self, stream) -> None:
        total = 0
        async for request in stream:
            total += c.input_payload_size(request)
        await stream.send_message(c.input_response(total))

    async def duplex(self, stream) -> None:
        async for request in stream:
            for response in c.responses_for(c.DUPLEX, request):
                await stream.send_message(response)

    def __mapping__(self) -> dict[str, Handler]:
        return {
            c.UNARY: Handler(self.unary, Cardinality.UNARY_UNARY, None, None),
            c.STREAM_OUT: Handler(self.stream_out, Cardinality.UNARY_STREAM, None, None),
            c.STREAM_IN: Handler(self.stream_in, Cardinality.STREAM_UNARY, None, None),
            c.DUPLEX: Handler(self.duplex, Cardinality.STREAM_STREAM, None, None),
        }


async def serve(port: int) -> None:
    server = Server([TestService()], codec=RawCodec())
    await server.start("127.0.0.1", port)
    bound = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    c.ready(bound)
    await server.wait_closed()


async def client(host: str, port: int, workloads: list[str], scale: float, limit: float) -> None:
    channel = Channel(host, port, codec=RawCodec())
    unary_stub = UnaryUnaryMethod(channel, c.UNARY, None, None)
    stream_stub = UnaryStreamMethod(channel, c.STREAM_OUT, None, None)
    upload_stub = StreamUnaryMethod(channel, c.STREAM_IN, None, None)
    duplex_stub = StreamStreamMethod(channel, c.DUPLEX, None, None)

    async def unary(concurrency: int, calls: int) -> dict[str, float]:
        latencies: list[float] = []
        per_task = max(1, calls // concurrency)
        deadline = c.now() + limit

        async def worker() -> None:
            for _ in range(per_task):
                started = c.now()
                response = await unary_stub(c.UNARY_REQUEST, timeout=30)
                latencies.append(c.now() - started)
                c.check(response == c.UNARY_RESPONSE, "wrong unary response")
                if started > deadline:
                    return

        started = c.now()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return c.latency_result(len(latencies), c.now() - started, latencies)

    async def server_stream(request: bytes, expected: bytes, per_call: int, calls: int):
        messages = 0
        deadline = c.now() + limit
        started = c.now()
        for _ in range(calls):
            got = 0
            async with stream_stub.open(timeout=60) as stream:
                await stream.send_message(request, end=True)
                async for response in stream:
                    got += 1
                    if got == 1:
                        c.check(response == expected, "wrong stream response")
            c.check(got == per_call, f"expected {per_call} responses, got {got}")
            messages += got
            if c.now() > deadline:
                break
        return c.stream_result(messages, len(expected) - 4, c.now() - started)

    async def client_stream(calls: int) -> dict[str, float]:
        messages = 0
        deadline = c.now() + limit
        started = c.now()
        for _ in range(calls):
            async with upload_stub.open(timeout=60) as stream:
                for index in range(c.UPLOAD_COUNT):
                    await stream.send_message(c.UPLOAD_MESSAGE, end=index == c.UPLOAD_COUNT - 1)
                response = await stream.recv_message()
            c.check(response == c.UPLOAD_RESPONSE, "wrong upload response")
            messages += c.UPLOAD_COUNT
            if c.now() > deadline:
                break
        return c.stream_result(messages, c.LARGE, c.now() - started)

    async def pingpong(count: int) -> dict[str, float]:
        latencies: list[float] = []
        deadline = c.now() + limit
        started = c.now()
        async with duplex_stub.open(timeout=60) as stream:
            for _ in range(count):
                sent = c.now()
                await stream.send_message(c.PING_REQUEST)
                response = await stream.recv_message()
                latencies.append(c.now() - sent)
                c.check(response == c.SMALL_RESPONSE, "wrong ping-pong response")
                if sent > deadline:
                    break
            await stream.end()
            c.check(await stream.recv_message() is None, "stream did not end")
        return c.pingpong_result(latencies, c.now() - started)

    runners = {
        "unary_c1": lambda: unary(1, c.count_for("unary_c1", scale)),
        "unary_c64": lambda: unary(64, c.count_for("unary_c64", scale)),
        "stream_64b": lambda: server_stream(
            c.SMALL_STREAM_REQUEST,
            c.SMALL_RESPONSE,
            c.SMALL_STREAM_COUNT,
            c.count_for("stream_64b", scale),
        ),
        "stream_64k": lambda: server_stream(
            c.LARGE_STREAM_REQUEST,
            c.LARGE_RESPONSE,
            c.LARGE_STREAM_COUNT,
            c.count_for("stream_64k", scale),
        ),
        "cstream_64k": lambda: client_stream(c.count_for("cstream_64k", scale)),
        "pingpong": lambda: pingpong(c.count_for("pingpong", scale)),
    }
    try:
        for name in workloads:
            try:
                c.emit(name, await runners[name]())
            except Exception as exc:
                c.emit(name, None, f"{type(exc).__name__}: {exc}"[:300])
    finally:
        channel.close()


def main() -> None:
    role, loop = sys.argv[1], sys.argv[2]
    if loop == "uvloop":
        import uvloop

        uvloop.install()
    if role == "server":
        asyncio.run(serve(int(sys.argv[3])))
    else:
        host, port, workloads, scale, limit = c.client_args(sys.argv[3:])
        asyncio.run(client(host, port, workloads, scale, limit))


if __name__ == "__main__":
    main()
