"""An Echo servicer that records its calls, for the tests of puregrpc.testing.

(A unique module name: test files import it directly; see tests/runtime/conftest.py.)

What a request's ``message`` asks of :class:`RecordingEcho`:

* ``"error:CODE"``: send initial metadata, set trailing metadata, then end
  the call with ``StatusCode.CODE``;
* ``"crash"``: raise an unexpected exception (the client sees UNKNOWN);
* ``"hang"``: wait forever (ServerStream first sends one reply), recording
  in ``cancelled`` when the call is cancelled;
* anything else: echoed back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import trio

from puregrpc import Metadata, RpcError, StatusCode
from puregrpc.server import RequestIterator, ServicerContext
from puregrpc.testing.protos.echo_pb2 import EchoReply, EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoServicer


@dataclass(frozen=True)
class Seen:
    """What one call looked like from the server."""

    method: str
    metadata: Metadata
    peer: str
    time_remaining: float | None


class RecordingEcho(EchoServicer):
    """Echoes in all four call shapes; records every call and every cancellation."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.cancelled: list[str] = []
        #: Set at the first cancellation.
        self.a_call_was_cancelled = trio.Event()

    def _note(self, context: ServicerContext) -> None:
        self.seen.append(
            Seen(
                method=context.method,
                metadata=context.invocation_metadata(),
                peer=context.peer(),
                time_remaining=context.time_remaining(),
            )
        )

    async def _act(self, message: str, context: ServicerContext) -> None:
        """Fail or hang as ``message`` asks (see the module docstring)."""
        if message.startswith("error:"):
            await context.send_initial_metadata(Metadata([("x-initial", "sent")]))
            context.set_trailing_metadata([("x-trailing", "why"), ("x-blob-bin", b"\x00\xff")])
            raise RpcError(StatusCode[message[len("error:") :]], "echo failed on purpose")
        if message == "crash":
            raise ZeroDivisionError("boom")
        if message == "hang":
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                self.cancelled.append(context.method)
                self.a_call_was_cancelled.set()
                raise

    async def Unary(self, request: EchoRequest, context: ServicerContext) -> EchoReply:
        """The request's message back (or what it asks for)."""
        self._note(context)
        await self._act(request.message, context)
        return EchoReply(message=request.message, payload=request.payload)

    async def ServerStream(
        self, request: EchoRequest, context: ServicerContext
    ) -> AsyncIterator[EchoReply]:
        """``count`` replies, numbered; ``hang`` after the first one."""
        self._note(context)
        for index in range(request.count):
            yield EchoReply(message=request.message, index=index)
            await self._act(request.message, context)

    async def ClientStream(
        self, requests: RequestIterator[EchoRequest], context: ServicerContext
    ) -> EchoReply:
        """One reply joining the requests' messages with ``+``."""
        self._note(context)
        messages = [request.message async for request in requests]
        for message in messages:
            await self._act(message, context)
        return EchoReply(message="+".join(messages), index=len(messages))

    async def Bidi(
        self, requests: RequestIterator[EchoRequest], context: ServicerContext
    ) -> AsyncIterator[EchoReply]:
        """One reply per request, as each arrives."""
        self._note(context)
        index = 0
        async for request in requests:
            await self._act(request.message, context)
            yield EchoReply(message=request.message, index=index)
            index += 1


def count_tasks() -> int:
    """How many tasks are alive in this trio run (walking from the root task)."""

    def under(task: trio.lowlevel.Task) -> int:
        return 1 + sum(under(child) for n in task.child_nurseries for child in n.child_tasks)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return under(root)
