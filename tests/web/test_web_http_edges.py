"""gRPC-Web at the HTTP level: CORS, what is not gRPC-Web, limits, slow and broken clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import h11
import pytest
import trio
from test_web_calls import Echo
from web_clients import BINARY, ECHO, H2Client, Http1Client

from puregrpc import StatusCode
from puregrpc.server import Server, ServerOptions
from puregrpc.testing.protos import echo_pb2
from puregrpc.web import WebOptions, WebResponseDecoder, frame_request
from puregrpc.wire import ConnectionConfig

ORIGIN = "https://app.example"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    options = ServerOptions(
        grpc_web=WebOptions(allowed_origins=(ORIGIN,), request_head_timeout=0.5),
        connection=ConnectionConfig(max_receive_message_size=1000),
    )
    async with Server([Echo()], options=options).listening("127.0.0.1", 0) as served:
        yield served


@pytest.fixture
async def http1(server: Server) -> AsyncIterator[Http1Client]:
    client = await Http1Client.connect(server.port)
    try:
        yield client
    finally:
        await client.aclose()


def _preflight_headers(origin: str) -> list[tuple[str, str]]:
    return [
        ("origin", origin),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type,x-grpc-web,x-user-agent,x-custom"),
    ]


async def test_preflight_over_http1(http1: Http1Client) -> None:
    with trio.fail_after(10):
        head, _ = await http1.request(
            "OPTIONS", f"{ECHO}/Unary", headers=_preflight_headers(ORIGIN)
        )
        assert head.status_code == 204
        fields = {bytes(k): bytes(v) for k, v in head.headers}
        assert fields[b"access-control-allow-origin"] == ORIGIN.encode()
        allowed = fields[b"access-control-allow-headers"].split(b", ")
        assert {
            b"x-grpc-web",
            b"x-user-agent",
            b"grpc-timeout",
            b"content-type",
            b"x-custom",
        } <= set(allowed)
        refused, _ = await http1.request(
            "OPTIONS", f"{ECHO}/Unary", headers=_preflight_headers("https://evil.example")
        )
        assert refused.status_code == 403
        # The connection is still good for a call after the preflights.
        response = await http1.call(
            "Unary", echo_pb2.EchoRequest(message="after").SerializeToString()
        )
        assert response.messages


async def test_preflight_over_h2(server: Server) -> None:
    client = await H2Client.connect(server.port)
    try:
        with trio.fail_after(10):
            base = [
                (":method", "OPTIONS"),
                (":scheme", "http"),
                (":path", f"{ECHO}/Unary"),
                (":authority", "127.0.0.1"),
            ]
            head, body, _ = await client.exchange(base + _preflight_headers(ORIGIN), [])
            assert head[":status"] == "204"
            assert head["access-control-allow-origin"] == ORIGIN
            assert "x-custom" in head["access-control-allow-headers"].split(", ")
            assert body == b""
            refused, _, _ = await client.exchange(
                base + _preflight_headers("https://evil.example"), []
            )
            assert refused[":status"] == "403"
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind", [Http1Client, H2Client], ids=["http1", "h2"])
async def test_cross_origin_calls(server: Server, kind: type[Http1Client] | type[H2Client]) -> None:
    client = await kind.connect(server.port)
    request = echo_pb2.EchoRequest(message="cors").SerializeToString()
    try:
        with trio.fail_after(10):
            allowed = await client.call(
                "Unary", request, metadata=[("origin", ORIGIN), ("x-custom", "1")]
            )
            assert allowed.headers["access-control-allow-origin"] == ORIGIN
            exposed = allowed.headers["access-control-expose-headers"].split(", ")
            assert {"grpc-status", "grpc-message", "x-initial"} <= set(exposed)
            assert allowed.final.code is StatusCode.OK
            # A call refused before it starts still lets the allowed page read why.
            bad = await client.call(
                "Unary", request, metadata=[("origin", ORIGIN), ("grpc-timeout", "soon")]
            )
            assert bad.headers["access-control-allow-origin"] == ORIGIN
            assert bad.final.code is StatusCode.INTERNAL
            refused = await client.call(
                "Unary", request, metadata=[("origin", "https://evil.example")]
            )
            assert refused.final.code is StatusCode.PERMISSION_DENIED
            assert "access-control-allow-origin" not in refused.headers
            same = await client.call(
                "Unary", request, metadata=[("origin", "http://127.0.0.1")]
            )  # the clients send Host / :authority 127.0.0.1
            assert same.final.code is StatusCode.OK
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("method", "content_type", "expected", "words"),
    [
        ("GET", None, 404, "serves gRPC"),
        ("PUT", "application/grpc-web", 405, "not allowed"),
        ("POST", "text/plain", 415, "not gRPC-Web"),
        ("POST", "application/grpc-web+json", 415, "not served"),
        ("POST", "application/grpc", 426, "needs HTTP/2"),
    ],
)
async def test_what_is_not_grpc_web_gets_a_clear_answer(
    http1: Http1Client, method: str, content_type: str | None, expected: int, words: str
) -> None:
    headers = [] if content_type is None else [("content-type", content_type)]
    with trio.fail_after(10):
        head, body = await http1.request(method, f"{ECHO}/Unary", headers=headers)
    assert head.status_code == expected
    assert words in body.decode()
    assert b"Traceback" not in body


async def _raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes the connection."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = b""
    try:
        with trio.fail_after(10):
            await stream.send_all(data)
            while chunk := await stream.receive_some(65536):
                received += chunk
    except trio.BrokenResourceError:
        pass
    finally:
        await stream.aclose()
    return received


async def test_http10_and_malformed_requests(server: Server) -> None:
    old = await _raw_exchange(server.port, b"POST /x HTTP/1.0\r\nhost: a\r\n\r\n")
    assert old.startswith(b"HTTP/1.1 505 ")
    broken = await _raw_exchange(server.port, b"POST /x HTTP/1.1\r\nbad header line\r\n\r\n")
    assert broken.startswith(b"HTTP/1.1 400 ")
    assert b"Traceback" not in broken
    huge = b"POST /x HTTP/1.1\r\nhost: a\r\nx-big: " + b"a" * 70_000 + b"\r\n\r\n"
    too_big = await _raw_exchange(server.port, huge)
    assert too_big.startswith(b"HTTP/1.1 431 ")


async def test_request_body_limits(http1: Http1Client, server: Server) -> None:
    big = echo_pb2.EchoRequest(payload=b"x" * 2000).SerializeToString()
    with trio.fail_after(10):
        response = await http1.call("Unary", big)
    assert response.http_status == 413
    assert response.final.code is StatusCode.RESOURCE_EXHAUSTED
    # A chunked body gives no length up front: the message decoder's limit answers.
    chunked = await Http1Client.connect(server.port)
    try:
        with trio.fail_after(10):
            head, _ = await chunked.request(
                "POST",
                f"{ECHO}/Unary",
                body=[frame_request(big)[:600], frame_request(big)[600:]],
                headers=[("content-type", BINARY)],
                chunked=True,
            )
        fields = {bytes(k): bytes(v) for k, v in head.headers}
        assert fields[b"grpc-status"] == b"8"
        assert b"larger than max" in fields[b"grpc-message"]
    finally:
        await chunked.aclose()


async def test_h2_web_body_over_the_limit(server: Server) -> None:
    client = await H2Client.connect(server.port)
    try:
        big = echo_pb2.EchoRequest(payload=b"x" * 2000).SerializeToString()
        with trio.fail_after(10):
            response = await client.call("Unary", big, text=True)
        assert response.final.code is StatusCode.RESOURCE_EXHAUSTED
    finally:
        await client.aclose()


async def test_slow_or_silent_clients_are_closed(server: Server) -> None:
    # A head that never completes, and a connection that never says anything:
    # both closed after the request head timeout (0.5 s here), bounded below.
    for start in (b"POST /puregrpc.testing.Echo/Unary HTT", b""):
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        try:
            with trio.fail_after(10):
                await stream.send_all(start)
                while await stream.receive_some(65536):
                    pass
        except trio.BrokenResourceError:
            pass
        finally:
            await stream.aclose()


async def test_idle_keepalive_connection_closes_on_stop() -> None:
    server = Server([Echo()])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        client = await Http1Client.connect(port)
        try:
            response = await client.call(
                "Unary", echo_pb2.EchoRequest(message="x").SerializeToString()
            )
            assert response.messages
            with trio.fail_after(10):
                await server.stop(grace=5)
                assert await client.stream.receive_some(100) == b""
        finally:
            await client.aclose()


async def test_head_request_and_a_body_left_unread(http1: Http1Client) -> None:
    with trio.fail_after(10):
        head, body = await http1.request("HEAD", "/")
        assert head.status_code == 404
        assert body == b""
        # A call that ends before its body does (an unknown method): the rest
        # of the body is read and dropped, and the connection serves on.
        body_bytes = frame_request(echo_pb2.EchoRequest(message="x" * 50).SerializeToString())
        await http1.send(
            h11.Request(
                method="POST",
                target=f"{ECHO}/Missing",
                headers=[
                    ("host", "127.0.0.1"),
                    ("content-type", BINARY),
                    ("content-length", str(len(body_bytes))),
                ],
            )
        )
        await http1.send(h11.Data(data=body_bytes[:10]))
        answer = await http1.next_event()
        assert isinstance(answer, h11.Response)
        decoder = WebResponseDecoder()
        frames = []
        while not isinstance(event := await http1.next_event(), h11.EndOfMessage):
            assert isinstance(event, h11.Data)
            frames += decoder.feed(bytes(event.data))
        await http1.send(h11.Data(data=body_bytes[10:]))
        await http1.send(h11.EndOfMessage())
        http1.conn.start_next_cycle()
        again = await http1.call("Unary", echo_pb2.EchoRequest(message="again").SerializeToString())
    trailers = frames[-1].trailers
    assert trailers is not None and trailers[0].code is StatusCode.UNIMPLEMENTED
    assert echo_pb2.EchoReply.FromString(again.messages[0]).message == "again"


async def _answer_until_closed(port: int, request: bytes) -> bytes:
    """Everything the server sends after ``request`` until it closes (10 s at most)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        with trio.fail_after(10):
            await stream.send_all(request)
            received = b""
            while data := await stream.receive_some(65536):
                received += data
    finally:
        await stream.aclose()
    return received


async def test_a_request_that_says_connection_close_is_closed_at_once() -> None:
    # The default request head timeout (10 s) must not be what closes it.
    async with Server([Echo()]).listening("127.0.0.1", 0) as server:
        with trio.fail_after(3):
            received = await _answer_until_closed(
                server.port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
    assert received.startswith(b"HTTP/1.1 404") and b"connection: close" in received.lower()


async def test_a_declared_body_that_never_comes_is_closed_by_the_head_timeout(
    server: Server,
) -> None:
    # Answered at once (no page at /), then its 100-byte body never arrives:
    # closed after the request head timeout (0.5 s here), not held forever.
    received = await _answer_until_closed(
        server.port, b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n"
    )
    assert received.startswith(b"HTTP/1.1 4")
