"""puregrpc.testing: what tests of puregrpc programs (and of puregrpc) use.

* :func:`serve_in_memory` serves services (or a given
  :class:`~puregrpc.server.Server`) for an ``async with`` block over
  ``trio.testing.memory_stream_pair()`` connections, with no socket at all;
  its :class:`InMemoryServer` handle makes stubs (``served.stub(EchoStub)``)
  and channels (``async with served.channel() as channel:``), and can break
  its connections (``await served.drop_connections()``).
* A pytest plugin, registered as ``puregrpc`` under ``pytest11`` (active as
  soon as puregrpc is installed, loading nothing until a test asks for its
  fixtures): ``puregrpc_services`` (override it to list what to serve),
  ``puregrpc_interceptors``, ``puregrpc_server_options``,
  ``puregrpc_channel_options``, and the trio fixtures built on them,
  ``puregrpc_server`` (the :class:`InMemoryServer`), ``puregrpc_channel`` and
  ``puregrpc_stub`` (``puregrpc_stub(EchoStub)``). See ``docs/testing.md``.
* :mod:`puregrpc.testing.protos` holds a small ``puregrpc.testing.Echo``
  service (``proto/puregrpc/testing/echo.proto``) with its generated modules:
  all four call types over a one-field message, for tests and examples that
  need a real protobuf service without defining one.

The names are imported on first use, so that loading the pytest plugin
costs a project that does not use it nothing beyond ``import puregrpc``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._in_memory import InMemoryServer as InMemoryServer
    from ._in_memory import ServiceLike as ServiceLike
    from ._in_memory import StubFactory as StubFactory
    from ._in_memory import serve_in_memory as serve_in_memory

__all__ = ["InMemoryServer", "ServiceLike", "StubFactory", "serve_in_memory"]


def __getattr__(name: str) -> Any:
    """Import the public names lazily (PEP 562)."""
    if name in __all__:
        value = getattr(importlib.import_module("._in_memory", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
