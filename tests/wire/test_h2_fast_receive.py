"""puregrpc's H2Connection reads the common frames itself: the same events and states as h2's.

A client's bytes - HEADERS opening streams (in order, out of order, on even
ids, padded, with priority, split by CONTINUATION), DATA of every size (over
the frame size, over the window, padded, on closed or unknown streams),
RST_STREAM, WINDOW_UPDATE, PING, SETTINGS and junk - are cut at random
points and fed to two servers, ours and plain h2, while the servers end or
reset streams in between. After every piece both must report the same
events (or raise the same error), queue the same bytes, and hold the same
stream states, windows and stream ids.
"""

from __future__ import annotations

import struct
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
from hypothesis import example, given, settings
from hypothesis import strategies as st

from puregrpc.wire import H2Connection

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/pkg.Service/Method"),
    (b":authority", b"localhost"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]
TRAILERS = [(b"grpc-status", b"0")]
#: The streams a client under test has opened (5 already half-closed).
CLIENT_STREAMS = (1, 3, 5)


def _config(client_side: bool = False) -> h2.config.H2Configuration:
    return h2.config.H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


def frame(kind: int, flags: int, stream_id: int, body: bytes) -> bytes:
    """One raw frame: whatever the fields say, valid or not."""
    size = len(body)
    return struct.pack(">HBBBL", size >> 8, size & 0xFF, kind, flags, stream_id) + body


def padded(body: bytes, pad: int) -> bytes:
    return bytes([pad]) + body + bytes(pad)


# Mostly the traffic of real calls - streams opened in order, DATA and
# resets on them - and now and then something h2 must refuse or handle
# specially: a raw stream id (0, even, reused, unknown), a frame over the
# size limit, padding, priority, CONTINUATION, junk.
_shapes = st.sampled_from(
    ["plain"] * 6 + ["padded", "priority", "continued", "interrupted", "trailers"]
)
_refs = st.integers(0, 5)  # which opened stream (modulo how many)
_raw_ids = st.sampled_from([0, 1, 2, 3, 5, 99])
_rare = st.sampled_from([False, False, False, True])
_sizes = st.sampled_from([0, 1, 5, 70, 70, 70, 1_000, 16_000, 16_384])
_client_frames = st.one_of(
    st.tuples(st.just("open"), st.booleans(), _shapes),
    st.tuples(st.just("open"), st.booleans(), st.just("plain")),
    st.tuples(st.just("headers"), _refs, st.just(True), st.sampled_from(["trailers", "plain"])),
    st.tuples(st.just("headers"), _refs, st.booleans(), _shapes),
    st.tuples(st.just("headers_raw"), _raw_ids, st.booleans(), _shapes),
    st.tuples(st.just("data"), _refs, _sizes, st.booleans(), st.booleans()),
    st.tuples(st.just("data"), _refs, _sizes, st.booleans(), st.just(False)),
    st.tuples(st.just("data"), _refs, st.just(70), st.just(True), st.just(False)),
    st.tuples(st.just("data_raw"), _raw_ids, _sizes, st.booleans(), st.just(False)),
    st.tuples(st.just("data"), _refs, st.sampled_from([16_385, 40_000]), st.booleans(), _rare),
    st.tuples(st.just("rst"), _refs),
    st.tuples(st.just("window"), st.integers(-1, 5), st.integers(1, 70_000)),
    st.tuples(st.just("window"), st.integers(-1, 5), st.integers(1, 70_000)),
    # Refused (0, the reserved bit), overflowing, or the wrong length.
    st.tuples(st.just("window"), st.integers(-1, 5), st.sampled_from([0, 2**31, 2**31 - 1])),
    st.tuples(st.just("window_long"), st.integers(-1, 5)),
    st.tuples(st.just("ping"), st.just(0)),
    st.tuples(st.just("settings"), st.sampled_from([0, 100, 65_535, 1 << 20])),
    st.tuples(st.just("junk"), st.binary(min_size=1, max_size=12)),
)
_server_actions = st.tuples(st.sampled_from(["end", "end", "reset"]), _refs)
_steps = st.lists(
    st.tuples(
        st.lists(_client_frames, min_size=1, max_size=8),
        st.lists(st.integers(1, 200), max_size=4),  # where the bytes are cut
        st.lists(_server_actions, max_size=2),
    ),
    min_size=1,
    max_size=10,
)


class _Client:
    """Encodes what a client would send, header blocks through its own HPACK state."""

    def __init__(self) -> None:
        self.encoder = hpack.Encoder()
        #: Stream ids opened so far, and the next one.
        self.opened: list[int] = []
        self.next_id = 1

    def stream(self, ref: int) -> int:
        """The ``ref``-th opened stream (modulo), or stream 1 before any."""
        return self.opened[ref % len(self.opened)] if self.opened else 1

    def build(self, spec: tuple[Any, ...]) -> bytes:
        kind = spec[0]
        if kind == "open":
            stream_id = self.next_id
            self.next_id += 2
            self.opened.append(stream_id)
            return self.headers(stream_id, spec[1], spec[2])
        if kind == "headers":
            return self.headers(self.stream(spec[1]), spec[2], spec[3])
        if kind == "headers_raw":
            return self.headers(spec[1], spec[2], spec[3])
        if kind in ("data", "data_raw"):
            _, ref, size, end_stream, pad = spec
            stream_id = self.stream(ref) if kind == "data" else ref
            body = (b"\x00\x00\x00\x00\x05hello" + bytes(max(0, size - 10)))[:size]
            flags = 0x1 if end_stream else 0
            if pad:
                return frame(0x0, flags | 0x8, stream_id, padded(body, 2))
            return frame(0x0, flags, stream_id, body)
        if kind == "rst":
            return frame(0x3, 0, self.stream(spec[1]), struct.pack(">L", 8))
        if kind == "window":
            stream_id = 0 if spec[1] < 0 else self.stream(spec[1])
            return frame(0x8, 0, stream_id, struct.pack(">L", spec[2]))
        if kind == "window_long":
            stream_id = 0 if spec[1] < 0 else self.stream(spec[1])
            return frame(0x8, 0, stream_id, struct.pack(">LB", 1, 0))
        if kind == "ping":
            return frame(0x6, 0, 0, bytes(8))
        if kind == "settings":
            return frame(0x4, 0, 0, struct.pack(">HL", 0x4, spec[1]))
        return bytes(spec[1])

    def headers(self, stream_id: int, end_stream: bool, shape: str) -> bytes:
        block = self.encoder.encode(TRAILERS if shape == "trailers" else REQUEST)
        flags = 0x1 if end_stream or shape == "trailers" else 0
        if shape == "padded":
            return frame(0x1, flags | 0x4 | 0x8, stream_id, padded(block, 3))
        if shape == "priority":
            return frame(0x1, flags | 0x4 | 0x20, stream_id, b"\x00\x00\x00\x00\x10" + block)
        if shape == "interrupted":
            # A DATA frame inside the header block: a connection error.
            half = len(block) // 2
            return (
                frame(0x1, flags, stream_id, block[:half])
                + frame(0x0, 0, stream_id, b"x")
                + frame(0x9, 0x4, stream_id, block[half:])
            )
        if shape == "continued":
            half = len(block) // 2
            return frame(0x1, flags, stream_id, block[:half]) + frame(
                0x9, 0x4, stream_id, block[half:]
            )
        return frame(0x1, flags | 0x4, stream_id, block)


def _normal(value: Any) -> Any:
    """An event as comparable data: its type and fields, nested events included."""
    if isinstance(value, h2.events.Event):
        return (type(value).__name__, {k: _normal(v) for k, v in sorted(vars(value).items())})
    if isinstance(value, list | tuple):
        return [_normal(item) for item in value]
    if isinstance(value, dict):
        return {repr(k): _normal(v) for k, v in value.items()}
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    return repr(value)


class _Peers:
    """Ours and h2's (both servers, or both clients), hearing the same bytes and acting alike."""

    def __init__(self, max_streams: int | None = None, *, client_side: bool = False) -> None:
        self.client_side = client_side
        self.ours = H2Connection(_config(client_side))
        self.theirs = h2.connection.H2Connection(_config(client_side))
        self.dead = False
        for peer in self.both:
            if max_streams is not None:
                peer.local_settings = h2.settings.Settings(
                    client=client_side,
                    initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams},
                )
            peer.initiate_connection()
            if client_side:
                for stream_id in CLIENT_STREAMS:
                    peer.send_headers(stream_id, list(REQUEST), end_stream=stream_id == 5)
        assert self.ours.data_to_send() == self.theirs.data_to_send()

    @property
    def both(self) -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
        return self.ours, self.theirs

    def feed(self, data: bytes) -> None:
        outcomes = []
        for server in self.both:
            try:
                outcomes.append(("events", _normal(server.receive_data(data))))
            except h2.exceptions.ProtocolError as exc:
                outcomes.append(("error", type(exc).__name__, exc.error_code))
        assert outcomes[0] == outcomes[1]
        if outcomes[0][0] == "error":
            self.dead = True
        self.compare()

    def act(self, action: str, stream_id: int) -> None:
        outcomes = []
        for server in self.both:
            try:
                if action == "end" and self.client_side:
                    server.end_stream(stream_id)
                elif action == "end":
                    server.send_headers(stream_id, list(TRAILERS), end_stream=True)
                else:
                    server.reset_stream(stream_id)
                outcomes.append(None)
            except (h2.exceptions.H2Error, KeyError, ValueError) as exc:
                outcomes.append(type(exc).__name__)
        assert outcomes[0] == outcomes[1]
        self.compare()

    def compare(self) -> None:
        ours, theirs = self.both
        assert ours.data_to_send() == theirs.data_to_send()
        assert ours.state_machine.state == theirs.state_machine.state
        assert ours.inbound_flow_control_window == theirs.inbound_flow_control_window
        assert ours.highest_inbound_stream_id == theirs.highest_inbound_stream_id
        assert ours.open_inbound_streams == theirs.open_inbound_streams
        assert ours.streams.keys() == theirs.streams.keys()
        for stream_id, stream in ours.streams.items():
            other = theirs.streams[stream_id]
            assert stream.state_machine.state == other.state_machine.state, stream_id
            assert stream.inbound_flow_control_window == other.inbound_flow_control_window
            assert stream.outbound_flow_control_window == other.outbound_flow_control_window


def _play(steps: list[tuple[Any, ...]], sender: _Client, peers: _Peers) -> None:
    """Each step: the frames built, fed in pieces cut where it says, then the peers' actions."""
    for frames, cuts, actions in steps:
        data = b"".join(sender.build(spec) for spec in frames)
        start = 0
        for cut in [*cuts, len(data)]:
            piece = data[start : start + cut] if cut < len(data) else data[start:]
            if piece:
                peers.feed(piece)
            start += len(piece)
            if peers.dead or start >= len(data):
                break
        if peers.dead:
            return
        for action, ref in actions:
            peers.act(action, sender.stream(ref))


@settings(max_examples=300, deadline=None)
@given(steps=_steps, preface_cut=st.integers(0, 30), max_streams=st.sampled_from([None, None, 2]))
@example(
    steps=[([("open", False, "plain"), ("data", 0, 70, True, False)], [], [("end", 0)])],
    preface_cut=0,
    max_streams=None,
)
@example(
    steps=[([("headers_raw", 3, False, "plain"), ("headers_raw", 1, False, "plain")], [20], [])],
    preface_cut=5,
    max_streams=None,
)
@example(
    steps=[
        ([("open", False, "plain"), ("open", False, "plain"), ("open", False, "plain")], [], [])
    ],
    preface_cut=0,
    max_streams=2,
)
def test_fast_receive_matches_h2(
    steps: list[tuple[Any, ...]], preface_cut: int, max_streams: int | None
) -> None:
    servers = _Peers(max_streams)
    client = _Client()
    # The preface and the client's SETTINGS, cut anywhere: the fast path
    # waits until h2 has taken the preface.
    opening = PREFACE + frame(0x4, 0, 0, b"")
    servers.feed(opening[:preface_cut])
    servers.feed(opening[preface_cut:])
    # Calls begin with a request: a first frame of anything else is a
    # connection error that would end most examples before they start.
    steps[0] = ([("open", False, "plain"), *steps[0][0]], *steps[0][1:])
    _play(steps, client, servers)


def test_a_request_in_one_read_is_read_without_the_frame_buffer() -> None:
    # HEADERS and DATA of a unary request, whole: h2's buffer stays empty,
    # and the events are h2's: a request, its data, its end.
    servers = _Peers()
    client = _Client()
    servers.feed(PREFACE + frame(0x4, 0, 0, b""))
    request = client.build(("open", False, "plain")) + client.build(("data", 0, 10, True, False))
    events = servers.ours.receive_data(request)
    assert [type(event).__name__ for event in events] == [
        "RequestReceived",
        "DataReceived",
        "StreamEnded",
    ]
    assert isinstance(events[1], h2.events.DataReceived)
    assert events[1].data == b"\x00\x00\x00\x00\x05hello"
    assert servers.ours.incoming_buffer._data == b""


def test_frames_cut_by_reads_stay_off_the_frame_buffer() -> None:
    # A bulk upload: DATA frames that reads cut anywhere (inside a frame
    # header, inside a body). The cut frame waits on our side and is
    # completed by the next read, so h2's buffer stays empty and the frames
    # after it take the direct path; the events are plain h2's, cut for cut.
    client = _Client()
    opening = PREFACE + frame(0x4, 0, 0, b"")
    request = client.build(("open", False, "plain"))
    request += b"".join(client.build(("data", 0, 700, False, False)) for _ in range(3))
    for cut in range(1, 60):
        servers = _Peers()
        servers.feed(opening)
        pieces = [request[start : start + cut] for start in range(0, len(request), cut)]
        for piece in pieces:
            servers.feed(piece)
            assert servers.ours.incoming_buffer._data == b""


@settings(max_examples=200, deadline=None)
@given(steps=_steps)
@example(
    steps=[
        (
            [("headers", 0, False, "plain"), ("data", 0, 70, False, False)],
            [],
            [],
        ),
        ([("headers", 0, True, "trailers")], [3], []),
    ]
)
@example(steps=[([("headers", 0, True, "plain"), ("data", 0, 5, False, False)], [], [])])
def test_fast_receive_matches_h2_on_the_client_side(steps: list[tuple[Any, ...]]) -> None:
    # The client has opened three calls; the bytes are a server's answers
    # (headers, DATA, trailers, resets) and whatever else the steps hold.
    clients = _Peers(client_side=True)
    server = _Client()
    server.opened = list(CLIENT_STREAMS)
    server.next_id = 2  # "open" here is a server opening a stream: refused
    clients.feed(frame(0x4, 0, 0, b""))
    _play(steps, server, clients)
