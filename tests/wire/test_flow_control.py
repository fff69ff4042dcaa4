"""Flow control and backpressure, counted on the wire with hyperframe.

Every byte count here comes from parsing the bytes that moved between the two
connections (``helpers.WireLog``), not from the state machine's counters: the
point is to prove what a peer would see.
"""

from __future__ import annotations

from helpers import Pair, consume_all, of_type
from hyperframe.frame import DataFrame, HeadersFrame, WindowUpdateFrame
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from puregrpc.wire import (
    CallEnded,
    ConnectionConfig,
    HalfClosed,
    ListTracer,
    MessageReceived,
    Metadata,
    Status,
    StatusCode,
    WindowOpened,
)

PATH = "/pkg.Flow/Call"
OK = Status(code=StatusCode.OK)
WINDOW = 65_535
#: A 16 KiB payload: 16,389 bytes framed, so four do not fit one window.
PAYLOAD = b"m" * 16_384
FRAMED = len(PAYLOAD) + 5


def _server_stream(pair: Pair) -> int:
    """Open a call and let the server start answering."""
    sid = pair.client.start_call(PATH)
    pair.client.end_stream(sid)
    pair.pump()
    return sid


def test_stream_window_backpressure_and_resume() -> None:
    # The client is the receiver: a 64 KiB stream window, a large connection
    # window (so only the stream window binds), grants at a quarter window so
    # one consumed 16 KiB message is enough to trigger a WINDOW_UPDATE.
    pair = Pair(ConnectionConfig(stream_window=WINDOW, grant_ratio=0.25))
    sid = _server_stream(pair)
    mark = len(pair.s2c)
    for _ in range(6):
        pair.server.send_message(sid, PAYLOAD)
    client_events, server_events = pair.pump()
    # Exactly one window of DATA is on the wire, and the sender says it is blocked.
    assert pair.s2c.data_bytes(sid, since=mark) == WINDOW
    assert pair.server.queued_bytes(sid) == 6 * FRAMED - WINDOW
    assert pair.server.stream_statistics(sid).blocked
    assert pair.server.stream_statistics(sid).send_window == 0
    assert len(of_type(client_events, MessageReceived)) == 3  # the 4th is partial
    # A receiver that consumes nothing grants nothing back.
    c2s_mark = len(pair.c2s)
    assert pair.pump() == ([], [])
    assert len(pair.c2s) == c2s_mark  # nothing consumed: no WINDOW_UPDATE at all

    first = of_type(client_events, MessageReceived)[0]
    pair.client.consume(sid, first.wire_length)
    s2c_mark = len(pair.s2c)
    client_events, server_events = pair.pump()
    # One WINDOW_UPDATE for exactly the consumed message; the sender resumes
    # and puts exactly that much more on the wire, then blocks again.
    assert pair.c2s.window_updates(sid, since=c2s_mark) == [FRAMED]
    assert pair.s2c.data_bytes(sid, since=s2c_mark) == FRAMED
    assert pair.server.queued_bytes(sid) == 6 * FRAMED - WINDOW - FRAMED
    assert pair.server.stream_statistics(sid).blocked
    assert server_events == []  # still blocked: no WindowOpened yet
    assert len(of_type(client_events, MessageReceived)) == 1


def test_connection_window_backpressure_across_two_streams() -> None:
    # Large stream windows, a 64 KiB connection window: the connection binds.
    pair = Pair(ConnectionConfig(connection_window=WINDOW, grant_ratio=0.25))
    first = _server_stream(pair)
    second = _server_stream(pair)
    mark = len(pair.s2c)
    client_events = []
    for sid in (first, second, first, second, first):
        pair.server.send_message(sid, PAYLOAD)
        # Written out before the next message is queued, as a driver whose
        # writer runs between sends does (queued messages would share frames).
        client_events += pair.pump()[0]
    assert pair.s2c.data_bytes(since=mark) == WINDOW
    assert pair.s2c.data_bytes(first, since=mark) == 2 * FRAMED
    assert pair.s2c.data_bytes(second, since=mark) == WINDOW - 2 * FRAMED
    stats = pair.server.statistics()
    assert stats.send_window == 0
    assert stats.blocked_streams == 2
    assert stats.queued_bytes == 5 * FRAMED - WINDOW
    assert pair.server.stream_statistics(first).send_window > 0  # its own window is open
    assert len(of_type(client_events, MessageReceived)) == 3

    c2s_mark = len(pair.c2s)
    message = of_type(client_events, MessageReceived)[0]
    assert message.stream_id == first
    pair.client.consume(first, message.wire_length)
    s2c_mark = len(pair.s2c)
    client_events, server_events = pair.pump()
    # The connection (stream 0) gets the credit; the stream's own batch is not due.
    assert pair.c2s.window_updates(0, since=c2s_mark) == [FRAMED]
    assert pair.c2s.window_updates(first, since=c2s_mark) == []
    # The sender resumes with exactly the granted bytes, oldest stall first:
    # the second stream finishes its message, the first starts its third.
    assert pair.s2c.data_bytes(since=s2c_mark) == FRAMED
    assert pair.s2c.data_bytes(second, since=s2c_mark) == 4 * FRAMED - WINDOW
    assert server_events == [WindowOpened(stream_id=second)]
    assert pair.server.stream_statistics(first).blocked
    assert not pair.server.stream_statistics(second).blocked
    assert [e.stream_id for e in of_type(client_events, MessageReceived)] == [second]


def test_grants_are_batched_until_the_threshold() -> None:
    # grant_ratio 0.5 of 65,535: a WINDOW_UPDATE once 32,767 bytes are consumed.
    pair = Pair(ConnectionConfig(stream_window=WINDOW, connection_window=WINDOW))
    sid = _server_stream(pair)
    for _ in range(6):
        pair.server.send_message(sid, b"s" * 10_000)  # 10,005 bytes framed
    client_events, _ = pair.pump()
    messages = of_type(client_events, MessageReceived)
    assert len(messages) == 6
    for message in messages[:3]:
        mark = len(pair.c2s)
        pair.client.consume(sid, message.wire_length)
        pair.pump()
        assert pair.c2s.of_type(WindowUpdateFrame, since=mark) == []
    assert pair.client.stream_statistics(sid).ungranted_bytes == 3 * 10_005
    assert pair.client.statistics().ungranted_bytes == 3 * 10_005
    mark = len(pair.c2s)
    pair.client.consume(sid, messages[3].wire_length)
    pair.pump()
    # Crossing the threshold sends one update per level, for all four messages.
    assert pair.c2s.window_updates(sid, since=mark) == [4 * 10_005]
    assert pair.c2s.window_updates(0, since=mark) == [4 * 10_005]
    assert pair.client.stream_statistics(sid).ungranted_bytes == 0


def test_message_larger_than_both_windows_completes() -> None:
    config = ConnectionConfig(stream_window=WINDOW, connection_window=WINDOW)
    pair = Pair(config, config)
    sid = pair.client.start_call(PATH)
    big = bytes(range(256)) * 800  # 200 KiB
    pair.client.send_message(sid, big)
    assert pair.client.queued_bytes(sid) > 0
    pair.client.end_stream(sid)
    _, server_events = pair.pump()
    # The receiver is caught up, so the partial message's bytes are credited as
    # they arrive and the message completes despite windows of a third its size.
    (message,) = of_type(server_events, MessageReceived)
    assert message.data == big
    assert isinstance(server_events[-1], HalfClosed)
    assert pair.c2s.data_bytes(sid) == len(big) + 5
    assert pair.client.queued_bytes(sid) == 0
    pair.server.consume(sid, message.wire_length)
    # The same in the other direction, then the call ends normally.
    pair.server.send_message(sid, big)
    pair.server.end_call(sid, OK)
    client_events, _ = pair.pump()
    assert [e.data for e in of_type(client_events, MessageReceived)] == [big]
    assert of_type(client_events, CallEnded)[0].status.ok


def test_window_opened_when_a_blocked_stream_drains() -> None:
    pair = Pair(ConnectionConfig(stream_window=WINDOW, grant_ratio=0.25))
    sid = _server_stream(pair)
    for _ in range(5):
        pair.server.send_message(sid, PAYLOAD)
    client_events, _ = pair.pump()
    assert pair.server.queued_bytes(sid) > 0
    opened: list[WindowOpened] = []
    for _ in range(10):
        consume_all(pair.client, client_events)
        client_events, server_events = pair.pump()
        opened += of_type(server_events, WindowOpened)
        if pair.server.queued_bytes(sid) == 0:
            break
    assert opened == [WindowOpened(stream_id=sid)]
    assert not pair.server.stream_statistics(sid).blocked
    assert pair.server.statistics().blocked_streams == 0


def test_statistics_match_the_wire() -> None:
    pair = Pair(ConnectionConfig(stream_window=WINDOW, connection_window=WINDOW))
    sid = _server_stream(pair)
    mark = len(pair.s2c)
    for _ in range(3):
        pair.server.send_message(sid, b"x" * 30_000)
    client_events, _ = pair.pump()
    on_wire = pair.s2c.data_bytes(sid, since=mark)
    assert on_wire == WINDOW
    sender = pair.server.stream_statistics(sid)
    assert sender.send_window == WINDOW - on_wire
    assert sender.queued_bytes == 3 * 30_005 - on_wire
    assert sender.messages_sent == 3 and sender.blocked
    receiver = pair.client.stream_statistics(sid)
    assert receiver.receive_window == WINDOW - on_wire
    assert receiver.unconsumed_bytes == on_wire
    assert receiver.messages_received == len(of_type(client_events, MessageReceived)) == 2
    assert receiver.queued_bytes == 0 and not receiver.blocked
    server_conn = pair.server.statistics()
    client_conn = pair.client.statistics()
    assert server_conn.send_window == WINDOW - on_wire
    assert client_conn.receive_window == WINDOW - on_wire
    assert server_conn.open_streams == client_conn.open_streams == 1
    assert server_conn.max_frame_size == 16_384
    # Every DATA frame respects the peer's SETTINGS_MAX_FRAME_SIZE.
    assert max(len(f.data) for f in pair.s2c.of_type(DataFrame)) == 16_384


def test_trailers_queue_behind_blocked_data() -> None:
    pair = Pair(ConnectionConfig(stream_window=WINDOW, grant_ratio=0.25))
    sid = _server_stream(pair)
    for _ in range(6):
        pair.server.send_message(sid, PAYLOAD)
    pair.server.end_call(sid, OK, Metadata([("done", "yes")]))
    mark = len(pair.s2c)
    client_events, _ = pair.pump()
    # The call is still open on the server: its trailers wait behind the data.
    assert pair.server.is_open(sid)
    assert pair.server.queued_bytes(sid) == 6 * FRAMED - WINDOW
    assert not any("END_STREAM" in f.flags for f in pair.s2c.frames[mark:])
    assert of_type(client_events, CallEnded) == []
    every: list[object] = list(client_events)
    for _ in range(20):
        consume_all(pair.client, client_events)
        client_events, _ = pair.pump()
        every += client_events
        if of_type(client_events, CallEnded):
            break
    assert len(of_type(every, MessageReceived)) == 6
    (ended,) = of_type(every, CallEnded)
    assert ended.trailing_metadata["done"] == "yes"
    assert every[-1] is ended
    assert not pair.server.is_open(sid)
    # On the wire: the trailers are the last frame of the stream, after all data.
    stream_frames = [f for f in pair.s2c.frames[mark:] if f.stream_id == sid]
    assert isinstance(stream_frames[-1], HeadersFrame)
    assert "END_STREAM" in stream_frames[-1].flags
    assert pair.s2c.data_bytes(sid, since=mark) == 6 * FRAMED


def test_client_end_stream_queues_behind_blocked_data() -> None:
    config = ConnectionConfig(stream_window=WINDOW, grant_ratio=0.25)
    pair = Pair(server_config=config)
    sid = pair.client.start_call(PATH)
    for _ in range(5):
        pair.client.send_message(sid, PAYLOAD)
    pair.client.end_stream(sid)
    _, server_events = pair.pump()
    assert of_type(server_events, HalfClosed) == []
    every = list(server_events)
    for _ in range(10):
        consume_all(pair.server, server_events)
        _, server_events = pair.pump()
        every += server_events
    assert len(of_type(every, MessageReceived)) == 5
    assert every[-1] == HalfClosed(stream_id=sid)


def test_ended_calls_return_unconsumed_credit_to_the_connection() -> None:
    # A 64 KiB connection window on the server, and calls that each leave
    # 20 KiB unconsumed: without returning that credit the connection would
    # stall after three calls.
    config = ConnectionConfig(stream_window=WINDOW, connection_window=WINDOW)
    pair = Pair(server_config=config)
    mark, s2c_mark = len(pair.c2s), len(pair.s2c)
    for index in range(30):
        sid = pair.client.start_call(PATH)
        pair.client.send_message(sid, b"u" * 10_000)
        pair.client.send_message(sid, b"v" * 10_000)
        pair.client.end_stream(sid)
        _, server_events = pair.pump()
        assert len(of_type(server_events, MessageReceived)) == 2, index
        # End without consuming (half the calls by status, half by reset).
        if index % 2:
            pair.server.end_call(sid, OK)
        else:
            pair.server.reset(sid)
        pair.pump()
        assert not pair.client.is_open(sid)
        assert pair.client.queued_bytes(sid) == 0
    assert pair.c2s.data_bytes(since=mark) == 30 * 20_010
    assert pair.server.statistics().open_streams == 0
    # The server granted the connection back everything beyond one window.
    granted = sum(pair.s2c.window_updates(0, since=s2c_mark))
    assert granted >= 30 * 20_010 - WINDOW


def test_client_reset_returns_unconsumed_credit() -> None:
    config = ConnectionConfig(stream_window=WINDOW, connection_window=WINDOW)
    pair = Pair(config)
    for _ in range(10):
        sid = _server_stream(pair)
        pair.server.send_message(sid, b"w" * 30_000)
        client_events, _ = pair.pump()
        assert len(of_type(client_events, MessageReceived)) == 1
        assert pair.server.queued_bytes(sid) == 0
        pair.client.cancel(sid)
        pair.pump()
    assert pair.s2c.data_bytes() == 10 * 30_005


def test_data_for_a_forgotten_stream_is_credited_at_once() -> None:
    # The client cancels while the server's data is still in flight: the late
    # bytes hold no message for anyone, so the connection gets them back.
    config = ConnectionConfig(stream_window=WINDOW, connection_window=WINDOW)
    pair = Pair(config)
    for _ in range(8):
        sid = _server_stream(pair)
        pair.server.send_message(sid, b"z" * 30_000)
        in_flight = pair.server.data_to_send()  # on the wire, not yet read
        pair.client.cancel(sid)  # before the data arrives
        pair.to_server()
        pair.s2c.feed(in_flight)
        pair.client.receive_data(in_flight)
        pair.pump()
    assert pair.s2c.data_bytes() == 8 * 30_005
    assert pair.server.statistics().send_window > 0


def test_initial_connection_window_update_on_the_wire() -> None:
    pair = Pair(ConnectionConfig(connection_window=1_000_000), handshake=False)
    pair.pump()
    # The client raised its connection window right after its SETTINGS.
    first_updates = pair.c2s.window_updates(0)
    assert first_updates[0] == 1_000_000 - 65_535
    # The server, with the 16 MiB default, did the same.
    assert pair.s2c.window_updates(0)[0] == 16 * 1024 * 1024 - 65_535
    assert pair.server.statistics().send_window == 1_000_000
    assert pair.client.statistics().receive_window == 1_000_000

    flat = Pair(ConnectionConfig(connection_window=WINDOW), handshake=False)
    flat.pump()
    assert flat.c2s.window_updates(0) == []


def test_tracer_reports_stall_resume_and_grants() -> None:
    tracer = ListTracer()
    pair = Pair(
        ConnectionConfig(stream_window=WINDOW, grant_ratio=0.25),
        server_tracer=tracer,
    )
    sid = _server_stream(pair)
    for _ in range(5):
        pair.server.send_message(sid, PAYLOAD)
    client_events, _ = pair.pump()
    kinds = tracer.kinds(sid)
    assert "stall" in kinds and "resume" not in kinds
    (stall,) = [r for r in tracer.records if r.kind == "stall"]
    assert stall.fields["send_window"] == 0
    assert stall.fields["queued"] == 4 * FRAMED - WINDOW
    for _ in range(5):
        consume_all(pair.client, client_events)
        client_events, _ = pair.pump()
    assert tracer.kinds(sid).count("resume") == 1
    updates = [r for r in tracer.records if r.kind == "window_update" and r.stream_id == sid]
    assert sum(int(str(r.fields["increment"])) for r in updates) == sum(
        pair.c2s.window_updates(sid)
    )


@settings(max_examples=40, deadline=None)
@given(
    stream_window=st.integers(min_value=4096, max_value=200_000),
    connection_window=st.integers(min_value=65_535, max_value=200_000),
    ratio=st.sampled_from([0.1, 0.25, 0.5, 0.9, 1.0]),
    sizes=st.lists(st.integers(min_value=0, max_value=150_000), min_size=1, max_size=6),
    chunk=st.sampled_from([None, 7, 1000, 16_393]),
)
def test_a_consuming_receiver_always_gets_everything(
    stream_window: int, connection_window: int, ratio: float, sizes: list[int], chunk: int | None
) -> None:
    # No deadlock whatever the windows, grant ratio, message sizes and the way
    # bytes are cut into reads: a reader that keeps up receives every message.
    config = ConnectionConfig(
        stream_window=stream_window, connection_window=connection_window, grant_ratio=ratio
    )
    pair = Pair(config, config, chunk=chunk)
    sid = pair.client.start_call(PATH)
    pair.client.end_stream(sid)
    pair.pump()
    for index, size in enumerate(sizes):
        pair.server.send_message(sid, bytes([index]) * size)
    pair.server.end_call(sid, OK)
    client_events, _ = pair.pump_consuming()
    assert [len(e.data) for e in of_type(client_events, MessageReceived)] == sizes
    assert of_type(client_events, CallEnded)[0].status.ok


@settings(max_examples=40, deadline=None)
@given(
    window=st.integers(min_value=65_535, max_value=150_000),
    ratio=st.sampled_from([0.25, 0.5, 0.75]),
    sizes=st.lists(st.integers(min_value=0, max_value=40_000), min_size=1, max_size=12),
    chunk=st.sampled_from([None, 100, 16_393]),
)
def test_a_reader_that_consumes_nothing_gets_at_most_one_window(
    window: int, ratio: float, sizes: list[int], chunk: int | None
) -> None:
    # While the first message fits in the window with room for a grant
    # threshold to spare, no partial bytes are ever credited: exactly
    # min(window, everything sent) bytes of DATA reach the wire.
    threshold = int(window * ratio)
    assume(sizes[0] + 5 <= window - threshold)
    config = ConnectionConfig(stream_window=window, connection_window=window, grant_ratio=ratio)
    pair = Pair(config, chunk=chunk)
    sid = _server_stream(pair)
    mark, c2s_mark = len(pair.s2c), len(pair.c2s)
    for size in sizes:
        pair.server.send_message(sid, b"q" * size)
    pair.pump()
    total = sum(size + 5 for size in sizes)
    assert pair.s2c.data_bytes(sid, since=mark) == min(window, total)
    assert pair.server.queued_bytes(sid) == total - min(window, total)
    assert pair.c2s.window_updates(since=c2s_mark) == []
