"""The floor: the simplest gRPC-shaped server and client written straight on h2 + trio.

No puregrpc. One task per connection that reads 64 KiB at a time, feeds h2,
answers what became answerable and writes everything h2 queued in one
``send_all``. It speaks just enough gRPC to answer the benchmark's calls (no
deadlines, metadata, compression, cancellation or limits), so the gap between
puregrpc and this is what puregrpc's layers cost. It uses the same
H2Configuration as puregrpc (header validation off), so that the gap is not
about h2 settings.

    python raw_h2trio.py server PORT [--profile FILE]
    python raw_h2trio.py client HOST PORT [--workloads ...] [--scale F]
"""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as c
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import trio

RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
OK_TRAILERS = [(b"grpc-status", b"0")]


def config(client_side: bool) -> h2.config.H2Configuration:
    return h2.config.H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


def split_messages(buffer: bytearray) -> list[bytes]:
    """Pop every complete length-prefixed message off ``buffer``."""
    out = []
    while len(buffer) >= 5:
        length = int.from_bytes(buffer[1:5], "big")
        if len(buffer) < 5 + length:
            break
        out.append(bytes(buffer[5 : 5 + length]))
        del buffer[: 5 + length]
    return out


# ------------------------------------------------------------------ server


class _ServerStream:
    __slots__ = (
        "buffer",
        "current",
        "headers_sent",
        "method",
        "offset",
        "pending",
        "total",
        "trailers",
    )

    def __init__(self, method: str) -> None:
        self.method = method
        self.buffer = bytearray()
        self.total = 0
        #: Response messages waiting for window; each goes out framed as its own
        #: DATA frame(s), as a handler that sends message by message would.
        self.pending: deque[bytes] = deque()
        self.current = b""  # the framed message being sent
        self.offset = 0  # bytes of current already sent
        self.trailers = False  # send trailers once pending is out
        self.headers_sent = False


async def serve_connection(stream: trio.SocketStream) -> None:
    try:
        await _serve_connection(stream)
    except (trio.BrokenResourceError, trio.ClosedResourceError, h2.exceptions.ProtocolError):
        pass  # a peer that went away or misbehaved ends its connection, not the server
    finally:
        await trio.aclose_forcefully(stream)


async def _serve_connection(stream: trio.SocketStream) -> None:
    conn = h2.connection.H2Connection(config(False))
    conn.initiate_connection()
    await stream.send_all(conn.data_to_send())
    streams: dict[int, _ServerStream] = {}

    def respond(sid: int, state: _ServerStream, messages: list[bytes], end: bool) -> None:
        try:
            _respond(sid, state, messages, end)
        except h2.exceptions.StreamClosedError:
            # Reset by the peer in the same read (h2 has seen the RST_STREAM).
            streams.pop(sid, None)

    def _respond(sid: int, state: _ServerStream, messages: list[bytes], end: bool) -> None:
        if not state.headers_sent:
            conn.send_headers(sid, RESPONSE_HEADERS)
            state.headers_sent = True
        state.pending.extend(messages)
        state.trailers = state.trailers or end
        flush(sid, state)

    def flush(sid: int, state: _ServerStream) -> None:
        pending = state.pending
        while state.current or pending:
            if not state.current:
                state.current = c.frame(pending.popleft())
                state.offset = 0
            window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if window <= 0:
                return
            chunk = state.current[state.offset : state.offset + window]
            conn.send_data(sid, chunk)
            state.offset += len(chunk)
            if state.offset == len(state.current):
                state.current = b""
        if state.trailers:
            conn.send_headers(sid, OK_TRAILERS, end_stream=True)
            del streams[sid]

    while True:
        try:
            data = await stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        if not data:
            return
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                path = dict(event.headers)[b":path"].decode()
                streams[event.stream_id] = _ServerStream(path)
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                state = streams.get(event.stream_id)
                if state is None:
                    continue
                state.buffer += event.data
                if state.method == c.DUPLEX:
                    for message in split_messages(state.buffer):
                        respond(event.stream_id, state, c.responses_for(c.DUPLEX, message), False)
                elif state.method == c.STREAM_IN:
                    for message in split_messages(state.buffer):
                        state.total += c.input_payload_size(message)
            elif isinstance(event, h2.events.StreamEnded):
                sid = event.stream_id
                state = streams.get(sid)
                if state is None:
                    continue
                if state.method == c.STREAM_IN:
                    respond(sid, state, [c.input_response(state.total)], True)
                elif state.method == c.DUPLEX:
                    respond(sid, state, [], True)
                else:
                    (message,) = split_messages(state.buffer)
                    respond(sid, state, c.responses_for(state.method, message), True)
            elif isinstance(event, h2.events.WindowUpdated):
                targets = [event.stream_id] if event.stream_id else list(streams)
                for sid in targets:
                    if sid in streams:
                        try:
                            flush(sid, streams[sid])
                        except h2.exceptions.StreamClosedError:
                            streams.pop(sid, None)
            elif isinstance(event, h2.events.StreamReset):
                streams.pop(event.stream_id, None)
            elif isinstance(event, h2.events.ConnectionTerminated):
                await stream.send_all(conn.data_to_send())
                return
        out = conn.data_to_send()
        if out:
            try:
                await stream.send_all(out)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return


async def serve(port: int) -> None:
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    c.ready(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(serve_connection, listeners)


# ------------------------------------------------------------------ client


class _Call:
    __slots__ = ("buffer", "ended", "message", "messages", "status", "wakeup")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.messages: deque[bytes] = deque()
        self.ended = False
        self.status: bytes | None = None
        self.message: bytes | None = None
        self.wakeup = trio.Event()


class RawClient:
    """One HTTP/2 connection; a reader task and a batching writer task."""

    def __init__(self, stream: trio.SocketStream, authority: bytes) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(config(True))
        self.conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20},
        )
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(1 << 24)
        self.calls: dict[int, _Call] = {}
        self.dirty = trio.Event()
        self.window_open = trio.Event()
        self.authority = authority

    def wake_writer(self) -> None:
        self.dirty.set()

    async def writer(self) -> None:
        while True:
            await self.dirty.wait()
            self.dirty = trio.Event()
            data = self.conn.data_to_send()
            if data:
                await self.stream.send_all(data)

    async def reader(self) -> None:
        while True:
            data = await self.stream.receive_some(65536)
            if not data:
                return
            for event in self.conn.receive_data(data):
                call = self.calls.get(getattr(event, "stream_id", 0) or 0)
                if isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                    if call is not None:
                        call.buffer += event.data
                        call.messages.extend(split_messages(call.buffer))
                        call.wakeup.set()
                elif isinstance(event, h2.events.TrailersReceived):
                    if call is not None:
                        call.status = dict(event.headers).get(b"grpc-status")
                        call.message = dict(event.headers).get(b"grpc-message")
                elif isinstance(event, h2.events.ResponseReceived):
                    if call is not None and b"grpc-status" in dict(event.headers):
                        call.status = dict(event.headers)[b"grpc-status"]
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    if call is not None:
                        call.ended = True
                        call.wakeup.set()
                elif isinstance(event, h2.events.WindowUpdated):
                    self.window_open.set()
            self.wake_writer()

    def start(self, path: str) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            sid,
            [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", path.encode()),
                (b":authority", self.authority),
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
            ],
        )
        self.calls[sid] = _Call()
        return sid

    async def send(self, sid: int, message: bytes, end: bool = False) -> None:
        data = c.frame(message)
        while data:
            window = min(
                self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                self.window_open = trio.Event()
                self.wake_writer()
                await self.window_open.wait()
                continue
            chunk, data = data[:window], data[window:]
            self.conn.send_data(sid, chunk)
        if end:
            self.conn.end_stream(sid)
        self.wake_writer()

    def end(self, sid: int) -> None:
        self.conn.end_stream(sid)
        self.wake_writer()

    async def receive(self, sid: int) -> bytes | None:
        """The next message, or None at the end (which must be grpc-status 0)."""
        call = self.calls[sid]
        while not call.messages and not call.ended:
            call.wakeup = trio.Event()
            await call.wakeup.wait()
        if call.messages:
            return call.messages.popleft()
        del self.calls[sid]
        if call.status != b"0":
            raise RuntimeError(f"grpc-status {call.status!r}, grpc-message {call.message!r}")
        return None


async def client(host: str, port: int, workloads: list[str], scale: float, limit: float) -> None:
    stream = await trio.open_tcp_stream(host, port)
    raw = RawClient(stream, f"{host}:{port}".encode())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(raw.reader)
        nursery.start_soon(raw.writer)
        raw.wake_writer()

        async def unary_once() -> bytes | None:
            sid = raw.start(c.UNARY)
            await raw.send(sid, c.UNARY_REQUEST, end=True)
            response = await raw.receive(sid)
            c.check(await raw.receive(sid) is None, "unary: more than one response")
            return response

        async def unary(concurrency: int, calls: int) -> dict[str, float]:
            latencies: list[float] = []
            per_task = max(1, calls // concurrency)
            deadline = c.now() + limit

            async def worker() -> None:
                for _ in range(per_task):
                    started = c.now()
                    response = await unary_once()
                    latencies.append(c.now() - started)
                    c.check(response == c.UNARY_RESPONSE, "wrong unary response")
                    if started > deadline:
                        return

            started = c.now()
            async with trio.open_nursery() as workers:
                for _ in range(concurrency):
                    workers.start_soon(worker)
            return c.latency_result(len(latencies), c.now() - started, latencies)

        async def server_stream(request: bytes, expected: bytes, per_call: int, calls: int):
            messages = 0
            deadline = c.now() + limit
            started = c.now()
            for _ in range(calls):
                sid = raw.start(c.STREAM_OUT)
                await raw.send(sid, request, end=True)
                got = 0
                while (response := await raw.receive(sid)) is not None:
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
                sid = raw.start(c.STREAM_IN)
                for index in range(c.UPLOAD_COUNT):
                    await raw.send(sid, c.UPLOAD_MESSAGE, end=index == c.UPLOAD_COUNT - 1)
                response = await raw.receive(sid)
                c.check(response == c.UPLOAD_RESPONSE, "wrong upload response")
                c.check(await raw.receive(sid) is None, "upload: more than one response")
                messages += c.UPLOAD_COUNT
                if c.now() > deadline:
                    break
            return c.stream_result(messages, c.LARGE, c.now() - started)

        async def pingpong(count: int) -> dict[str, float]:
            latencies: list[float] = []
            deadline = c.now() + limit
            started = c.now()
            sid = raw.start(c.DUPLEX)
            for _ in range(count):
                sent = c.now()
                await raw.send(sid, c.PING_REQUEST)
                response = await raw.receive(sid)
                latencies.append(c.now() - sent)
                c.check(response == c.SMALL_RESPONSE, "wrong ping-pong response")
                if sent > deadline:
                    break
            raw.end(sid)
            c.check(await raw.receive(sid) is None, "stream did not end")
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
        nursery.cancel_scope.cancel()
    await stream.aclose()


def main() -> None:
    if sys.argv[1] == "server":
        c.run_maybe_profiled(lambda: trio.run(serve, int(sys.argv[-1])), sys.argv)
    else:
        host, port, workloads, scale, limit = c.client_args(sys.argv[2:])
        trio.run(client, host, port, workloads, scale, limit)


if __name__ == "__main__":
    main()
