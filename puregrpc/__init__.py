"""puregrpc: a pure-Python gRPC client and server on h2 and trio.

The sans-IO protocol core lives in :mod:`puregrpc.wire`; the trio server and
client drivers in :mod:`puregrpc.server` and :mod:`puregrpc.client`.
"""

from .wire import Metadata as Metadata
from .wire import RpcError as RpcError
from .wire import Status as Status
from .wire import StatusCode as StatusCode

__version__ = "0.1.0"

__all__ = ["Metadata", "RpcError", "Status", "StatusCode", "__version__"]
