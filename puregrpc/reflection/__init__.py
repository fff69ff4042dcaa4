"""puregrpc.reflection: gRPC server reflection (``grpc.reflection.v1`` and ``v1alpha``).

One line on any puregrpc server::

    enable_reflection(server)

and grpcurl, grpc_cli, Postman or grpcio-reflection's descriptor database can
list its services and fetch the ``.proto`` descriptors of their methods and
messages (grpc/grpc ``doc/server-reflection.md``). Descriptors come from
protobuf's default pool, where a ``.proto`` file is registered when its
``_pb2`` module is imported: import the ``_pb2`` module of each file that
declares a service you serve (``*_puregrpc`` modules import only the modules
of their message types, which for a file of services only is not its own).

The message classes are in :mod:`puregrpc.reflection.protos.v1.reflection_pb2`
and :mod:`puregrpc.reflection.protos.v1alpha.reflection_pb2`; the v1alpha
file shares protobuf's default pool with grpcio-reflection's (same file name,
same content), so both can be imported in one process.
"""

from ._service import SERVICE_NAMES as SERVICE_NAMES
from ._service import ReflectionService as ReflectionService
from ._service import ReflectionSession as ReflectionSession
from ._service import enable_reflection as enable_reflection

__all__ = ["SERVICE_NAMES", "ReflectionService", "ReflectionSession", "enable_reflection"]
