"""Exception-to-status mapping: the application's errors as the right gRPC codes.

A handler that raises an exception other than :class:`~puregrpc.RpcError`
ends its call with UNKNOWN ("unexpected KeyError in the method handler"):
the server cannot know what the exception means. This interceptor knows,
because the application tells it: ``{LookupError: StatusCode.NOT_FOUND,
PermissionError: StatusCode.PERMISSION_DENIED}``. The most specific entry
wins (a ``KeyError`` matches ``KeyError`` before ``LookupError``), whatever
the mapping's order. Exceptions not in the mapping pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..server import ServerCall, ServerContinuation
from ..wire import RpcError, StatusCode

__all__ = ["ExceptionMappingInterceptor"]


def _message(error: Exception) -> str:
    return str(error) or type(error).__name__


class ExceptionMappingInterceptor:
    """Turns mapped exception types into :class:`~puregrpc.RpcError` with their status code.

    ``details`` makes the status message from the exception (by default its
    text, or its type's name when it has none): the client sees it, so keep
    secrets out of the messages of mapped exceptions, or pass a function
    that does.
    """

    def __init__(
        self,
        mapping: Mapping[type[Exception], StatusCode],
        *,
        details: Callable[[Exception], str] = _message,
    ) -> None:
        for exc_type, code in mapping.items():
            if not (isinstance(exc_type, type) and issubclass(exc_type, Exception)):
                raise TypeError(f"not an exception type: {exc_type!r}")
            if code is StatusCode.OK:
                raise ValueError(f"{exc_type.__name__} cannot map to OK: a mapped error fails")
        self.mapping = dict(mapping)
        self.details = details

    def code_for(self, error: Exception) -> StatusCode | None:
        """The code ``error`` maps to (its most specific mapped type), or ``None``."""
        for cls in type(error).__mro__:
            code = self.mapping.get(cls)
            if code is not None:
                return code
        return None

    async def intercept(
        self, call: ServerCall[object, object], proceed: ServerContinuation
    ) -> None:
        """Run the call; re-raise a mapped exception as its status."""
        try:
            await proceed(call)
        except RpcError:
            raise
        except Exception as error:
            code = self.code_for(error)
            if code is None:
                raise
            raise RpcError(
                code, self.details(error), trailing_metadata=call.context.trailing_metadata
            ) from error
