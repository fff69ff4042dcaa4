"""What every call of the service gets: a default deadline, and a count while it runs.

:class:`CallPolicy` is a server interceptor. A call whose client sent no
deadline (``grpc-timeout``) runs under the method's default from
:data:`DEFAULT_DEADLINES`: short for the unary GetData, long for transfers.
The open-ended streams (watch, chat, sync, query) have none: they are meant
to run for days, and keepalive, not a timer, finds their dead clients. A
call that runs out ends DEADLINE_EXCEEDED, with a message that says how to
choose another. :attr:`CallPolicy.active_calls` counts the calls in progress per
method (shutdown logs them; tests wait for them to drain).

The deadline's cancel scope wraps the whole handler run, outside the
handler's generator, so it never spans a ``yield``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import trio

from puregrpc import RpcError, StatusCode
from puregrpc.server import ServerCall, ServerContinuation

__all__ = ["DEFAULT_DEADLINES", "SERVICE_PATH", "CallPolicy"]

logger = logging.getLogger("puregrpc_streaming")

#: The service whose calls the policy applies to (health and reflection run as they are).
SERVICE_PATH = "streaming.v1.StreamingService"

_HOUR = 3600.0
#: Seconds a call may run when the client set no deadline, per method
#: (``None``: as long as the client stays).
DEFAULT_DEADLINES: Mapping[str, float | None] = {
    "GetData": 10.0,
    "DownloadFile": 6 * _HOUR,
    "UploadFile": 6 * _HOUR,
    "ListLargeDataset": 1 * _HOUR,
    "CollectMetrics": 1 * _HOUR,
    "BatchProcess": 1 * _HOUR,
    "WatchEvents": None,
    "Chat": None,
    "SyncData": None,
    "InteractiveQuery": None,
}


class CallPolicy:
    """Default deadlines and call counts for the service's methods.

    ``deadlines`` overrides entries of :data:`DEFAULT_DEADLINES` (an unknown
    method name is a :class:`ValueError`).
    """

    def __init__(self, deadlines: Mapping[str, float | None] | None = None) -> None:
        unknown = set(deadlines or {}) - set(DEFAULT_DEADLINES)
        if unknown:
            raise ValueError(f"deadlines for unknown methods: {sorted(unknown)}")
        #: Seconds a call may run without a client deadline, by method name.
        self.deadlines: dict[str, float | None] = {**DEFAULT_DEADLINES, **(deadlines or {})}
        #: Calls in progress, by method name.
        self.active_calls: dict[str, int] = dict.fromkeys(DEFAULT_DEADLINES, 0)

    async def intercept(self, call: ServerCall[Any, Any], proceed: ServerContinuation) -> None:
        """Count the call and run it, under the default deadline if the client set none."""
        method = call.method
        name = method.name
        if method.service != SERVICE_PATH or name not in self.deadlines:
            await proceed(call)
            return
        self.active_calls[name] += 1
        try:
            default = self.deadlines[name]
            if call.deadline is not None or default is None:
                await proceed(call)
                return
            logger.debug("%s: no deadline from the client, %g s server default", name, default)
            with trio.move_on_after(default) as scope:
                await proceed(call)
            if scope.cancelled_caught:
                raise RpcError(
                    StatusCode.DEADLINE_EXCEEDED,
                    f"{name} ran past the server's default deadline of {default:g} s "
                    "(set a deadline on the call to choose another)",
                )
        finally:
            self.active_calls[name] -= 1
