"""Minimal gRPC-Web clients for the tests: HTTP/1.1 on h11, HTTP/2 on h2, over real sockets."""

from __future__ import annotations

from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h11
import trio

from puregrpc.web import WebResponseDecoder, frame_request
from puregrpc.wire import Metadata, Status, StatusCode
from puregrpc.wire.codecs import decode_grpc_message

ECHO = "/puregrpc.testing.Echo"
BINARY = "application/grpc-web+proto"
TEXT = "application/grpc-web-text+proto"


@dataclass
class WebResponse:
    """What a gRPC-Web call got back."""

    http_status: int
    headers: dict[str, str]
    messages: list[bytes] = field(default_factory=list)
    status: Status | None = None
    trailing: Metadata | None = None
    #: Messages the client had seen when each DATA chunk arrived (streaming checks).
    body: bytes = b""

    def header_status(self) -> Status | None:
        """The status of a trailers-only answer (in the headers), if any."""
        code = self.headers.get("grpc-status")
        if code is None:
            return None
        return Status(
            code=StatusCode(int(code)),
            details=decode_grpc_message(self.headers.get("grpc-message", "")),
        )

    @property
    def final(self) -> Status:
        """The call's status, from the body's trailer frame or a trailers-only head."""
        status = self.status if self.status is not None else self.header_status()
        assert status is not None, f"no status in {self.headers} / {self.body[:80]!r}"
        return status


def _finish(response: WebResponse, text: bool) -> WebResponse:
    if not response.body or not response.headers.get("content-type", "").startswith(
        "application/grpc-web"
    ):
        return response  # no body, or a plain HTTP answer's text
    decoder = WebResponseDecoder(text=text)
    for frame in decoder.feed(response.body):
        if frame.trailers is not None:
            response.status, response.trailing = frame.trailers
        else:
            response.messages.append(frame.data)
    decoder.close()
    return response


class Http1Client:
    """One keep-alive HTTP/1.1 connection speaking h11."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    @classmethod
    async def connect(cls, port: int) -> Http1Client:
        """Open a connection to 127.0.0.1:``port``."""
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def aclose(self) -> None:
        """Close the socket."""
        await self.stream.aclose()

    async def send(self, event: h11.Event) -> None:
        """Send one h11 event."""
        data = self.conn.send(event)
        if data:
            await self.stream.send_all(data)

    async def next_event(self) -> h11.Event:
        """The next event from the server (reading as needed)."""
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await self.stream.receive_some(65536))

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | list[bytes] = b"",
        headers: list[tuple[str, str]] | None = None,
        chunked: bool = False,
        on_data: trio.Event | None = None,
    ) -> tuple[h11.Response, bytes]:
        """One request; returns the response head and its whole body.

        ``body`` as a list is sent piece by piece (each piece one write);
        ``on_data`` is set when the first body chunk arrives.
        """
        pieces = body if isinstance(body, list) else [body]
        fields = [("host", "127.0.0.1"), *(headers or [])]
        total = sum(len(p) for p in pieces)
        if chunked:
            fields.append(("transfer-encoding", "chunked"))
        else:
            fields.append(("content-length", str(total)))
        await self.send(h11.Request(method=method, target=path, headers=fields))
        for piece in pieces:
            if piece:
                await self.send(h11.Data(data=piece))
        await self.send(h11.EndOfMessage())
        head = await self.next_event()
        assert isinstance(head, h11.Response), head
        data = b""
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                data += bytes(event.data)
                if on_data is not None:
                    on_data.set()
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected {event!r}")
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return head, data

    async def call(
        self,
        method: str,
        request: bytes,
        *,
        text: bool = False,
        metadata: list[tuple[str, str]] | None = None,
        split_at: int | None = None,
        on_data: trio.Event | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> WebResponse:
        """A gRPC-Web call of ``ECHO/method`` (``body``: these bytes, not ``request`` framed)."""
        if body is None:
            body = frame_request(request, text=text)
        pieces = [body] if split_at is None else [body[:split_at], body[split_at:]]
        headers = [
            ("content-type", content_type or (TEXT if text else BINARY)),
            ("x-grpc-web", "1"),
            ("x-user-agent", "grpc-web-test"),
            *(metadata or []),
        ]
        head, data = await self.request(
            "POST", f"{ECHO}/{method}", body=pieces, headers=headers, on_data=on_data
        )
        response = WebResponse(
            http_status=head.status_code,
            headers={bytes(k).decode(): bytes(v).decode() for k, v in head.headers},
            body=data,
        )
        return _finish(response, text)


class H2Client:
    """One HTTP/2 connection speaking h2 directly."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        #: The ``:scheme`` of requests (``https`` over TLS).
        self.scheme = "https" if isinstance(stream, trio.SSLStream) else "http"

    @classmethod
    async def connect(cls, port: int, *, stream: trio.abc.Stream | None = None) -> H2Client:
        """Open a connection (or use ``stream``) and send the preface."""
        client = cls(
            stream if stream is not None else await trio.open_tcp_stream("127.0.0.1", port)
        )
        client.conn.initiate_connection()
        await client.flush()
        return client

    async def aclose(self) -> None:
        """Close the socket."""
        await self.stream.aclose()

    async def flush(self) -> None:
        """Write what h2 queued."""
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def exchange(
        self,
        headers: list[tuple[str, str]],
        body: list[bytes],
        *,
        on_data: trio.Event | None = None,
    ) -> tuple[dict[str, str], bytes, bool]:
        """One request; returns the response headers, body, and whether HTTP trailers came."""
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, headers, end_stream=not body)
        for i, piece in enumerate(body):
            self.conn.send_data(stream_id, piece, end_stream=i == len(body) - 1)
            await self.flush()
        await self.flush()
        response: dict[str, str] = {}
        data = b""
        trailers = False
        while True:
            chunk = await self.stream.receive_some(65536)
            assert chunk, "the server closed the connection"
            for event in self.conn.receive_data(chunk):
                if getattr(event, "stream_id", None) != stream_id:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    response = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                    if on_data is not None:
                        on_data.set()
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = True
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    await self.flush()
                    return response, data, trailers
            await self.flush()

    async def call(
        self,
        method: str,
        request: bytes,
        *,
        text: bool = False,
        metadata: list[tuple[str, str]] | None = None,
        split_at: int | None = None,
        on_data: trio.Event | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> WebResponse:
        """A gRPC-Web call of ``ECHO/method`` (``body``: these bytes, not ``request`` framed)."""
        if body is None:
            body = frame_request(request, text=text)
        pieces = [body] if split_at is None else [body[:split_at], body[split_at:]]
        headers = [
            (":method", "POST"),
            (":scheme", self.scheme),
            (":path", f"{ECHO}/{method}"),
            (":authority", "127.0.0.1"),
            ("content-type", content_type or (TEXT if text else BINARY)),
            ("x-grpc-web", "1"),
            ("x-user-agent", "grpc-web-test"),
            *(metadata or []),
        ]
        head, data, trailers = await self.exchange(headers, pieces, on_data=on_data)
        assert not trailers, "gRPC-Web responses carry no HTTP trailers"
        response = WebResponse(http_status=int(head[":status"]), headers=head, body=data)
        return _finish(response, text)
