"""Every interop case in three pairings of client -> server.

Pairings: grpcio -> puregrpc, puregrpc -> grpcio, puregrpc -> puregrpc.

The grpcio side follows doc/interop-test-descriptions.md (``interop_support``);
the puregrpc side is ``puregrpc.interop`` itself. Cases puregrpc cannot do
yet for want of a runtime feature are strict xfails naming the feature, so
the matrix flips to failing (XPASS) the day the feature lands.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
from interop_support import GRPCIO_CASES, GrpcioServer, run_grpcio_case

from puregrpc.interop import CASES, MessageFlags
from puregrpc.interop.client import run_case
from puregrpc.interop.server import make_server
from puregrpc.server import Server, ServerOptions

pytestmark = pytest.mark.interop

GRPCIO_TO_PUREGRPC = "grpcio->puregrpc"
PUREGRPC_TO_GRPCIO = "puregrpc->grpcio"
PUREGRPC_TO_PUREGRPC = "puregrpc->puregrpc"
PAIRINGS = [GRPCIO_TO_PUREGRPC, PUREGRPC_TO_GRPCIO, PUREGRPC_TO_PUREGRPC]

#: Known gaps: (pairing, case) -> the missing runtime feature (none left).
GAPS: dict[tuple[str, str], str] = {}

#: Generous bound on one case, so a hang fails instead of stalling CI.
CASE_DEADLINE = 20.0


def _params() -> list[object]:
    params = []
    for pairing in PAIRINGS:
        for case in CASES:
            gap = GAPS.get((pairing, case))
            marks = [pytest.mark.xfail(reason=gap, strict=True)] if gap else []
            params.append(pytest.param(pairing, case, marks=marks, id=f"{pairing}:{case}"))
    return params


def test_both_sides_have_every_case() -> None:
    assert list(GRPCIO_CASES) and set(GRPCIO_CASES) == set(CASES)
    assert len(CASES) == 18


class _PuregrpcServer:
    def __init__(self, server: Server, port: int, sent: MessageFlags) -> None:
        self.server = server
        self.port = port
        #: Compressed-Flags of the responses of the latest call, as sent.
        self.sent = sent


@pytest.fixture
async def puregrpc_server() -> AsyncIterator[_PuregrpcServer]:
    """The puregrpc interop server on 127.0.0.1, recording the flags it sends."""
    sent = MessageFlags(sent=True)
    server = make_server(options=ServerOptions(tracer=sent))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        try:
            yield _PuregrpcServer(server, port, sent)
        finally:
            with trio.CancelScope(shield=True):
                await server.stop(grace=1)
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize(("pairing", "case"), _params())
async def test_interop(
    pairing: str,
    case: str,
    puregrpc_server: _PuregrpcServer,
    grpcio_test_server: GrpcioServer,
) -> None:
    """One interop case in one pairing: it passes (the case raises otherwise)."""
    with trio.fail_after(CASE_DEADLINE):
        if pairing == GRPCIO_TO_PUREGRPC:
            await trio.to_thread.run_sync(
                run_grpcio_case,
                case,
                puregrpc_server.port,
                puregrpc_server.sent.last_call,
                abandon_on_cancel=True,
            )
        elif pairing == PUREGRPC_TO_GRPCIO:
            await run_case(case, "127.0.0.1", grpcio_test_server.port)
        else:
            await run_case(case, "127.0.0.1", puregrpc_server.port)
