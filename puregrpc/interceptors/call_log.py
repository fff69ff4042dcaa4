"""A call log: one line when a call starts, one when it ends.

The end line names the method, the peer, the status (as the client will see
it: :func:`~puregrpc.server.ending_status`), the duration and the messages
received and sent; calls that end with an error status are logged at a
higher level. Put it first among the server's interceptors so that it sees
the status the others decided (an authentication refusal, a mapped
exception).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import trio

from ..server import ServerCall, ServerContinuation, ServicerContext, ending_status
from ..wire import Status, StatusCode

__all__ = ["CallLogInterceptor"]

#: Statuses that are a normal answer rather than a failure of the call.
_QUIET_CODES = frozenset({StatusCode.OK})


class CallLogInterceptor:
    """Logs every call the server runs on ``logger`` (``puregrpc.calls`` by default).

    ``level`` is the level of the end line of a call that ended OK,
    ``error_level`` that of any other outcome, ``start_level`` that of the
    start line; ``levels`` sets the end line's level for particular status
    codes (say, a client's CANCELLED or a NOT_FOUND at INFO: answers, not
    faults). Each record carries the fields as ``extra`` (``grpc_method``,
    ``grpc_peer``, ``grpc_code``, ``grpc_duration``, ``grpc_received``,
    ``grpc_sent``, and ``grpc_details`` when there are any) for structured
    handlers.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        level: int = logging.INFO,
        error_level: int = logging.WARNING,
        start_level: int = logging.DEBUG,
        levels: Mapping[StatusCode, int] | None = None,
    ) -> None:
        self.logger = logger if logger is not None else logging.getLogger("puregrpc.calls")
        self.level = level
        self.error_level = error_level
        self.start_level = start_level
        self.levels: dict[StatusCode, int] = dict(levels or {})

    async def intercept(
        self, call: ServerCall[object, object], proceed: ServerContinuation
    ) -> None:
        """Log the call's start, run it, log its end (whatever ends it)."""
        context = call.context
        method = call.method.path
        peer = context.peer()
        logger = self.logger
        if logger.isEnabledFor(self.start_level):
            remaining = context.time_remaining()
            logger.log(
                self.start_level,
                "%s started by %s (deadline: %s)",
                method,
                peer,
                "none" if remaining is None else f"{remaining:.3f} s",
                extra={"grpc_method": method, "grpc_peer": peer},
            )
        started = trio.current_time()
        error: BaseException | None = None
        try:
            await proceed(call)
        except BaseException as exc:
            error = exc
            raise
        finally:
            status = ending_status(context, error)
            # The error's traceback holds this frame: let go of it, or the
            # two (and the call's context) would wait for the cycle collector.
            error = None
            self._log_end(context, method, peer, status, started)

    def _log_end(
        self, context: ServicerContext, method: str, peer: str, status: Status, started: float
    ) -> None:
        level = self.levels.get(
            status.code, self.level if status.code in _QUIET_CODES else self.error_level
        )
        if not self.logger.isEnabledFor(level):
            return
        duration = trio.current_time() - started
        outcome = (
            status.code.name if not status.details else f"{status.code.name}: {status.details}"
        )
        self.logger.log(
            level,
            "%s from %s ended %s after %.3f s: %d message(s) in, %d out",
            method,
            peer,
            outcome,
            duration,
            context.messages_received,
            context.messages_sent,
            extra={
                "grpc_method": method,
                "grpc_peer": peer,
                "grpc_code": status.code.name,
                "grpc_duration": duration,
                "grpc_received": context.messages_received,
                "grpc_sent": context.messages_sent,
                **({"grpc_details": status.details} if status.details else {}),
            },
        )
