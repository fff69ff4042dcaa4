"""Call objects typed by call shape; errors a user can catch; one clear error off trio."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.lowlevel
from client_calls_support import ReportingEcho, echo_channel

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel, StreamUnaryCall, UnaryStreamCall, UnaryUnaryCall
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServicerContext
from puregrpc.testing import serve_in_memory
from puregrpc.testing.protos.echo_pb2 import EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoStub

ROOT = Path(__file__).resolve().parents[2]

MISUSE = """
from puregrpc.client import Channel
from puregrpc.testing.protos.echo_pb2 import EchoReply, EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoStub


async def use(channel: Channel) -> None:
    stub = EchoStub(channel)
    good: EchoReply = await stub.Unary(EchoRequest())
    async for reply in stub.ServerStream(EchoRequest()):
        print(reply.index, good.message)
    bad: EchoReply = await stub.ServerStream(EchoRequest())  # line 12
    async for item in stub.Unary(EchoRequest()):  # line 13
        print(item)
    await stub.Unary(EchoRequest()).send(EchoRequest())  # line 15
"""


def test_mypy_rejects_a_call_used_as_the_wrong_shape(tmp_path: Path) -> None:
    snippet = tmp_path / "misuse.py"
    snippet.write_text(MISUSE)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["12", "13", "15"], result.stdout
    assert 'actual type "UnaryStreamCall[EchoRequest, EchoReply]"' in errors[0]
    assert "not async iterable" in errors[1]
    assert 'has no attribute "send"' in errors[2]


async def test_calls_have_the_type_of_their_shape() -> None:
    async with echo_channel(ReportingEcho()) as channel:
        stub = EchoStub(channel)
        unary = stub.Unary(EchoRequest(message="m"))
        streaming = stub.ServerStream(EchoRequest(count=1))
        upload = stub.ClientStream()
        assert isinstance(unary, UnaryUnaryCall)
        assert isinstance(streaming, UnaryStreamCall)
        assert isinstance(upload, StreamUnaryCall)
        assert (await unary).message == "m"
        assert unary.code is StatusCode.OK
        assert [r.index async for r in streaming] == [0]
        await upload.send(EchoRequest(message="p"))
        assert (await upload).message == "p"
        assert "ClientStream OK" in repr(upload)


async def test_a_send_after_the_call_ended_is_a_clear_rpc_error() -> None:
    async with echo_channel(ReportingEcho()) as channel:
        stub = EchoStub(channel)
        upload = stub.ClientStream()
        await upload.send(EchoRequest(message="a"))
        assert (await upload).message == "a"  # half-closes, then the response
        with pytest.raises(RpcError) as after_end:
            await upload.send(EchoRequest(message="late"))
        bidi = stub.Bidi()
        await bidi.send(EchoRequest(message="b"))
        await bidi.done_writing()
        with pytest.raises(RpcError) as after_close:
            await bidi.send(EchoRequest(message="late"))
        assert [r.message async for r in bidi] == ["b"]
    assert after_end.value.code is StatusCode.FAILED_PRECONDITION
    assert "after" in after_end.value.details
    assert after_close.value.code is StatusCode.FAILED_PRECONDITION
    assert "done_writing" in after_close.value.details


async def test_a_sender_task_racing_the_response_gets_rpc_error_not_a_group() -> None:
    async with echo_channel(ReportingEcho()) as channel:
        upload = EchoStub(channel).ClientStream()
        errors: list[BaseException] = []
        sending = trio.Event()

        async def keep_sending() -> None:
            # Far more messages than can go out before the half-close below:
            # the sender is still at it when the call ends under it.
            try:
                for index in range(100_000):
                    await upload.send(EchoRequest(message=str(index)))
                    sending.set()
                    await trio.lowlevel.checkpoint()
            except RpcError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_sending)
            with trio.fail_after(10):
                await sending.wait()
                reply = await upload  # half-closes while the sender still runs
    # The server joined what was sent before the half-close, in order.
    parts = reply.message.split("+")
    assert parts == [str(index) for index in range(len(parts))]
    assert len(errors) == 1 and isinstance(errors[0], RpcError)
    assert errors[0].code is StatusCode.FAILED_PRECONDITION


TWICE = raw_method("/typed.Test/Twice", Cardinality.UNARY_STREAM)
NONE = raw_method("/typed.Test/None", Cardinality.UNARY_STREAM)


class Misbehaving:
    """Server-streaming handlers that the client calls as unary: a cardinality violation."""

    async def twice(self, request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        yield b"one"
        yield b"two"

    async def none(self, request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        return
        yield b""

    def __puregrpc_handlers__(self) -> dict[str, MethodHandler]:
        return {
            TWICE.path: MethodHandler(method=TWICE, func=self.twice),
            NONE.path: MethodHandler(method=NONE, func=self.none),
        }


async def test_a_unary_call_with_two_or_no_responses_is_unimplemented() -> None:
    server = Server([Misbehaving()])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        async with Channel(f"127.0.0.1:{port}") as channel:
            with trio.fail_after(5):
                with pytest.raises(RpcError) as two:
                    await channel.unary_unary(
                        raw_method(TWICE.path, Cardinality.UNARY_UNARY), b"", timeout=5
                    )
                with pytest.raises(RpcError) as none:
                    await channel.unary_unary(
                        raw_method(NONE.path, Cardinality.UNARY_UNARY), b"", timeout=5
                    )
        await server.stop(grace=1)
    assert two.value.code is StatusCode.UNIMPLEMENTED
    assert "more than one response" in two.value.details
    assert none.value.code is StatusCode.UNIMPLEMENTED
    assert "without a response message" in none.value.details


def test_asyncio_gets_one_clear_error() -> None:
    async def from_asyncio() -> None:
        async with Channel("127.0.0.1:1"):
            pass

    with pytest.raises(RuntimeError, match="puregrpc runs on trio") as channel:
        asyncio.run(from_asyncio())
    assert "asyncio" in str(channel.value)

    async def serve_from_asyncio() -> None:
        await Server([]).serve("127.0.0.1", 0)

    with pytest.raises(RuntimeError, match="puregrpc runs on trio"):
        asyncio.run(serve_from_asyncio())


JUNK_UNARY = raw_method("/puregrpc.testing.Echo/Unary", Cardinality.UNARY_UNARY)
JUNK_STREAM = raw_method("/puregrpc.testing.Echo/ServerStream", Cardinality.UNARY_STREAM)


class Junk:
    """Answers Echo's methods with bytes that are no EchoReply."""

    def __init__(self) -> None:
        self.calls = 0

    async def unary(self, request: bytes, context: ServicerContext) -> bytes:
        self.calls += 1
        return b"\xff\xff\xff"

    async def stream(self, request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        self.calls += 1
        yield b"\xff\xff\xff"

    def __puregrpc_handlers__(self) -> dict[str, MethodHandler]:
        return {
            JUNK_UNARY.path: MethodHandler(method=JUNK_UNARY, func=self.unary),
            JUNK_STREAM.path: MethodHandler(method=JUNK_STREAM, func=self.stream),
        }


async def test_codec_failures_are_internal_rpc_errors_not_raw_exceptions() -> None:
    junk = Junk()
    async with serve_in_memory(junk) as served:
        stub = served.stub(EchoStub)
        with pytest.raises(RpcError) as unary:
            await stub.Unary(EchoRequest(), timeout=5)
        with pytest.raises(RpcError) as streaming:
            async for _ in stub.ServerStream(EchoRequest(), timeout=5):
                pass
        with pytest.raises(RpcError) as request:
            await stub.Unary("not a message", timeout=5)  # type: ignore[arg-type]
    assert unary.value.code is StatusCode.INTERNAL
    assert "Echo/Unary: could not deserialize a response (DecodeError" in unary.value.details
    assert streaming.value.code is StatusCode.INTERNAL
    assert request.value.code is StatusCode.INTERNAL
    assert "could not serialize the request (TypeError" in request.value.details
    assert junk.calls == 2  # the request that could not be serialized never went out
