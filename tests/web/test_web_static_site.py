"""Static pages beside gRPC-Web on the same port: GET and HEAD over HTTP/1.1 and HTTP/2."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from test_web_calls import Echo
from web_clients import H2Client, Http1Client

from puregrpc.client import Channel
from puregrpc.server import Server, ServerOptions
from puregrpc.testing.protos import echo_pb2
from puregrpc.testing.protos.echo_puregrpc import EchoStub
from puregrpc.web import StaticFile, StaticSite, WebOptions, content_type_of
from puregrpc.wire import ListTracer

INDEX = b"<!doctype html><title>console</title><script src=app.js></script>"
#: Larger than HTTP/2's default 64 KiB stream window: sent as the client grants more.
BUNDLE = bytes(range(256)) * 1200


def _site() -> StaticSite:
    return StaticSite(
        {
            "/index.html": StaticFile(body=INDEX, content_type=content_type_of("index.html")),
            "/app.js": StaticFile(body=BUNDLE, content_type=content_type_of("app.js")),
        }
    )


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    options = ServerOptions(grpc_web=WebOptions(site=_site()))
    async with Server([Echo()], options=options).listening("127.0.0.1", 0) as served:
        yield served


# ------------------------------------------------------------- the table


def test_the_site_answers_paths_with_validators() -> None:
    site = _site()
    index = site.answer(b"/?token=x#top")
    fields = dict(index.fields)
    assert index.status == 200 and index.body == INDEX
    assert fields[b"content-type"] == b"text/html; charset=utf-8"
    assert fields[b"content-length"] == str(len(INDEX)).encode()
    assert fields[b"etag"] == b'"' + hashlib.sha256(INDEX).hexdigest()[:32].encode() + b'"'
    assert fields[b"x-content-type-options"] == b"nosniff"
    assert dict(site.answer(b"/app.js").fields)[b"content-type"].startswith(b"text/javascript")
    revalidated = site.answer(b"/index.html", b'"other", W/' + fields[b"etag"])
    assert (revalidated.status, revalidated.body) == (304, b"")
    assert site.answer(b"/index.html", b'"other"').status == 200
    missing = site.answer(b"/../etc/passwd")
    assert missing.status == 404 and b"not found" in missing.body
    assert site.paths == ["/app.js", "/index.html"]


def test_a_site_from_a_directory(tmp_path: Path) -> None:
    (tmp_path / "css").mkdir()
    (tmp_path / "index.html").write_bytes(INDEX)
    (tmp_path / "css" / "style.css").write_text("body { margin: 0 }")
    (tmp_path / "data.bin").write_bytes(b"\0")
    site = StaticSite.from_directory(tmp_path)
    assert site.paths == ["/css/style.css", "/data.bin", "/index.html"]
    css = dict(site.answer(b"/css/style.css").fields)
    assert css[b"content-type"] == b"text/css; charset=utf-8"
    assert dict(site.answer(b"/data.bin").fields)[b"content-type"] == b"application/octet-stream"
    with pytest.raises(ValueError, match="no files to serve"):
        StaticSite.from_directory(tmp_path / "css" / "none")
    with pytest.raises(ValueError, match="starts with '/'"):
        StaticSite({"index.html": StaticFile(body=b"", content_type="text/html")})


# -------------------------------------------------------------- HTTP/1.1


async def test_pages_over_http1(server: Server) -> None:
    client = await Http1Client.connect(server.port)
    try:
        with trio.fail_after(10):
            head, body = await client.request("GET", "/")
            fields = {bytes(k): bytes(v) for k, v in head.headers}
            assert head.status_code == 200 and body == INDEX
            assert fields[b"content-length"] == str(len(INDEX)).encode()
            head, body = await client.request("GET", "/app.js")
            assert head.status_code == 200 and body == BUNDLE
            head, body = await client.request("HEAD", "/app.js")
            heads = {bytes(k): bytes(v) for k, v in head.headers}
            assert head.status_code == 200 and body == b""
            assert heads[b"content-length"] == str(len(BUNDLE)).encode()
            etag = fields[b"etag"].decode()
            head, body = await client.request("GET", "/", headers=[("if-none-match", etag)])
            assert head.status_code == 304 and body == b""
            head, body = await client.request("GET", "/missing.js")
            assert head.status_code == 404 and b"no page at that path" in body
            head, body = await client.request("DELETE", "/")
            allow = {bytes(k): bytes(v) for k, v in head.headers}[b"allow"]
            assert head.status_code == 405 and allow == b"GET, HEAD, POST, OPTIONS"
            # The same keep-alive connection still carries gRPC-Web calls.
            reply = await client.call(
                "Unary", echo_pb2.EchoRequest(message="hi").SerializeToString()
            )
        assert echo_pb2.EchoReply.FromString(reply.messages[0]).message == "hi"
    finally:
        await client.aclose()


async def test_without_a_site_get_is_404() -> None:
    async with Server([Echo()]).listening("127.0.0.1", 0) as server:
        client = await Http1Client.connect(server.port)
        try:
            with trio.fail_after(10):
                head, body = await client.request("GET", "/")
        finally:
            await client.aclose()
    assert head.status_code == 404 and b"serves gRPC" in body


# ---------------------------------------------------------------- HTTP/2


def _get(method: str, path: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [
        (":method", method),
        (":scheme", "http"),
        (":path", path),
        (":authority", "127.0.0.1"),
        *extra,
    ]


async def test_pages_over_h2_respect_flow_control(server: Server) -> None:
    client = await H2Client.connect(server.port)
    try:
        with trio.fail_after(10):
            head, body, _ = await client.exchange(_get("GET", "/app.js"), [])
            assert head[":status"] == "200" and body == BUNDLE
            assert head["content-type"] == "text/javascript; charset=utf-8"
            assert head["content-length"] == str(len(BUNDLE))
            head, body, _ = await client.exchange(_get("GET", "/"), [])
            assert head[":status"] == "200" and body == INDEX
            head, body, _ = await client.exchange(_get("HEAD", "/app.js"), [])
            assert head[":status"] == "200" and body == b""
            assert head["content-length"] == str(len(BUNDLE))
            etag = ("if-none-match", head["etag"])
            head, body, _ = await client.exchange(_get("GET", "/app.js", etag), [])
            assert head[":status"] == "304" and body == b""
            head, body, _ = await client.exchange(_get("GET", "/nothing"), [])
            assert head[":status"] == "404" and b"no page" in body
            head, body, _ = await client.exchange(_get("PUT", "/"), [])
            assert head[":status"] == "405" and head["allow"] == "GET, HEAD, POST, OPTIONS"
            head, _, _ = await client.exchange(_get("GET", "/"), [b"a body"])
            assert head[":status"] == "400"
            reply = await client.call(
                "Unary", echo_pb2.EchoRequest(message="h2").SerializeToString()
            )
        assert echo_pb2.EchoReply.FromString(reply.messages[0]).message == "h2"
    finally:
        await client.aclose()


async def test_a_page_reset_midway_leaves_the_connection_serving(server: Server) -> None:
    client = await H2Client.connect(server.port)
    try:
        with trio.fail_after(10):
            stream_id = client.conn.get_next_available_stream_id()
            client.conn.send_headers(stream_id, _get("GET", "/app.js"), end_stream=True)
            await client.flush()
            # The first window's worth arrives; the rest waits for a grant
            # that never comes: the client resets the stream instead.
            received = 0
            while received < 65535 - 1024:
                for event in client.conn.receive_data(await client.stream.receive_some(65536)):
                    received += len(getattr(event, "data", b"") or b"")
            client.conn.reset_stream(stream_id)
            # What arrived is given back to the connection's window (not the stream's).
            client.conn.increment_flow_control_window(received)
            await client.flush()
            head, body, _ = await client.exchange(_get("GET", "/"), [])
        assert head[":status"] == "200" and body == INDEX
    finally:
        await client.aclose()


async def test_native_grpc_beside_pages(server: Server) -> None:
    async with Channel(f"127.0.0.1:{server.port}") as channel:
        with trio.fail_after(10):
            reply = await EchoStub(channel).Unary(echo_pb2.EchoRequest(message="native"))
    assert reply.message == "native"


async def test_the_tracer_shows_pages() -> None:
    tracer = ListTracer()
    options = ServerOptions(grpc_web=WebOptions(site=_site()), tracer=tracer)
    async with Server([Echo()], options=options).listening("127.0.0.1", 0) as served:
        with trio.fail_after(10):
            h2client = await H2Client.connect(served.port)
            http1 = await Http1Client.connect(served.port)
            try:
                await h2client.exchange(_get("GET", "/"), [])
                await http1.request("GET", "/missing")
            finally:
                await h2client.aclose()
                await http1.aclose()
    pages = [r.fields for r in tracer.records if r.kind == "web_page"]
    assert pages == [{"path": "/", "status": 200}]
    answers = [r.fields for r in tracer.records if r.kind == "http1_response"]
    assert answers == [{"status": 404}]
