"""grpcio's TestService servers (sync with a thread pool, and grpc.aio) and clients.

Generic handlers without serializers, so messages stay bytes (no protobuf).

    python grpcio_impl.py server sync|aio PORT
    python grpcio_impl.py client sync|aio HOST PORT [--workloads ...] [--scale F]
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
from concurrent import futures
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as c
import grpc

#: Threads of the sync server: enough for the 100-stream workload to run at once.
SYNC_WORKERS = 128


# ------------------------------------------------------------------ servers


def _sync_handler() -> grpc.GenericRpcHandler:
    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        return c.responses_for(c.UNARY, request)[0]

    def stream_out(request: bytes, context: grpc.ServicerContext):
        yield from c.responses_for(c.STREAM_OUT, request)

    def stream_in(requests, context: grpc.ServicerContext) -> bytes:
        total = 0
        for request in requests:
            total += c.input_payload_size(request)
        return c.input_response(total)

    def duplex(requests, context: grpc.ServicerContext):
        for request in requests:
            yield from c.responses_for(c.DUPLEX, request)

    return grpc.method_handlers_generic_handler(
        c.SERVICE,
        {
            "UnaryCall": grpc.unary_unary_rpc_method_handler(unary),
            "StreamingOutputCall": grpc.unary_stream_rpc_method_handler(stream_out),
            "StreamingInputCall": grpc.stream_unary_rpc_method_handler(stream_in),
            "FullDuplexCall": grpc.stream_stream_rpc_method_handler(duplex),
        },
    )


def _aio_handler() -> grpc.GenericRpcHandler:
    async def unary(request: bytes, context) -> bytes:
        return c.responses_for(c.UNARY, request)[0]

    async def stream_out(request: bytes, context):
        for response in c.responses_for(c.STREAM_OUT, request):
            yield response

    async def stream_in(requests, context) -> bytes:
        total = 0
        async for request in requests:
            total += c.input_payload_size(request)
        return c.input_response(total)

    async def duplex(requests, context):
        async for request in requests:
            for response in c.responses_for(c.DUPLEX, request):
                yield response

    return grpc.method_handlers_generic_handler(
        c.SERVICE,
        {
            "UnaryCall": grpc.unary_unary_rpc_method_handler(unary),
            "StreamingOutputCall": grpc.unary_stream_rpc_method_handler(stream_out),
            "StreamingInputCall": grpc.stream_unary_rpc_method_handler(stream_in),
            "FullDuplexCall": grpc.stream_stream_rpc_method_handler(duplex),
        },
    )


def serve_sync(port: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=SYNC_WORKERS))
    server.add_generic_rpc_handlers((_sync_handler(),))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    c.ready(bound)
    server.wait_for_termination()


async def serve_aio(port: int) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_aio_handler(),))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    c.ready(bound)
    await server.wait_for_termination()


# ------------------------------------------------------------------ clients


def client_sync(host: str, port: int, workloads: list[str], scale: float, limit: float) -> None:
    channel = grpc.insecure_channel(f"{host}:{port}")
    unary_stub = channel.unary_unary(c.UNARY)
    stream_stub = channel.unary_stream(c.STREAM_OUT)
    upload_stub = channel.stream_unary(c.STREAM_IN)
    duplex_stub = channel.stream_stream(c.DUPLEX)

    def unary(concurrency: int, calls: int) -> dict[str, float]:
        latencies: list[float] = []
        per_task = max(1, calls // concurrency)
        deadline = c.now() + limit
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(per_task):
                    started = c.now()
                    response = unary_stub(c.UNARY_REQUEST, timeout=30)
                    latencies.append(c.now() - started)
                    c.check(response == c.UNARY_RESPONSE, "wrong unary response")
                    if started > deadline:
                        return
            except BaseException as exc:
                errors.append(exc)

        started = c.now()
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return c.latency_result(len(latencies), c.now() - started, latencies)

    def server_stream(request: bytes, expected: bytes, per_call: int, calls: int):
        messages = 0
        deadline = c.now() + limit
        started = c.now()
        for _ in range(calls):
            got = 0
            for response in stream_stub(request, timeout=60):
                got += 1
                if got == 1:
                    c.check(response == expected, "wrong stream response")
            c.check(got == per_call, f"expected {per_call} responses, got {got}")
            messages += got
            if c.now() > deadline:
                break
        return c.stream_result(messages, len(expected) - 4, c.now() - started)

    def client_stream(calls: int) -> dict[str, float]:
        messages = 0
        deadline = c.now() + limit
        started = c.now()
        for _ in range(calls):
            response = upload_stub(iter([c.UPLOAD_MESSAGE] * c.UPLOAD_COUNT), timeout=60)
            c.check(response == c.UPLOAD_RESPONSE, "wrong upload response")
            messages += c.UPLOAD_COUNT
            if c.now() > deadline:
                break
        return c.stream_result(messages, c.LARGE, c.now() - started)

    def pingpong(count: int) -> dict[str, float]:
        requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

        def request_iterator():
            while (item := requests.get()) is not None:
                yield item

        latencies: list[float] = []
        deadline = c.now() + limit
        started = c.now()
        call = duplex_stub(request_iterator(), timeout=60)
        for _ in range(count):
            sent = c.now()
            requests.put(c.PING_REQUEST)
            response = next(call)
            latencies.append(c.now() - sent)
            c.check(response == c.SMALL_RESPONSE, "wrong ping-pong response")
            if sent > deadline:
                break
        requests.put(None)
        c.check(next(call, None) is None, "stream did not end")
        return c.pingpong_result(latencies, c.now() - started)

    c.run_workloads(workloads, _runners(unary, server_stream, client_stream, pingpong, scale))
    channel.close()


def _runners(unary, server_stream, client_stream, pingpong, scale):
    return {
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


async def client_aio(host: str, port: int, workloads: list[str], scale: float, limit: float):
    async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
        unary_stub = channel.unary_unary(c.UNARY)
        stream_stub = channel.unary_stream(c.STREAM_OUT)
        upload_stub = channel.stream_unary(c.STREAM_IN)
        duplex_stub = channel.stream_stream(c.DUPLEX)

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
                async for response in stream_stub(request, timeout=60):
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
                response = await upload_stub(iter([c.UPLOAD_MESSAGE] * c.UPLOAD_COUNT), timeout=60)
                c.check(response == c.UPLOAD_RESPONSE, "wrong upload response")
                messages += c.UPLOAD_COUNT
                if c.now() > deadline:
                    break
            return c.stream_result(messages, c.LARGE, c.now() - started)

        async def pingpong(count: int) -> dict[str, float]:
            latencies: list[float] = []
            deadline = c.now() + limit
            started = c.now()
            call = duplex_stub(timeout=60)
            for _ in range(count):
                sent = c.now()
                await call.write(c.PING_REQUEST)
                response = await call.read()
                latencies.append(c.now() - sent)
                c.check(response == c.SMALL_RESPONSE, "wrong ping-pong response")
                if sent > deadline:
                    break
            await call.done_writing()
            c.check(await call.read() is grpc.aio.EOF, "stream did not end")
            return c.pingpong_result(latencies, c.now() - started)

        runners = _runners(unary, server_stream, client_stream, pingpong, scale)
        for name in workloads:
            try:
                c.emit(name, await runners[name]())
            except Exception as exc:
                c.emit(name, None, f"{type(exc).__name__}: {exc}"[:300])


def main() -> None:
    role, flavour = sys.argv[1], sys.argv[2]
    if role == "server":
        port = int(sys.argv[3])
        if flavour == "sync":
            serve_sync(port)
        else:
            asyncio.run(serve_aio(port))
    else:
        host, port, workloads, scale, limit = c.client_args(sys.argv[3:])
        if flavour == "sync":
            client_sync(host, port, workloads, scale, limit)
        else:
            asyncio.run(client_aio(host, port, workloads, scale, limit))


if __name__ == "__main__":
    main()
