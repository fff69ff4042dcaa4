"""puregrpc.server: serve gRPC methods from a trio program.

See :class:`Server` for listening and shutdown, :class:`ServicerContext` for
what a handler can do with its call, :mod:`._handlers` for the handler
shapes of the four call types, and :class:`ServerInterceptor` for code that
wraps every call (ready-made ones: :mod:`puregrpc.interceptors`). :class:`AbuseGuard` and
:class:`ConnectionLifetime` are the per-connection policies (abuse limits,
max age and idleness), plain objects told the time. :func:`run_workers` serves
one port from several processes (``SO_REUSEPORT``, :mod:`._workers`).
:func:`freeze_heap` keeps a started process's heap out of the garbage
collector's full passes (their stalls were the unary p99 under load).
"""

from ._abuse import AbuseGuard as AbuseGuard
from ._abuse import RateLimit as RateLimit
from ._context import RequestIterator as RequestIterator
from ._context import ServicerContext as ServicerContext
from ._context import ending_status as ending_status
from ._handlers import MethodHandler as MethodHandler
from ._handlers import Service as Service
from ._heap import FrozenHeap as FrozenHeap
from ._heap import freeze_heap as freeze_heap
from ._interceptor import ForwardingServerCall as ForwardingServerCall
from ._interceptor import ServerCall as ServerCall
from ._interceptor import ServerContinuation as ServerContinuation
from ._interceptor import ServerInterceptor as ServerInterceptor
from ._lifetime import ConnectionLifetime as ConnectionLifetime
from ._lifetime import LifetimeEnd as LifetimeEnd
from ._listen import open_tcp_listeners as open_tcp_listeners
from ._listen import reserve_port as reserve_port
from ._listen import reuse_port_supported as reuse_port_supported
from ._options import ServerOptions as ServerOptions
from ._server import Server as Server
from ._workers import WorkerBackoff as WorkerBackoff
from ._workers import WorkerSlot as WorkerSlot
from ._workers import WorkerStartError as WorkerStartError
from ._workers import run_workers as run_workers
from ._workers import supervise_workers as supervise_workers

__all__ = [
    "AbuseGuard",
    "ConnectionLifetime",
    "ForwardingServerCall",
    "FrozenHeap",
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
    "WorkerBackoff",
    "WorkerSlot",
    "WorkerStartError",
    "ending_status",
    "freeze_heap",
    "open_tcp_listeners",
    "reserve_port",
    "reuse_port_supported",
    "run_workers",
    "supervise_workers",
]
