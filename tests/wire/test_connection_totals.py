"""ConnectionTotals: what each connection carried, counted by the state machine (channelz)."""

from __future__ import annotations

from helpers import Pair, consume_all

from puregrpc.wire import Status, StatusCode

PATH = "/pkg.Echo/Call"
OK = Status(code=StatusCode.OK)


def _unary(pair: Pair, status: Status = OK, replies: int = 1) -> int:
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"ping")
    pair.client.end_stream(sid)
    _, server_events = pair.pump()
    consume_all(pair.server, server_events)
    for _ in range(replies):
        pair.server.send_message(sid, b"pong")
    pair.server.end_call(sid, status)
    client_events, _ = pair.pump()
    consume_all(pair.client, client_events)
    return sid


def test_fresh_connections_have_carried_nothing() -> None:
    pair = Pair()
    for totals in (pair.client.totals, pair.server.totals):
        assert (totals.streams_started, totals.streams_succeeded, totals.streams_failed) == (
            0,
            0,
            0,
        )
        assert (totals.messages_sent, totals.messages_received, totals.pings_sent) == (0, 0, 0)


def test_completed_calls_count_as_succeeded_on_both_sides_whatever_their_status() -> None:
    pair = Pair()
    _unary(pair)
    _unary(pair, replies=3)
    # A non-OK status still ends the stream with END_STREAM both ways: A14
    # counts streams, not statuses.
    _unary(pair, Status(code=StatusCode.NOT_FOUND, details="no such thing"), replies=0)
    client, server = pair.client.totals, pair.server.totals
    assert (client.streams_started, client.streams_succeeded, client.streams_failed) == (3, 3, 0)
    assert (server.streams_started, server.streams_succeeded, server.streams_failed) == (3, 3, 0)
    assert (client.messages_sent, client.messages_received) == (3, 4)
    assert (server.messages_sent, server.messages_received) == (4, 3)


def test_open_streams_are_neither_succeeded_nor_failed() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"first")
    _, server_events = pair.pump()
    consume_all(pair.server, server_events)
    assert pair.client.totals.streams_started == pair.server.totals.streams_started == 1
    for totals in (pair.client.totals, pair.server.totals):
        assert totals.streams_succeeded == totals.streams_failed == 0
    assert pair.server.totals.messages_received == 1


def test_a_cancelled_call_fails_on_both_sides() -> None:
    pair = Pair()
    sid = pair.client.start_call(PATH)
    pair.client.send_message(sid, b"x")
    pair.pump()
    pair.client.reset(sid)
    pair.pump()
    assert (pair.client.totals.streams_succeeded, pair.client.totals.streams_failed) == (0, 1)
    assert (pair.server.totals.streams_succeeded, pair.server.totals.streams_failed) == (0, 1)


def test_calls_open_when_the_connection_is_lost_fail() -> None:
    pair = Pair()
    _unary(pair)
    for _ in range(2):
        pair.client.start_call(PATH)
    pair.pump()
    pair.client.connection_lost("gone")
    pair.server.connection_lost("gone")
    assert (pair.client.totals.streams_succeeded, pair.client.totals.streams_failed) == (1, 2)
    assert (pair.server.totals.streams_succeeded, pair.server.totals.streams_failed) == (1, 2)


def test_pings_sent_are_counted_on_the_side_that_sent_them() -> None:
    pair = Pair()
    pair.client.ping(b"12345678")
    pair.client.ping(b"abcdefgh")
    pair.pump()
    assert pair.client.totals.pings_sent == 2
    assert pair.server.totals.pings_sent == 0
    assert "pings_sent=2" in repr(pair.client.totals)
