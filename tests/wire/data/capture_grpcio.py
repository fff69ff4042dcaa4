"""Record the bytes a real grpcio client and server exchange, for test_foreign_bytes.py.

Run from the repository root: ``.venv/bin/python tests/wire/data/capture_grpcio.py``.
It starts a grpcio server with generic handlers (identity serializers, no
generated code), puts a small TCP relay in front of it that records each
direction, and runs four calls on ONE connection, in this order (so their
stream ids are 1, 3, 5, 7):

1. ``/test.Echo/Unary``: unary with request metadata (including a ``-bin``
   key); the server answers with initial and trailing metadata, status OK.
2. ``/test.Echo/Stream``: server stream of 3 messages, trailing metadata and
   status FAILED_PRECONDITION with a message.
3. ``/test.Echo/Abort``: unary that aborts with NOT_FOUND and a message
   (a trailers-only response).
4. ``/test.Echo/Gzip``: unary with gzip compression in both directions.

The captures are written next to this script as ``grpcio_c2s.bin`` (client
to server) and ``grpcio_s2c.bin`` (server to client). They are checked in;
rerun only to refresh them (grpcio's exact bytes vary between versions, the
tests check meaning, not bytes).
"""

from __future__ import annotations

import pathlib
import socket
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc

HERE = pathlib.Path(__file__).resolve().parent
#: grpcio peers that both advertise SETTINGS 0xfe03 send "true binary" -bin
#: values (a NUL byte then raw bytes) instead of base64. puregrpc does not
#: advertise it, so a grpcio peer talking to puregrpc sends base64: switch
#: the extension off so the capture shows what puregrpc really receives.
_OPTIONS = (("grpc.http2.true_binary", 0),)


def _identity(data: bytes) -> bytes:
    return data


def _unary(request: bytes, context: Any) -> bytes:
    context.send_initial_metadata((("initial-key", "initial-value"),))
    context.set_trailing_metadata((("trailing-key", "trailing-value"), ("trace-bin", b"\x00\xff")))
    return b"echo:" + request


def _stream(request: bytes, context: Any) -> Iterator[bytes]:
    for index in range(3):
        yield b"part-%d:" % index + request
    context.set_trailing_metadata((("stream-end", "yes"),))
    context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
    context.set_details("stream stopped on purpose")


def _abort(request: bytes, context: Any) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    raise AssertionError("abort returns only by raising")


def _gzip(request: bytes, context: Any) -> bytes:
    context.set_compression(grpc.Compression.Gzip)
    return request.upper()


class Relay:
    """A one-connection TCP relay that records both directions."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.c2s = bytearray()
        self.s2c = bytearray()
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        downstream, _ = self.listener.accept()
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        for src, dst, log in ((downstream, upstream, self.c2s), (upstream, downstream, self.s2c)):
            thread = threading.Thread(target=self._copy, args=(src, dst, log), daemon=True)
            thread.start()
            self._threads.append(thread)

    @staticmethod
    def _copy(src: socket.socket, dst: socket.socket, log: bytearray) -> None:
        try:
            while data := src.recv(65536):
                log += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def main() -> None:
    handlers = grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(_unary, _identity, _identity),
            "Stream": grpc.unary_stream_rpc_method_handler(_stream, _identity, _identity),
            "Abort": grpc.unary_unary_rpc_method_handler(_abort, _identity, _identity),
            "Gzip": grpc.unary_unary_rpc_method_handler(_gzip, _identity, _identity),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=_OPTIONS)
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    relay = Relay(port)
    channel = grpc.insecure_channel(f"127.0.0.1:{relay.port}", options=_OPTIONS)
    try:
        unary = channel.unary_unary("/test.Echo/Unary", _identity, _identity)
        reply = unary(
            b"hello",
            metadata=(("client-key", "client-value"), ("client-bin", b"\x01\x02\x03")),
            timeout=30,
        )
        assert reply == b"echo:hello", reply
        stream = channel.unary_stream("/test.Echo/Stream", _identity, _identity)
        call = stream(b"s")
        parts = []
        try:
            for part in call:
                parts.append(part)
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert parts == [b"part-0:s", b"part-1:s", b"part-2:s"], parts
        abort = channel.unary_unary("/test.Echo/Abort", _identity, _identity)
        try:
            abort(b"x")
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.NOT_FOUND
        gzip_call = channel.unary_unary("/test.Echo/Gzip", _identity, _identity)
        reply = gzip_call(b"compress me " * 20, compression=grpc.Compression.Gzip)
        assert reply == b"COMPRESS ME " * 20
    finally:
        channel.close()
        server.stop(None)
    for thread in relay._threads:
        thread.join(timeout=5)
    (HERE / "grpcio_c2s.bin").write_bytes(bytes(relay.c2s))
    (HERE / "grpcio_s2c.bin").write_bytes(bytes(relay.s2c))
    print(f"client->server {len(relay.c2s)} bytes, server->client {len(relay.s2c)} bytes")


if __name__ == "__main__":
    main()
