"""purerpc's TestService server and client (trio through anyio).

purerpc parses and serialises through ``FromString``-style methods of its
message types; :class:`Raw` is a stand-in that keeps the bytes (no protobuf).

    python purerpc_impl.py server PORT
    python purerpc_impl.py client HOST PORT [--workloads ...] [--scale F]
"""

import sys
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio
import common as c
import purerpc
from purerpc.rpc import Cardinality, RPCSignature


class Raw:
    """A message type whose serialised form is its content."""

    __slots__ = ("data",)

    class DESCRIPTOR:
        full_name = "bench.Raw"

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def ParseFromString(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data


service = purerpc.Service(c.SERVICE)


@service.rpc("UnaryCall")
async def unary_call(message: Raw) -> Raw:
    return Raw(c.responses_for(c.UNARY, message.data)[0])


@service.rpc("StreamingOutputCall")
async def streaming_output_call(message: Raw) -> AsyncIterator[Raw]:
    for response in c.responses_for(c.STREAM_OUT, message.data):
        yield Raw(response)


@service.rpc("StreamingInputCall")
async def streaming_input_call(messages: AsyncIterator[Raw]) -> Raw:
    total = 0
    async for message in messages:
        total += c.input_payload_size(message.data)
    return Raw(c.input_response(total))


@service.rpc("FullDuplexCall")
async def full_duplex_call(messages: AsyncIterator[Raw]) -> AsyncIterator[Raw]:
    async for message in messages:
        for response in c.responses_for(c.DUPLEX, message.data):
            yield Raw(response)


async def serve(port: int) -> None:
    server = purerpc.Server(port=port)
    server.add_service(service)
    async with anyio.create_task_group() as tg:
        bound = await tg.start(server.serve_async)
        c.ready(bound)


async def client(host: str, port: int, workloads: list[str], scale: float, limit: float) -> None:
    async with purerpc.insecure_channel(host, port) as channel:
        stub = purerpc.Client(c.SERVICE, channel)

        def method(name: str, cardinality: Cardinality):
            return stub.get_method_stub(name, RPCSignature(cardinality, Raw, Raw))

        unary_stub = method("UnaryCall", Cardinality.UNARY_UNARY)
        stream_stub = method("StreamingOutputCall", Cardinality.UNARY_STREAM)
        upload_stub = method("StreamingInputCall", Cardinality.STREAM_UNARY)
        duplex_stub = method("FullDuplexCall", Cardinality.STREAM_STREAM)

        async def unary(concurrency: int, calls: int) -> dict[str, float]:
            latencies: list[float] = []
            per_task = max(1, calls // concurrency)
            deadline = c.now() + limit

            async def worker() -> None:
                for _ in range(per_task):
                    started = c.now()
                    response = await unary_stub(Raw(c.UNARY_REQUEST))
                    latencies.append(c.now() - started)
                    c.check(response.data == c.UNARY_RESPONSE, "wrong unary response")
                    if started > deadline:
                        return

            started = c.now()
            async with anyio.create_task_group() as tg:
                for _ in range(concurrency):
                    tg.start_soon(worker)
            return c.latency_result(len(latencies), c.now() - started, latencies)

        async def server_stream(request: bytes, expected: bytes, per_call: int, calls: int):
            messages = 0
            deadline = c.now() + limit
            started = c.now()
            for _ in range(calls):
                got = 0
                async for response in stream_stub(Raw(request)):
                    got += 1
                    if got == 1:
                        c.check(response.data == expected, "wrong stream response")
                c.check(got == per_call, f"expected {per_call} responses, got {got}")
                messages += got
                if c.now() > deadline:
                    break
            return c.stream_result(messages, len(expected) - 4, c.now() - started)

        async def uploads():
            for _ in range(c.UPLOAD_COUNT):
                yield Raw(c.UPLOAD_MESSAGE)

        async def client_stream(calls: int) -> dict[str, float]:
            messages = 0
            deadline = c.now() + limit
            started = c.now()
            for _ in range(calls):
                response = await upload_stub(uploads())
                c.check(response.data == c.UPLOAD_RESPONSE, "wrong upload response")
                messages += c.UPLOAD_COUNT
                if c.now() > deadline:
                    break
            return c.stream_result(messages, c.LARGE, c.now() - started)

        async def pingpong(count: int) -> dict[str, float]:
            latencies: list[float] = []
            deadline = c.now() + limit
            started = c.now()
            stream = await duplex_stub()
            for _ in range(count):
                sent = c.now()
                await stream.send_message(Raw(c.PING_REQUEST))
                response = await stream.receive_message()
                latencies.append(c.now() - sent)
                c.check(response.data == c.SMALL_RESPONSE, "wrong ping-pong response")
                if sent > deadline:
                    break
            await stream.close()
            c.check(await stream.receive_message() is None, "stream did not end")
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
        anyio.run(serve, int(sys.argv[2]), backend="trio")
    else:
        host, port, workloads, scale, limit = c.client_args(sys.argv[2:])
        anyio.run(client, host, port, workloads, scale, limit, backend="trio")


if __name__ == "__main__":
    main()
