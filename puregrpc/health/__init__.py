"""puregrpc.health: the standard gRPC health service (``grpc.health.v1.Health``).

One line on any puregrpc server::

    server.add_service(health := HealthService())

then ``health.set(name, ServingStatus.SERVING)`` as services come up and
``health.enter_graceful_shutdown()`` when the server starts to stop. Clients
speak grpc/grpc ``doc/health-checking.md``: grpcio's ``HealthStub``,
``grpc_health_probe``, Kubernetes gRPC probes, load balancers.

The message classes are in :mod:`puregrpc.health.protos.health_pb2`; their
descriptors share protobuf's default pool with grpcio-health-checking's
(same file name, same content), so both can be imported in one process.
"""

from ._service import LIST_LIMIT as LIST_LIMIT
from ._service import HealthService as HealthService
from ._service import ServingStatus as ServingStatus

__all__ = ["LIST_LIMIT", "HealthService", "ServingStatus"]
