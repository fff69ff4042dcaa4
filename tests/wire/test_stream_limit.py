"""The server's MAX_CONCURRENT_STREAMS as the client sees it, and as the server enforces it.

``can_start_call`` answers without counting streams most of the time; it must
always agree with the exact count (``available_streams``), whatever the order
in which calls start, end, are cancelled or are reset.
"""

from __future__ import annotations

import h2.errors
import h2.events
from helpers import Pair, RawClient, grpc_request_headers, of_type
from hypothesis import given, settings
from hypothesis import strategies as st

from puregrpc.wire import CallStarted, ConnectionConfig, Status, StatusCode

PATH = "/pkg.Echo/Call"
OK = Status(code=StatusCode.OK)

#: One step: start a call, or end the open call at this index one of three ways.
STEP = st.one_of(
    st.just(("start", 0)),
    st.tuples(st.sampled_from(["end", "cancel", "abort"]), st.integers(0, 40)),
)


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(1, 6), steps=st.lists(STEP, max_size=120))
def test_can_start_call_agrees_with_the_exact_count(
    limit: int, steps: list[tuple[str, int]]
) -> None:
    pair = Pair(server_config=ConnectionConfig(max_concurrent_streams=limit))
    open_calls: list[int] = []
    for action, index in steps:
        assert pair.client.can_start_call == (pair.client.available_streams > 0)
        if action == "start":
            if not pair.client.can_start_call:
                assert len(open_calls) == limit
                continue
            open_calls.append(pair.client.start_call(PATH))
            pair.client.end_stream(open_calls[-1])
        elif open_calls:
            stream_id = open_calls.pop(index % len(open_calls))
            if action == "cancel":
                pair.client.cancel(stream_id)
            else:
                pair.pump()
                if action == "end":
                    pair.server.end_call(stream_id, OK)
                else:
                    pair.server.end_call(stream_id, Status(code=StatusCode.ABORTED))
        pair.pump()
        assert pair.client.available_streams == limit - len(open_calls)
    assert pair.client.can_start_call == (pair.client.available_streams > 0)


def test_thousands_of_sequential_calls_keep_the_limit_exact() -> None:
    pair = Pair(server_config=ConnectionConfig(max_concurrent_streams=3))
    for _ in range(2_000):
        stream_id = pair.client.start_call(PATH)
        pair.client.end_stream(stream_id)
        pair.pump()
        pair.server.end_call(stream_id, OK)
        pair.pump()
        assert pair.client.can_start_call
    held = [pair.client.start_call(PATH) for _ in range(3)]
    assert not pair.client.can_start_call and pair.client.available_streams == 0
    pair.pump()
    pair.server.end_call(held[0], OK)
    pair.pump()
    assert pair.client.can_start_call and pair.client.available_streams == 1


def test_the_server_refuses_a_stream_over_its_limit_after_many_calls() -> None:
    """The server's receive path applies its limit to a peer that ignores it, call after call."""
    raw = RawClient(ConnectionConfig(max_concurrent_streams=2))
    for _ in range(200):
        server_events, _, _ = raw.request(grpc_request_headers(), data=b"")
        (started,) = of_type(server_events, CallStarted)
        raw.server.end_call(started.stream_id, OK)
        raw.exchange()
    # The forging client believes it may open more than the server allows.
    raw.h2.remote_settings.max_concurrent_streams = 100
    raw.h2.remote_settings.acknowledge()
    opened = []
    for _ in range(3):
        server_events, client_events, _ = raw.request(grpc_request_headers(), end=False)
        opened.append((of_type(server_events, CallStarted), client_events))
    assert [len(started) for started, _ in opened] == [1, 1, 0]
    # h2's answer to a stream over the limit: a connection error naming it.
    (terminated,) = [e for e in opened[2][1] if isinstance(e, h2.events.ConnectionTerminated)]
    assert terminated.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert raw.server.closed
