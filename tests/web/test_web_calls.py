"""gRPC-Web calls against a real Server: binary and text x HTTP/1.1 and HTTP/2 x call types.

The clients (web_clients.py) speak h11 and h2 over sockets to one server
port, which also serves a native puregrpc Channel.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import AsyncIterator

import pytest
import trio
from web_clients import H2Client, Http1Client

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel
from puregrpc.server import Server, ServerOptions, ServicerContext
from puregrpc.testing.protos import echo_pb2
from puregrpc.testing.protos.echo_puregrpc import EchoServicer, EchoStub
from puregrpc.web import WebOptions
from puregrpc.wire import ListTracer, Metadata

Client = Http1Client | H2Client


class Echo(EchoServicer):
    """Echoes, fails, sleeps and streams as the request's message says."""

    def __init__(self) -> None:
        self.gate = trio.Event()

    async def Unary(
        self, request: echo_pb2.EchoRequest, context: ServicerContext
    ) -> echo_pb2.EchoReply:
        custom = context.invocation_metadata().get("x-custom")
        blob = context.invocation_metadata().get("x-blob-bin")
        if custom is not None:
            await context.send_initial_metadata(Metadata([("x-initial", f"seen {custom}")]))
        context.set_trailing_metadata(
            Metadata(
                [("x-trailing", "bye"), ("x-back-bin", blob if isinstance(blob, bytes) else b"")]
            )
        )
        if request.message == "fail":
            await context.abort(StatusCode.FAILED_PRECONDITION, "nope: ünïcode\nsecond line")
        if request.message == "sleep":
            await trio.sleep(30)
        if request.message == "crash":
            raise ValueError("boom")
        return echo_pb2.EchoReply(message=request.message, payload=request.payload)

    async def ServerStream(
        self, request: echo_pb2.EchoRequest, context: ServicerContext
    ) -> AsyncIterator[echo_pb2.EchoReply]:
        for index in range(request.count):
            if request.message == "gated" and index == 1:
                # The second reply waits until the client has seen the first:
                # without a flush per message this never happens.
                await self.gate.wait()
            yield echo_pb2.EchoReply(message=request.message, index=index)


@pytest.fixture
async def echo() -> Echo:
    return Echo()


@pytest.fixture
async def server(echo: Echo) -> AsyncIterator[Server]:
    options = ServerOptions(grpc_web=WebOptions(allowed_origins=("https://app.example",)))
    async with Server([echo], options=options).listening("127.0.0.1", 0) as served:
        yield served


@pytest.fixture(params=["http1", "h2"])
async def client(request: pytest.FixtureRequest, server: Server) -> AsyncIterator[Client]:
    kind = Http1Client if request.param == "http1" else H2Client
    opened = await kind.connect(server.port)
    try:
        yield opened
    finally:
        await opened.aclose()


def _request(message: str, **fields: object) -> bytes:
    return echo_pb2.EchoRequest(message=message, **fields).SerializeToString()  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
async def test_unary(client: Client, text: bool) -> None:
    with trio.fail_after(10):
        response = await client.call("Unary", _request("hello", payload=b"\x00\x01"), text=text)
    assert response.http_status == 200
    assert response.headers["content-type"].startswith(
        "application/grpc-web-text" if text else "application/grpc-web"
    )
    reply = echo_pb2.EchoReply.FromString(response.messages[0])
    assert (reply.message, reply.payload) == ("hello", b"\x00\x01")
    assert response.final.code is StatusCode.OK
    assert response.trailing is not None and response.trailing.get("x-trailing") == "bye"


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
async def test_server_streaming(client: Client, text: bool) -> None:
    with trio.fail_after(10):
        response = await client.call("ServerStream", _request("s", count=5), text=text)
    replies = [echo_pb2.EchoReply.FromString(m) for m in response.messages]
    assert [r.index for r in replies] == [0, 1, 2, 3, 4]
    assert response.final.code is StatusCode.OK


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
async def test_server_streaming_flushes_each_message(
    client: Client, echo: Echo, text: bool
) -> None:
    first = trio.Event()

    async def open_gate() -> None:
        await first.wait()
        echo.gate.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(open_gate)
            response = await client.call(
                "ServerStream", _request("gated", count=3), text=text, on_data=first
            )
    assert len(response.messages) == 3
    assert response.final.code is StatusCode.OK


async def test_many_calls_on_one_connection(client: Client) -> None:
    with trio.fail_after(10):
        for i in range(5):
            response = await client.call("Unary", _request(f"n{i}"), text=i % 2 == 1)
            assert echo_pb2.EchoReply.FromString(response.messages[0]).message == f"n{i}"


async def test_metadata_both_ways(client: Client) -> None:
    blob = b"\x00\xffbinary"
    metadata = [
        ("x-custom", "abc"),
        ("x-blob-bin", base64.b64encode(blob).decode()),
    ]
    with trio.fail_after(10):
        response = await client.call("Unary", _request("m"), metadata=metadata)
    assert response.headers["x-initial"] == "seen abc"
    assert response.trailing is not None
    assert response.trailing.get("x-back-bin") == blob


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
async def test_error_status_and_message(client: Client, text: bool) -> None:
    with trio.fail_after(10):
        response = await client.call("Unary", _request("fail"), text=text)
    assert response.http_status == 200
    assert response.messages == []
    assert response.final.code is StatusCode.FAILED_PRECONDITION
    assert response.final.details == "nope: ünïcode\nsecond line"
    crashed = await client.call("Unary", _request("crash"), text=text)
    assert crashed.final.code is StatusCode.UNKNOWN


async def test_deadline(client: Client) -> None:
    with trio.fail_after(10):
        response = await client.call("Unary", _request("sleep"), metadata=[("grpc-timeout", "50m")])
    assert response.final.code is StatusCode.DEADLINE_EXCEEDED


async def test_unknown_method_and_bad_timeout(client: Client) -> None:
    with trio.fail_after(10):
        missing = await client.call("Nope", _request("x"))
        assert missing.final.code is StatusCode.UNIMPLEMENTED
        assert "method not found" in missing.final.details
        bad = await client.call("Unary", _request("x"), metadata=[("grpc-timeout", "soon")])
        assert bad.final.code is StatusCode.INTERNAL
        assert "grpc-timeout" in bad.final.details


@pytest.mark.parametrize("method", ["ClientStream", "Bidi"])
async def test_client_streaming_is_unimplemented_with_a_reason(client: Client, method: str) -> None:
    with trio.fail_after(10):
        response = await client.call(method, _request("x"))
    assert response.final.code is StatusCode.UNIMPLEMENTED
    assert "gRPC-Web carries unary and server-streaming calls only" in response.final.details


async def test_text_body_split_at_every_offset(client: Client) -> None:
    body_length = len(base64.b64encode(b"\x00" * 5 + _request("split me", payload=b"\x01\x02")))
    with trio.fail_after(30):
        for offset in range(body_length + 1):
            response = await client.call(
                "Unary", _request("split me", payload=b"\x01\x02"), text=True, split_at=offset
            )
            assert echo_pb2.EchoReply.FromString(response.messages[0]).message == "split me"


async def test_native_grpc_on_the_same_port(server: Server) -> None:
    with trio.fail_after(10):
        web = await Http1Client.connect(server.port)
        h2web = await H2Client.connect(server.port)
        try:
            async with Channel(f"127.0.0.1:{server.port}") as channel:
                stub = EchoStub(channel)
                native = await stub.Unary(echo_pb2.EchoRequest(message="native"))
                assert native.message == "native"
                replies = [r.index async for r in stub.ServerStream(echo_pb2.EchoRequest(count=3))]
                assert replies == [0, 1, 2]
                both = await h2web.call("Unary", _request("beside"))
                assert echo_pb2.EchoReply.FromString(both.messages[0]).message == "beside"
                over_http1 = await web.call("Unary", _request("beside"))
                assert over_http1.final.code is StatusCode.OK
                with pytest.raises(RpcError) as caught:
                    await stub.Unary(echo_pb2.EchoRequest(message="fail"))
                assert caught.value.code is StatusCode.FAILED_PRECONDITION
        finally:
            await web.aclose()
            await h2web.aclose()


async def test_tracer_shows_web_calls() -> None:
    tracer = ListTracer()
    options = ServerOptions(tracer=tracer)
    async with Server([Echo()], options=options).listening("127.0.0.1", 0) as served:
        with trio.fail_after(10):
            for kind in (Http1Client, H2Client):
                opened = await kind.connect(served.port)
                try:
                    await opened.call("Unary", _request("traced"), text=True)
                finally:
                    await opened.aclose()
    starts = [r for r in tracer.records if r.kind == "call_start" and r.fields.get("http") == "1.1"]
    assert starts and starts[0].fields["protocol"] == "grpc-web-text"
    assert any(r.kind == "web_call" and r.fields["http"] == "2" for r in tracer.records)
    assert any(r.kind == "message_out" for r in tracer.records)


@pytest.mark.parametrize(
    ("body", "text", "metadata", "words"),
    [
        (b"\x01\x00\x00\x00\x02hi", False, [], "no grpc-encoding was negotiated"),
        (b"\x00\x00\x00\x00\x0ahi", False, [], "stream ended inside a gRPC message"),
        (b"AAAA*AAA", True, [], "not valid base64"),
        (b"AAAAAA", True, [], "inside a quantum"),
        (b"\x01\x00\x00\x00\x02hi", False, [("grpc-encoding", "gzip")], "gzip"),
    ],
    ids=["compressed-flag", "truncated", "bad-base64", "cut-quantum", "bad-gzip"],
)
async def test_broken_request_bodies(
    client: Client, body: bytes, text: bool, metadata: list[tuple[str, str]], words: str
) -> None:
    with trio.fail_after(10):
        response = await client.call("Unary", b"", body=body, text=text, metadata=metadata)
    assert response.final.code in (StatusCode.INTERNAL, StatusCode.UNIMPLEMENTED)
    assert words in response.final.details
    assert response.messages == []


async def test_compressed_request(client: Client) -> None:
    payload = gzip.compress(_request("squeezed"))
    body = b"\x01" + len(payload).to_bytes(4, "big") + payload
    with trio.fail_after(10):
        response = await client.call("Unary", b"", body=body, metadata=[("grpc-encoding", "gzip")])
    assert echo_pb2.EchoReply.FromString(response.messages[0]).message == "squeezed"


async def test_unserved_web_codec(client: Client) -> None:
    with trio.fail_after(10):
        response = await client.call(
            "Unary", _request("x"), content_type="application/grpc-web+json"
        )
    assert response.http_status == 415
