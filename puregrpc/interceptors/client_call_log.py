"""A client call log: one line when a call starts, one when it ends.

The client-side counterpart of :class:`~puregrpc.interceptors.CallLogInterceptor`:
the end line names the method, the status the caller got, the duration and
the messages sent and received. A call's end is where its caller learns it:
the last response read, the error raised, or a cancellation (``cancel()``,
leaving ``async with``, a dropped call). Put it first among the channel's
interceptors to log what the caller sees, last to log what the wire saw.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from ..client import ClientCallDetails, ClientContinuation, ClientStream, ForwardingClientStream
from ..wire import RpcError, Status, StatusCode

__all__ = ["ClientCallLogInterceptor"]


class ClientCallLogInterceptor:
    """Logs every call a channel makes on ``logger`` (``puregrpc.client.calls`` by default).

    ``level`` is the level of the end line of a call that ended OK,
    ``error_level`` that of any other outcome, ``start_level`` that of the
    start line. Records carry ``grpc_method``, ``grpc_code`` and
    ``grpc_duration`` as ``extra`` for structured handlers.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        level: int = logging.INFO,
        error_level: int = logging.WARNING,
        start_level: int = logging.DEBUG,
    ) -> None:
        self.logger = logger if logger is not None else logging.getLogger("puregrpc.client.calls")
        self.level = level
        self.error_level = error_level
        self.start_level = start_level

    async def intercept(
        self, details: ClientCallDetails, proceed: ClientContinuation
    ) -> ClientStream[Any, Any]:
        """Log the start, and return the call's stream wrapped to log its end."""
        method = details.path
        if self.logger.isEnabledFor(self.start_level):
            remaining = details.time_remaining()
            self.logger.log(
                self.start_level,
                "%s started (deadline: %s)",
                method,
                "none" if remaining is None else f"{remaining:.3f} s",
                extra={"grpc_method": method},
            )
        started = trio.current_time()
        try:
            stream = await proceed(details)
        except RpcError as exc:
            self._log_end(method, exc.status, started, sent=0, received=0)
            raise
        return _LoggedStream(stream, self, started)

    def _log_end(
        self, method: str, status: Status, started: float, *, sent: int, received: int
    ) -> None:
        level = self.level if status.code is StatusCode.OK else self.error_level
        if not self.logger.isEnabledFor(level):
            return
        duration = trio.current_time() - started
        code = status.code.name
        outcome = f"{code}: {status.details}" if status.details else code
        self.logger.log(
            level,
            "%s ended %s after %.3f s: %d message(s) sent, %d received",
            method,
            outcome,
            duration,
            sent,
            received,
            extra={"grpc_method": method, "grpc_code": status.code.name, "grpc_duration": duration},
        )


class _LoggedStream(ForwardingClientStream[Any, Any]):
    """Counts messages and logs the call's end once, however it comes."""

    __slots__ = ("_log", "_logged", "_received", "_sent", "_started")

    def __init__(
        self, inner: ClientStream[Any, Any], log: ClientCallLogInterceptor, started: float
    ) -> None:
        super().__init__(inner)
        self._log = log
        self._started = started
        self._sent = 0
        self._received = 0
        self._logged = False

    def _end(self, status: Status) -> None:
        if not self._logged:
            self._logged = True
            self._log._log_end(
                self.inner.details.path,
                status,
                self._started,
                sent=self._sent,
                received=self._received,
            )

    async def send(self, request: Any, *, compress: bool = True) -> None:
        """Send, counting the message."""
        await self.inner.send(request, compress=compress)
        self._sent += 1

    async def receive(self) -> Any:
        """Receive, counting the message; the end of the call is logged here."""
        try:
            response = await self.inner.receive()
        except RpcError as exc:
            self._end(exc.status)
            raise
        if response is None:
            status = self.inner.status
            self._end(status if status is not None else Status(code=StatusCode.OK))
        else:
            self._received += 1
        return response

    def cancel(self) -> None:
        """Cancel the call, logging it as cancelled unless it had already ended."""
        self.inner.cancel()
        status = self.inner.status
        self._end(
            status
            if status is not None
            else Status(code=StatusCode.CANCELLED, details="cancelled by the client")
        )
