"""puregrpc's TestService server and benchmark client (public API only).

python puregrpc_impl.py server PORT [--profile FILE] [--seconds S]
python puregrpc_impl.py client HOST PORT [--workloads ...] [--scale F]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as c
import trio

from puregrpc.client import Channel
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, RequestIterator, Server, ServicerContext

UNARY = raw_method(c.UNARY, Cardinality.UNARY_UNARY)
STREAM_OUT = raw_method(c.STREAM_OUT, Cardinality.UNARY_STREAM)
STREAM_IN = raw_method(c.STREAM_IN, Cardinality.STREAM_UNARY)
DUPLEX = raw_method(c.DUPLEX, Cardinality.STREAM_STREAM)


# ------------------------------------------------------------------ server


async def unary_call(request: bytes, context: ServicerContext) -> bytes:
    return c.responses_for(c.UNARY, request)[0]


async def streaming_output_call(request: bytes, context: ServicerContext) -> None:
    for response in c.responses_for(c.STREAM_OUT, request):
        await context.send(response)


async def streaming_input_call(requests: RequestIterator[bytes], context: ServicerContext) -> bytes:
    total = 0
    async for request in requests:
        total += c.input_payload_size(request)
    return c.input_response(total)


async def full_duplex_call(requests: RequestIterator[bytes], context: ServicerContext) -> None:
    async for request in requests:
        for response in c.responses_for(c.DUPLEX, request):
            await context.send(response)


HANDLERS = [
    MethodHandler(method=UNARY, func=unary_call),
    MethodHandler(method=STREAM_OUT, func=streaming_output_call),
    MethodHandler(method=STREAM_IN, func=streaming_input_call),
    MethodHandler(method=DUPLEX, func=full_duplex_call),
]


async def serve(port: int, seconds: float) -> None:
    server = Server(HANDLERS)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.serve, "127.0.0.1", port)
        c.ready(bound)
        await trio.sleep(seconds)
        await server.stop(grace=0.5)


# ------------------------------------------------------------------ client


async def client(host: str, port: int, workloads: list[str], scale: float, limit: float) -> None:
    async with Channel(f"{host}:{port}") as channel:

        async def unary(concurrency: int, calls: int) -> dict[str, float]:
            latencies: list[float] = []
            per_task = max(1, calls // concurrency)
            deadline = c.now() + limit

            async def worker() -> None:
                for _ in range(per_task):
                    started = c.now()
                    response = await channel.unary_unary(UNARY, c.UNARY_REQUEST, timeout=30)
                    latencies.append(c.now() - started)
                    c.check(response == c.UNARY_RESPONSE, "wrong unary response")
                    if started > deadline:
                        return

            started = c.now()
            async with trio.open_nursery() as nursery:
                for _ in range(concurrency):
                    nursery.start_soon(worker)
            return c.latency_result(len(latencies), c.now() - started, latencies)

        async def server_stream(request: bytes, expected: bytes, per_call: int, calls: int):
            messages = 0
            deadline = c.now() + limit
            started = c.now()
            for _ in range(calls):
                got = 0
                async for response in channel.unary_stream(STREAM_OUT, request, timeout=60):
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
                response = await channel.stream_unary(
                    STREAM_IN, [c.UPLOAD_MESSAGE] * c.UPLOAD_COUNT, timeout=60
                )
                c.check(response == c.UPLOAD_RESPONSE, "wrong upload response")
                messages += c.UPLOAD_COUNT
                if c.now() > deadline:
                    break
            return c.stream_result(messages, c.LARGE, c.now() - started)

        async def pingpong(count: int) -> dict[str, float]:
            latencies: list[float] = []
            deadline = c.now() + limit
            started = c.now()
            async with channel.stream_stream(DUPLEX, timeout=60) as call:
                for _ in range(count):
                    sent = c.now()
                    await call.send(c.PING_REQUEST)
                    response = await call.receive()
                    latencies.append(c.now() - sent)
                    c.check(response == c.SMALL_RESPONSE, "wrong ping-pong response")
                    if sent > deadline:
                        break
                await call.done_writing()
                c.check(await call.receive() is None, "stream did not end")
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
        for name in workloads:
            try:
                c.emit(name, await runners[name]())
            except Exception as exc:
                c.emit(name, None, f"{type(exc).__name__}: {exc}"[:300])


def main() -> None:
    if sys.argv[1] == "server":
        import argparse

        parser = argparse.ArgumentParser()
        parser.add_argument("mode")
        parser.add_argument("port", type=int)
        parser.add_argument("--seconds", type=float, default=3600)
        parser.add_argument("--profile", default=None, help="write a cProfile dump here")
        args = parser.parse_args()
        c.run_maybe_profiled(lambda: trio.run(serve, args.port, args.seconds), sys.argv)
    else:
        host, port, workloads, scale, limit = c.client_args(sys.argv[2:])
        trio.run(client, host, port, workloads, scale, limit)


if __name__ == "__main__":
    main()
