"""puregrpc.testing: what tests of puregrpc programs (and of puregrpc) use.

* :func:`serve_in_memory` serves services (or a given
  :class:`~puregrpc.server.Server`) for an ``async with`` block over
  ``trio.testing.memory_stream_pair()`` connections, with no socket at all;
  its :class:`InMemoryServer` handle makes stubs (``served.stub(EchoStub)``)
  and channels (``async with served.channel() as channel:``), and can break
  its connections (``await served.drop_connections()``).
* :func:`stub_factory` wraps a channel in a :class:`StubFactory`
  (``make(EchoStub)``), the type of the ``puregrpc_stub`` fixture.
* A pytest plugin (the top-level module ``_puregrpc_pytestplugin``,
  registered as ``puregrpc`` under ``pytest11``, so active wherever puregrpc
  is installed, and importing nothing of puregrpc until a test asks for its
  fixtures): ``puregrpc_services`` (override it to list what to serve),
  ``puregrpc_interceptors``, ``puregrpc_server_options``,
  ``puregrpc_channel_options``, and the trio fixtures built on them,
  ``puregrpc_server`` (the :class:`InMemoryServer`), ``puregrpc_channel`` and
  ``puregrpc_stub`` (``puregrpc_stub(EchoStub)``). See ``docs/testing.md``.
* :mod:`puregrpc.testing.protos` holds a small ``puregrpc.testing.Echo``
  service (``proto/puregrpc/testing/echo.proto``) with its generated modules:
  all four call types over a one-field message, for tests and examples that
  need a real protobuf service without defining one.
"""

from ._in_memory import InMemoryServer as InMemoryServer
from ._in_memory import ServiceLike as ServiceLike
from ._in_memory import StubFactory as StubFactory
from ._in_memory import serve_in_memory as serve_in_memory
from ._in_memory import stub_factory as stub_factory

__all__ = ["InMemoryServer", "ServiceLike", "StubFactory", "serve_in_memory", "stub_factory"]
