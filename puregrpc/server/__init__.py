"""puregrpc.server: serve gRPC methods from a trio program.

See :class:`Server` for listening and shutdown, :class:`ServicerContext` for
what a handler can do with its call, and :mod:`._handlers` for the handler
shapes of the four call types.
"""

from ._context import RequestIterator as RequestIterator
from ._context import ServicerContext as ServicerContext
from ._handlers import MethodHandler as MethodHandler
from ._handlers import Service as Service
from ._options import ServerOptions as ServerOptions
from ._server import Server as Server

__all__ = [
    "MethodHandler",
    "RequestIterator",
    "Server",
    "ServerOptions",
    "Service",
    "ServicerContext",
]
