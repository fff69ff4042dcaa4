"""A stateful fuzzer for the sans-IO core: a client and a server core, driven at random.

Hypothesis interleaves call starts, messages, half-closes, cancels and
resets on both sides, consumption (or not) of what arrived, PINGs, GOAWAYs
and graceful shutdowns, and delivers the bytes between the two cores in
random cuts. Now and then it injects a frame of its own (PING, SETTINGS,
WINDOW_UPDATE, RST_STREAM, DATA, an unknown type, or raw random bytes) at a
frame boundary, or loses the connection. Invariants, checked after every step:

* nothing but puregrpc's :class:`~puregrpc.wire.ProtocolError` family ever
  escapes a core's API, and ``receive_data`` / ``data_to_send`` raise nothing;
* no flow-control window is negative, except a stream's send window that
  the peer's SETTINGS shrank under what was in flight (RFC 9113 §6.9.2), and
  no byte count is;
* each call ends at most once, a call that ended is not open, and nothing
  arrives for it afterwards; a connection that failed or was lost has no
  call open;
* no call is stuck: once every byte has been delivered both ways (and while
  nothing foreign was injected and no error GOAWAY went out), a call is open
  on the client exactly when it is open on the server.

The default profile is short (well under ten seconds). For a long run::

    HYPOTHESIS_PROFILE=long .venv/bin/pytest tests/wire/test_core_fuzz_stateful.py

(``HYPOTHESIS_PROFILE=long`` raises the example count and the steps per
example; nothing else reads it).
"""

from __future__ import annotations

import os

import h2.errors
from hyperframe.frame import (
    DataFrame,
    PingFrame,
    SettingsFrame,
)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from puregrpc.wire import (
    CallEnded,
    CallStarted,
    ClientConnection,
    ConnectionClosed,
    ConnectionConfig,
    Event,
    MessageReceived,
    Metadata,
    ProtocolError,
    ServerConnection,
    Status,
    StatusCode,
)

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
PATH = "/fuzz.Core/Call"
CLIENT_CONFIG = ConnectionConfig(stream_window=2048, max_receive_message_size=3000)
SERVER_CONFIG = ConnectionConfig(stream_window=1024, max_receive_message_size=2500)
#: RFC 9113 §6.9.2: every window starts at this before SETTINGS change it.
RFC_INITIAL_WINDOW = 65_535
#: Settle loops never run longer than this many round trips.
MAX_ROUNDS = 200

picks = st.integers(min_value=0, max_value=1 << 16)
sizes = st.sampled_from([0, 1, 5, 100, 1000, 2047, 2600, 4000])
cuts = st.integers(min_value=1, max_value=70_000)
codes = st.sampled_from([StatusCode.OK, StatusCode.INTERNAL, StatusCode.NOT_FOUND])
reset_codes = st.sampled_from(
    [
        h2.errors.ErrorCodes.CANCEL,
        h2.errors.ErrorCodes.NO_ERROR,
        h2.errors.ErrorCodes.INTERNAL_ERROR,
    ]
)


def _frame(kind: str, stream_id: int, value: int, payload: bytes) -> bytes:
    """One foreign frame, well formed as a frame (what it means is another matter)."""
    if kind == "ping":
        ping = PingFrame(0)
        ping.opaque_data = payload[:8].ljust(8, b"\0")
        return bytes(ping.serialize())
    if kind == "settings":
        settings_frame = SettingsFrame(0)
        settings_frame.settings = {SettingsFrame.INITIAL_WINDOW_SIZE: value}
        return bytes(settings_frame.serialize())
    if kind == "window_update":
        return _raw(0x8, stream_id, (value & 0x7FFFFFFF).to_bytes(4, "big"))
    if kind == "rst_stream":  # on stream 0 too: a connection error
        return _raw(0x3, stream_id, (value % 16).to_bytes(4, "big"))
    if kind == "data":
        return bytes(DataFrame(stream_id or 1, data=payload).serialize())
    # An unknown frame type: must be ignored (RFC 9113 §4.1).
    return _raw(0xFA, stream_id, payload)


def _raw(frame_type: int, stream_id: int, payload: bytes) -> bytes:
    header = len(payload).to_bytes(3, "big") + bytes([frame_type, 0])
    return header + stream_id.to_bytes(4, "big") + payload


class Side:
    """One core and what the model knows of it."""

    def __init__(self, core: ClientConnection | ServerConnection) -> None:
        self.core = core
        #: Bytes it sent that the other side has not received yet.
        self.outbox = bytearray()
        #: Every stream id it had a call on (client: started; server: CallStarted).
        self.calls: list[int] = []
        #: Stream ids that ended here with a CallEnded.
        self.ended: set[int] = set()
        #: Messages received and not consumed yet: (stream id, wire length).
        self.unconsumed: list[tuple[int, int]] = []
        #: The connection failed here, or was lost.
        self.dead = False

    def flush(self) -> None:
        self.outbox += self.core.data_to_send()

    def open_calls(self) -> list[int]:
        return [sid for sid in self.calls if self.core.is_open(sid)]


class CoreFuzz(RuleBasedStateMachine):
    """Client and server cores wired through two byte pipes the fuzzer controls."""

    def __init__(self) -> None:
        super().__init__()
        self.client = Side(ClientConnection(CLIENT_CONFIG))
        self.server = Side(ServerConnection(SERVER_CONFIG))
        #: Something foreign happened: the two sides may legitimately disagree.
        self.tainted = False
        #: A SETTINGS was injected: stream send windows may be negative.
        self.settings_injected = False

    # ------------------------------------------------------------ plumbing

    def _act(self, action: object, *args: object, **kwargs: object) -> object:
        """Call a core API; the ProtocolError family is an allowed refusal."""
        assert callable(action)
        try:
            return action(*args, **kwargs)
        except ProtocolError:
            return None

    def _receive(self, side: Side, data: bytes) -> None:
        events = side.core.receive_data(data)  # must not raise
        self._record(side, events)

    def _record(self, side: Side, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, CallStarted):
                assert event.stream_id not in side.calls
                side.calls.append(event.stream_id)
            elif isinstance(event, MessageReceived):
                assert event.stream_id not in side.ended, "a message after the call ended"
                side.unconsumed.append((event.stream_id, event.wire_length))
            elif isinstance(event, CallEnded):
                assert event.stream_id not in side.ended, "a call ended twice"
                side.ended.add(event.stream_id)
                assert not side.core.is_open(event.stream_id)
            elif isinstance(event, ConnectionClosed):
                if not event.remote:
                    side.dead = True
                    self.tainted = True
                elif event.error_code:
                    self.tainted = True

    def _pick(self, side: Side, pick: int) -> int | None:
        open_calls = side.open_calls()
        return open_calls[pick % len(open_calls)] if open_calls else None

    def _deliver(self, sender: Side, receiver: Side, amount: int) -> None:
        sender.flush()
        if not sender.outbox:
            return
        chunk = bytes(sender.outbox[:amount])
        del sender.outbox[:amount]
        self._receive(receiver, chunk)

    # ------------------------------------------------------------- client

    @rule(gzip=st.booleans(), timeout=st.sampled_from([None, 0.5, 30.0]))
    def start_call(self, gzip: bool, timeout: float | None) -> None:
        stream_id = self._act(
            self.client.core.start_call,
            PATH,
            encoding="gzip" if gzip else None,
            timeout=timeout,
            metadata=Metadata([("x-fuzz", "1")]),
        )
        if stream_id is not None:
            assert isinstance(stream_id, int)
            self.client.calls.append(stream_id)

    @rule(pick=picks, size=sizes, compress=st.booleans())
    def client_send(self, pick: int, size: int, compress: bool) -> None:
        sid = self._pick(self.client, pick)
        if sid is not None:
            self._act(self.client.core.send_message, sid, b"c" * size, compress_message=compress)

    @rule(pick=picks)
    def client_half_close(self, pick: int) -> None:
        sid = self._pick(self.client, pick)
        if sid is not None:
            self._act(self.client.core.end_stream, sid)

    @rule(pick=picks)
    def client_cancel(self, pick: int) -> None:
        sid = self._pick(self.client, pick)
        if sid is not None:
            ended = self._act(self.client.core.cancel, sid)
            if isinstance(ended, CallEnded):
                self._record(self.client, [ended])

    # ------------------------------------------------------------- server

    @rule(pick=picks, gzip=st.booleans())
    def server_headers(self, pick: int, gzip: bool) -> None:
        sid = self._pick(self.server, pick)
        if sid is not None:
            encoding = "gzip" if gzip else None
            self._act(self.server.core.send_response_headers, sid, encoding=encoding)

    @rule(pick=picks, size=sizes)
    def server_send(self, pick: int, size: int) -> None:
        sid = self._pick(self.server, pick)
        if sid is not None:
            self._act(self.server.core.send_message, sid, b"s" * size)

    @rule(pick=picks, code=codes)
    def server_end(self, pick: int, code: StatusCode) -> None:
        sid = self._pick(self.server, pick)
        if sid is not None:
            status = Status(code=code, details="fuzzed end")
            self._act(self.server.core.end_call, sid, status, Metadata([("x-end", "1")]))

    @rule(pick=picks, error_code=reset_codes)
    def server_reset(self, pick: int, error_code: int) -> None:
        sid = self._pick(self.server, pick)
        if sid is not None:
            ended = self._act(self.server.core.reset, sid, error_code)
            if isinstance(ended, CallEnded):
                self._record(self.server, [ended])

    # --------------------------------------------------------- both sides

    @rule(to_client=st.booleans(), pick=picks)
    def consume(self, to_client: bool, pick: int) -> None:
        side = self.client if to_client else self.server
        if side.unconsumed:
            sid, length = side.unconsumed.pop(pick % len(side.unconsumed))
            self._act(side.core.consume, sid, length)

    @rule(to_client=st.booleans(), amount=cuts)
    def deliver(self, to_client: bool, amount: int) -> None:
        if to_client:
            self._deliver(self.server, self.client, amount)
        else:
            self._deliver(self.client, self.server, amount)

    @rule(from_client=st.booleans())
    def ping(self, from_client: bool) -> None:
        side = self.client if from_client else self.server
        self._act(side.core.ping, b"fuzzping")

    @rule()
    def graceful_shutdown(self) -> None:
        self._act(self.server.core.begin_graceful_shutdown)

    @rule(from_client=st.booleans(), error=st.booleans())
    def goaway(self, from_client: bool, error: bool) -> None:
        side = self.client if from_client else self.server
        if error:
            self.tainted = True  # an error GOAWAY ends the peer's calls, not ours
        self._act(side.core.close, h2.errors.ErrorCodes.INTERNAL_ERROR if error else 0)

    @precondition(lambda self: len(self.client.calls) >= 2)
    @rule(client_side=st.booleans())
    def lose_connection(self, client_side: bool) -> None:
        side = self.client if client_side else self.server
        self.tainted = True
        side.dead = True
        self._record(side, side.core.connection_lost("fuzzed loss"))

    @precondition(lambda self: len(self.client.calls) >= 1)
    @rule(
        to_client=st.booleans(),
        kind=st.sampled_from(["ping", "settings", "window_update", "rst_stream", "data", "x"]),
        stream=st.integers(min_value=0, max_value=9),
        value=st.integers(min_value=0, max_value=2**31 - 1),
        payload=st.binary(max_size=40),
    )
    def inject_frame(
        self, to_client: bool, kind: str, stream: int, value: int, payload: bytes
    ) -> None:
        receiver = self.client if to_client else self.server
        sender = self.server if to_client else self.client
        sender.flush()  # the outbox ends on a frame boundary: inject there
        if kind not in ("ping", "x"):
            self.tainted = True
        if kind == "settings":
            self.settings_injected = True
        sender.outbox += _frame(kind, stream, value, payload)
        self._deliver(sender, receiver, len(sender.outbox))

    @precondition(lambda self: len(self.client.calls) >= 3)
    @rule(to_client=st.booleans(), garbage=st.binary(min_size=1, max_size=30))
    def inject_bytes(self, to_client: bool, garbage: bytes) -> None:
        self.tainted = True
        self._receive(self.client if to_client else self.server, garbage)

    @rule(consume_all=st.booleans())
    def settle(self, consume_all: bool) -> None:
        """Deliver everything both ways until quiet; then no call may be stuck."""
        for _ in range(MAX_ROUNDS):
            if consume_all:
                for side in (self.client, self.server):
                    while side.unconsumed:
                        sid, length = side.unconsumed.pop()
                        self._act(side.core.consume, sid, length)
            self._deliver(self.client, self.server, 1 << 30)
            self._deliver(self.server, self.client, 1 << 30)
            self.client.flush()
            self.server.flush()
            if not self.client.outbox and not self.server.outbox:
                break
        else:
            raise AssertionError("the two cores never went quiet")
        if self.tainted:
            return
        for sid in set(self.client.calls) | set(self.server.calls):
            on_client, on_server = self.client.core.is_open(sid), self.server.core.is_open(sid)
            assert on_client == on_server, (
                f"stream {sid}: open on the client {on_client}, on the server {on_server}"
            )

    # --------------------------------------------------------- invariants

    @invariant()
    def windows_are_never_negative(self) -> None:
        for side in (self.client, self.server):
            stats = side.core.statistics()
            assert stats.send_window >= 0 and stats.receive_window >= 0, stats
            assert stats.queued_bytes >= 0 and stats.ungranted_bytes >= 0, stats
            assert stats.open_streams == side.core.open_calls
            for sid in side.open_calls():
                stream = side.core.stream_statistics(sid)
                assert stream.receive_window >= 0, stream
                # A send window goes below zero only when the peer's SETTINGS
                # shrink the initial window under what is in flight (RFC 9113
                # §6.9.2): by at most the RFC's 65535 less the new value.
                assert stream.send_window > -RFC_INITIAL_WINDOW or self.settings_injected, stream
                assert stream.queued_bytes >= 0 and stream.unconsumed_bytes >= 0, stream
                assert stream.ungranted_bytes >= 0, stream

    @invariant()
    def ended_calls_stay_ended(self) -> None:
        for side in (self.client, self.server):
            for sid in side.ended:
                assert not side.core.is_open(sid)
            if side.dead:
                assert side.core.open_calls == 0


CoreFuzz.TestCase.settings = settings(
    max_examples=1000 if LONG else 150,
    stateful_step_count=120 if LONG else 50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCoreFuzz = CoreFuzz.TestCase
