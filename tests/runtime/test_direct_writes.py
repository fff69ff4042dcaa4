"""A unary call that ends alone on its connection is written by its own task.

Its response headers, message and status leave in one write from the
handler's task when the writer is idle (one task switch fewer per call). What
the socket does not take at once must still reach the client, in order, and
headers a handler sends early must not wait for its end.
"""

from __future__ import annotations

import trio
from small_sockets import channel_over_small_sockets, pattern

from puregrpc import Metadata
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServicerContext

BIG = raw_method("/direct.Test/Big", Cardinality.UNARY_UNARY)
EARLY = raw_method("/direct.Test/Early", Cardinality.UNARY_UNARY)

#: Fits the client's stream window, far over the small socket buffers below.
RESPONSE_SIZE = 60_000


async def big(request: bytes, context: ServicerContext) -> bytes:
    return pattern(int(request))


async def test_what_the_socket_does_not_take_at_once_still_arrives_in_order() -> None:
    server = Server([MethodHandler(method=BIG, func=big)])
    async with channel_over_small_sockets(server) as channel:
        with trio.fail_after(10):
            for size in (RESPONSE_SIZE, 10, RESPONSE_SIZE - 1):
                call = channel.unary_unary(BIG, b"%d" % size)
                assert await call == pattern(size)
                assert call.status is not None and call.status.ok


async def test_initial_metadata_sent_early_leaves_before_the_response() -> None:
    # The handler holds its response until the client has seen its headers:
    # were those headers held for the end of the call, this would never end.
    seen = trio.Event()

    async def early(request: bytes, context: ServicerContext) -> bytes:
        await context.send_initial_metadata(Metadata([("x-early", "yes")]))
        await seen.wait()
        return b"late"

    server = Server([MethodHandler(method=EARLY, func=early)])
    async with channel_over_small_sockets(server) as channel:
        with trio.fail_after(10):
            call = channel.unary_unary(EARLY, b"")
            assert (await call.initial_metadata())["x-early"] == "yes"
            seen.set()
            assert await call == b"late"
