"""puregrpc.server: serve gRPC methods from a trio program.

See :class:`Server` for listening and shutdown, :class:`ServicerContext` for
what a handler can do with its call, and :mod:`._handlers` for the handler
shapes of the four call types. :class:`AbuseGuard` and
:class:`ConnectionLifetime` are the per-connection policies (abuse limits,
max age and idleness), plain objects told the time.
"""

from ._abuse import AbuseGuard as AbuseGuard
from ._abuse import RateLimit as RateLimit
from ._context import RequestIterator as RequestIterator
from ._context import ServicerContext as ServicerContext
from ._handlers import MethodHandler as MethodHandler
from ._handlers import Service as Service
from ._lifetime import ConnectionLifetime as ConnectionLifetime
from ._lifetime import LifetimeEnd as LifetimeEnd
from ._options import ServerOptions as ServerOptions
from ._server import Server as Server

__all__ = [
    "AbuseGuard",
    "ConnectionLifetime",
    "LifetimeEnd",
    "MethodHandler",
    "RateLimit",
    "RequestIterator",
    "Server",
    "ServerOptions",
    "Service",
    "ServicerContext",
]
