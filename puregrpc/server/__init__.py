"""puregrpc.server: serve gRPC methods from a trio program.

See :class:`Server` for listening and shutdown, :class:`ServicerContext` for
what a handler can do with its call, :mod:`._handlers` for the handler
shapes of the four call types, and :class:`ServerInterceptor` for code that
wraps every call (ready-made ones: :mod:`puregrpc.interceptors`). :class:`AbuseGuard` and
:class:`ConnectionLifetime` are the per-connection policies (abuse limits,
max age and idleness), plain objects told the time.
"""

from ._abuse import AbuseGuard as AbuseGuard
from ._abuse import RateLimit as RateLimit
from ._context import RequestIterator as RequestIterator
from ._context import ServicerContext as ServicerContext
from ._context import ending_status as ending_status
from ._handlers import MethodHandler as MethodHandler
from ._handlers import Service as Service
from ._interceptor import ForwardingServerCall as ForwardingServerCall
from ._interceptor import ServerCall as ServerCall
from ._interceptor import ServerContinuation as ServerContinuation
from ._interceptor import ServerInterceptor as ServerInterceptor
from ._lifetime import ConnectionLifetime as ConnectionLifetime
from ._lifetime import LifetimeEnd as LifetimeEnd
from ._options import ServerOptions as ServerOptions
from ._server import Server as Server

__all__ = [
    "AbuseGuard",
    "ConnectionLifetime",
    "ForwardingServerCall",
    "LifetimeEnd",
    "MethodHandler",
    "RateLimit",
    "RequestIterator",
    "Server",
    "ServerCall",
    "ServerContinuation",
    "ServerInterceptor",
    "ServerOptions",
    "Service",
    "ServicerContext",
    "ending_status",
]
