"""Message size limits, compression, many concurrent streams and a slow consumer."""

from __future__ import annotations

import grpc
import pytest
import trio
from runtime_support import (
    BIDI,
    COLLECT,
    ECHO,
    GATED,
    GZIP,
    LENGTH,
    MIB,
    SIZE,
    SLEEP,
    STREAM,
    GrpcioServed,
    Probe,
    Served,
    expect_rpc_error,
    in_thread,
    running_server,
)

from puregrpc import StatusCode
from puregrpc.client import CallOptions, Channel, ChannelOptions
from puregrpc.server import ServerOptions
from puregrpc.wire import ConnectionConfig, ListTracer

UNDER = int(3.9 * MIB)
OVER = int(4.1 * MIB)


def compressed_messages_in(tracer: ListTracer) -> list[bool]:
    """The ``compressed`` flag of every message the traced side received."""
    return [bool(r.fields["compressed"]) for r in tracer.records if r.kind == "message_in"]


def wire_lengths_in(tracer: ListTracer) -> list[int]:
    """The on-the-wire length of every message the traced side received."""
    return [int(str(r.fields["length"])) for r in tracer.records if r.kind == "message_in"]


# ------------------------------------------------------------ message size


async def test_request_under_4mib_is_accepted(channel: Channel) -> None:
    with trio.fail_after(10):
        assert await channel.unary_unary(LENGTH, b"r" * UNDER) == b"%d" % UNDER


async def test_request_over_4mib_is_refused(channel: Channel) -> None:
    with trio.fail_after(10):
        # A warm connection (SETTINGS exchanged); the next test covers a fresh one.
        assert await channel.unary_unary(ECHO, b"warm") == b"warm"
        error = await expect_rpc_error(channel.unary_unary(LENGTH, b"r" * OVER))
        assert error.code is StatusCode.RESOURCE_EXHAUSTED
        # Only the call fails: the connection goes on.
        assert await channel.unary_unary(ECHO, b"next") == b"next"


async def test_request_over_4mib_on_a_fresh_connection_is_refused(server: Served) -> None:
    # The first call of a connection: the oversized message is blocked on the
    # RFC's initial 65,535-byte window when the server's answer arrives, in the
    # same read as its SETTINGS (this used to raise h2's StreamClosedError out
    # of receive_data and kill the channel).
    with trio.fail_after(10):
        async with Channel(server.target) as channel:
            error = await expect_rpc_error(channel.unary_unary(LENGTH, b"r" * OVER))
            assert error.code is StatusCode.RESOURCE_EXHAUSTED
            assert await channel.unary_unary(ECHO, b"next") == b"next"


async def test_streamed_request_over_4mib_is_refused(channel: Channel) -> None:
    with trio.fail_after(10):
        assert await channel.unary_unary(ECHO, b"warm") == b"warm"
        error = await expect_rpc_error(channel.stream_unary(COLLECT, [b"a", b"r" * OVER]))
    assert error.code is StatusCode.RESOURCE_EXHAUSTED


async def test_refused_request_is_not_seen_as_end_of_requests(
    server: Served, channel: Channel
) -> None:
    with trio.fail_after(10):
        assert await channel.unary_unary(ECHO, b"warm") == b"warm"
        await expect_rpc_error(channel.stream_unary(COLLECT, [b"a", b"r" * OVER]))
        # The server may refuse the call before its handler starts (the whole
        # request in one read); a handler that did start must not finish clean.
        with trio.move_on_after(1):
            await server.probe.finished.wait()
    assert server.probe.collected == [], "the handler took a truncated request stream as whole"


async def test_response_under_4mib_is_accepted(channel: Channel) -> None:
    with trio.fail_after(10):
        response = await channel.unary_unary(SIZE, b"%d" % UNDER)
    assert len(response) == UNDER


async def test_response_over_4mib_is_refused(channel: Channel) -> None:
    with trio.fail_after(10):
        error = await expect_rpc_error(channel.unary_unary(SIZE, b"%d" % OVER))
        assert error.code is StatusCode.RESOURCE_EXHAUSTED
        assert await channel.unary_unary(ECHO, b"next") == b"next"


async def test_bidi_message_over_4mib_is_refused(channel: Channel) -> None:
    with trio.fail_after(10):
        async with channel.stream_stream(BIDI) as call:
            await call.send(b"ok")
            assert await call.receive() == b"OK"
            await call.send(b"x" * OVER)
            error = await expect_rpc_error(call.receive())
    assert error.code is StatusCode.RESOURCE_EXHAUSTED


async def test_compressed_request_over_4mib_when_inflated_is_refused(channel: Channel) -> None:
    # 5 MiB of zeros gzip to a few KiB: the limit applies after decompression.
    with trio.fail_after(10):
        error = await expect_rpc_error(
            channel.unary_unary(LENGTH, bytes(5 * MIB), compression="gzip")
        )
    assert error.code is StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.interop
async def test_grpcio_client_request_sizes(server: Served) -> None:
    def call(size: int) -> tuple[grpc.StatusCode, bytes | None]:
        with grpc.insecure_channel(server.target) as chan:
            try:
                return grpc.StatusCode.OK, chan.unary_unary(LENGTH.path)(b"r" * size, timeout=10)
            except grpc.RpcError as exc:
                return exc.code(), None

    with trio.fail_after(15):
        assert await in_thread(call, UNDER) == (grpc.StatusCode.OK, b"%d" % UNDER)
        code, _ = await in_thread(call, OVER)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.interop
async def test_grpcio_client_response_sizes(server: Served) -> None:
    def call(size: int) -> tuple[grpc.StatusCode, int]:
        with grpc.insecure_channel(server.target) as chan:
            try:
                return grpc.StatusCode.OK, len(
                    chan.unary_unary(SIZE.path)(b"%d" % size, timeout=10)
                )
            except grpc.RpcError as exc:
                return exc.code(), 0

    with trio.fail_after(15):
        assert await in_thread(call, UNDER) == (grpc.StatusCode.OK, UNDER)
        code, _ = await in_thread(call, OVER)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.interop
async def test_sizes_against_grpcio_server(grpcio_server: GrpcioServed) -> None:
    with trio.fail_after(15):
        async with Channel(grpcio_server.target) as channel:
            assert await channel.unary_unary(LENGTH, b"r" * UNDER) == b"%d" % UNDER
            error = await expect_rpc_error(channel.unary_unary(LENGTH, b"r" * OVER))
            assert error.code is StatusCode.RESOURCE_EXHAUSTED
            response: bytes = await channel.unary_unary(SIZE, b"%d" % UNDER)
            assert len(response) == UNDER
            error = await expect_rpc_error(channel.unary_unary(SIZE, b"%d" % OVER))
            assert error.code is StatusCode.RESOURCE_EXHAUSTED
            assert await channel.unary_unary(ECHO, b"still") == b"still"


# ------------------------------------------------------------ compression

PAYLOAD = b"compressible " * 10_000


async def test_channel_gzip_compresses_requests() -> None:
    tracer = ListTracer()
    async with running_server(options=ServerOptions(tracer=tracer)) as served:
        options = ChannelOptions(call_defaults=CallOptions(compression="gzip"))
        with trio.fail_after(5):
            async with Channel(served.target, options=options) as channel:
                assert await channel.unary_unary(LENGTH, PAYLOAD) == b"%d" % len(PAYLOAD)
                assert await channel.stream_unary(COLLECT, [PAYLOAD, PAYLOAD]) == (
                    PAYLOAD + b"," + PAYLOAD
                )
    assert compressed_messages_in(tracer) == [True, True, True]
    assert max(wire_lengths_in(tracer)) < len(PAYLOAD) // 10


async def test_per_call_gzip_compresses_only_that_call() -> None:
    tracer = ListTracer()
    async with running_server(options=ServerOptions(tracer=tracer)) as served:
        with trio.fail_after(5):
            async with Channel(served.target) as channel:
                await channel.unary_unary(LENGTH, PAYLOAD, compression="gzip")
                await channel.unary_unary(LENGTH, PAYLOAD)
    assert compressed_messages_in(tracer) == [True, False]


async def test_server_set_compression_gzips_responses(server: Served) -> None:
    tracer = ListTracer()
    with trio.fail_after(5):
        async with Channel(server.target, options=ChannelOptions(tracer=tracer)) as channel:
            assert await channel.unary_unary(GZIP, PAYLOAD) == PAYLOAD
            assert await channel.unary_unary(ECHO, PAYLOAD) == PAYLOAD
    assert compressed_messages_in(tracer) == [True, False]
    assert wire_lengths_in(tracer)[0] < len(PAYLOAD) // 10


async def test_server_option_gzips_every_response() -> None:
    tracer = ListTracer()
    async with running_server(options=ServerOptions(compression="gzip")) as served:
        with trio.fail_after(5):
            options = ChannelOptions(tracer=tracer)
            async with Channel(served.target, options=options) as channel:
                assert await channel.unary_unary(ECHO, PAYLOAD) == PAYLOAD
                assert [m async for m in channel.unary_stream(STREAM, b"2")] == [b"0", b"1"]
    assert compressed_messages_in(tracer) == [True, True, True]


@pytest.mark.interop
async def test_grpcio_client_gzip_to_puregrpc() -> None:
    tracer = ListTracer()
    async with running_server(options=ServerOptions(tracer=tracer)) as served:

        def call() -> bytes:
            with grpc.insecure_channel(served.target, compression=grpc.Compression.Gzip) as chan:
                result: bytes = chan.unary_unary(LENGTH.path)(PAYLOAD, timeout=5)
                return result

        with trio.fail_after(5):
            assert await in_thread(call) == b"%d" % len(PAYLOAD)
    assert compressed_messages_in(tracer) == [True]


@pytest.mark.interop
async def test_grpcio_client_receives_puregrpc_gzip(server: Served) -> None:
    def call() -> bytes:
        with grpc.insecure_channel(server.target) as chan:
            result: bytes = chan.unary_unary(GZIP.path)(PAYLOAD, timeout=5)
            return result

    with trio.fail_after(5):
        assert await in_thread(call) == PAYLOAD


@pytest.mark.interop
async def test_gzip_with_grpcio_server(grpcio_server: GrpcioServed) -> None:
    tracer = ListTracer()
    options = ChannelOptions(call_defaults=CallOptions(compression="gzip"), tracer=tracer)
    with trio.fail_after(5):
        async with Channel(grpcio_server.target, options=options) as channel:
            # Our gzip request is understood by grpcio...
            assert await channel.unary_unary(LENGTH, PAYLOAD) == b"%d" % len(PAYLOAD)
            # ...and grpcio's gzip response by us.
            assert await channel.unary_unary(GZIP, PAYLOAD) == PAYLOAD
    assert compressed_messages_in(tracer)[-1] is True


# ------------------------------------------------------------ concurrency


async def test_1000_concurrent_unary_calls_on_one_connection() -> None:
    probe = Probe()
    probe.gate_at = 1000
    results: list[bytes] = []
    async with running_server(probe) as served, Channel(served.target) as channel:

        async def one(i: int) -> None:
            results.append(await channel.unary_unary(GATED, b"%d" % i))

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for i in range(1000):
                    nursery.start_soon(one, i)
    # GATED holds every handler until the 1000th has arrived, so all 1000
    # calls were open at the same time.
    assert probe.arrived == 1000
    assert sorted(results) == sorted(b"%d" % i for i in range(1000))
    assert len(set(probe.peers)) == 1, "all calls must share one TCP connection"


async def test_1000_concurrent_bidi_calls_on_one_connection(server: Served) -> None:
    done = 0
    with trio.fail_after(20):
        async with Channel(server.target) as channel:

            async def one(i: int) -> None:
                nonlocal done
                async with channel.stream_stream(BIDI) as call:
                    await call.send(b"a%d" % i)
                    assert await call.receive() == b"A%d" % i
                    await call.send(b"b%d" % i)
                    assert await call.receive() == b"B%d" % i
                    await call.done_writing()
                    assert await call.receive() is None
                assert call.code is StatusCode.OK
                done += 1

            async with trio.open_nursery() as nursery:
                for i in range(1000):
                    nursery.start_soon(one, i)
            # One more call reports the connection all of them used.
            await channel.unary_unary(ECHO, b"")
    assert done == 1000
    assert len(set(server.probe.peers)) == 1


async def test_server_concurrency_limit_queues_extra_calls() -> None:
    # SETTINGS_MAX_CONCURRENT_STREAMS=10: the channel waits for a free slot
    # instead of failing the 40 calls beyond it.
    options = ServerOptions(connection=ConnectionConfig(max_concurrent_streams=10))
    results: list[bytes] = []
    async with running_server(options=options) as served, Channel(served.target) as channel:

        async def one() -> None:
            results.append(await channel.unary_unary(SLEEP, b"0.05", timeout=5))

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                for _ in range(50):
                    nursery.start_soon(one)
    assert results == [b"slept"] * 50
    assert served.probe.max_active == 10


# ------------------------------------------------------------ slow consumer


def rss_bytes() -> int:
    """This process's resident set size (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_slow_consumer_keeps_server_memory_bounded(server: Served, channel: Channel) -> None:
    probe = server.probe
    message = 64 * 1024
    count = 2048  # 128 MiB in all
    received = 0
    with trio.fail_after(20):
        baseline = rss_bytes()
        call = channel.unary_stream(STREAM, b"%d:%d" % (count, message))
        assert len(await call.receive() or b"") == message
        received += 1
        # Slow phase: the client reads nothing for a while. The handler must
        # park in send() once the windows are spent, not queue messages.
        await trio.sleep(0.5)
        stalled_at = probe.sent
        assert probe.context is not None
        stats = probe.context.statistics()
        assert stats.blocked
        assert stats.send_window <= 0
        assert 0 < stats.queued_bytes <= message + 5
        # Bounded by the client's stream window (1 MiB) plus one message in
        # flight: nowhere near the 128 MiB the handler wants to send.
        assert stalled_at <= (1 * MIB) // message + 2
        await trio.sleep(0.2)
        assert probe.sent == stalled_at, "the handler went on sending while stalled"
        # Fast phase: drain the rest.
        async for data in call:
            assert len(data) == message
            received += 1
        growth = rss_bytes() - baseline
    assert received == count
    assert call.code is StatusCode.OK
    assert growth < 50 * MIB, f"RSS grew by {growth / MIB:.1f} MiB while streaming 128 MiB"
