"""The ``ServerReflection`` service, v1 and v1alpha, over one server's handler table.

grpc/grpc ``doc/server-reflection.md``: a client (grpcurl, grpc_cli,
Postman, grpcio-reflection's descriptor database) opens one bidi stream and
asks, one request at a time, for the services listed on the server and for
the ``FileDescriptorProto``s that describe them; each request gets exactly
one response, which echoes the request.

The two versions are the same protocol in two packages: their messages have
the same fields with the same numbers. One :class:`ReflectionSession` answers in v1
messages; the v1alpha handler converts each request and answer through
bytes, which is exact because the wire formats are identical.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.descriptor_pool import DescriptorPool

from ..server import MethodHandler, RequestIterator, Server, ServicerContext
from ..wire import StatusCode
from ._lookup import DescriptorLookup, NotFoundError
from .protos.v1 import reflection_pb2 as v1
from .protos.v1 import reflection_puregrpc as v1_services
from .protos.v1alpha import reflection_pb2 as v1alpha
from .protos.v1alpha import reflection_puregrpc as v1alpha_services

__all__ = ["SERVICE_NAMES", "ReflectionService", "enable_reflection"]

#: The services :func:`enable_reflection` adds.
SERVICE_NAMES = (
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
)

#: What a request may ask, for the error on a request that asks nothing.
_REQUEST_KINDS = ", ".join(
    field.name
    for field in v1.ServerReflectionRequest.DESCRIPTOR.oneofs_by_name["message_request"].fields
)


def enable_reflection(server: Server, *, pool: DescriptorPool | None = None) -> ReflectionService:
    """Serve reflection (v1 and v1alpha) on ``server``: the one line to add.

    Describes the services registered on ``server`` when a client asks (so
    services added later are listed too, as is reflection itself) from the
    descriptors in ``pool``, by default protobuf's default pool, where every
    imported ``_pb2`` module registers its file (so import those of the files
    declaring your services). Raises ValueError if reflection is already
    enabled on ``server``.
    """
    service = ReflectionService(server, pool=pool)
    server.add_service(service)
    return service


class ReflectionService:
    """Both versions of ``ServerReflection`` for one server (see :func:`enable_reflection`).

    It lists the services of the server it was made for, so add it to that
    server only: :func:`enable_reflection` does both at once.
    """

    def __init__(self, server: Server, *, pool: DescriptorPool | None = None) -> None:
        """Describe ``server``'s services from ``pool`` (default: protobuf's default pool)."""
        self._server = server
        self._lookup = DescriptorLookup(descriptor_pool.Default() if pool is None else pool)
        self._v1 = _V1Servicer(self)
        self._v1alpha = _V1AlphaServicer(self)

    def service_names(self) -> list[str]:
        """The services registered on the server, sorted: what list_services answers."""
        # Paths are "/package.Service/Method".
        return sorted({path[1:].rpartition("/")[0] for path in self._server.handlers})

    def open_session(self) -> ReflectionSession:
        """The state of one reflection stream (which files it has sent).

        ``session.answer(request)`` answers one ``ServerReflectionRequest``
        without a call: what each reflection stream does, for tools and tests.
        """
        return ReflectionSession(self._lookup, self.service_names)

    def __puregrpc_handlers__(self) -> Mapping[str, MethodHandler]:
        """The server's table of both versions: method path -> handler."""
        return {
            **self._v1.__puregrpc_handlers__(),
            **self._v1alpha.__puregrpc_handlers__(),
        }


class ReflectionSession:
    """Answers the requests of one stream, remembering the files it has sent."""

    def __init__(self, lookup: DescriptorLookup, service_names: Callable[[], list[str]]) -> None:
        self._lookup = lookup
        self._service_names = service_names
        #: Names of the files this stream has sent.
        self._sent: set[str] = set()

    def answer(self, request: v1.ServerReflectionRequest) -> v1.ServerReflectionResponse:
        """The one response to ``request``: what it asks for, or an ErrorResponse."""
        response = v1.ServerReflectionResponse(valid_host=request.host, original_request=request)
        kind = request.WhichOneof("message_request")
        try:
            if kind == "file_by_filename":
                self._send_file(response, self._lookup.file_by_name(request.file_by_filename))
            elif kind == "file_containing_symbol":
                symbol = request.file_containing_symbol
                self._send_file(response, self._lookup.file_containing_symbol(symbol))
            elif kind == "file_containing_extension":
                extension = request.file_containing_extension
                file = self._lookup.file_containing_extension(
                    extension.containing_type, extension.extension_number
                )
                self._send_file(response, file)
            elif kind == "all_extension_numbers_of_type":
                name, numbers = self._lookup.extension_numbers(
                    request.all_extension_numbers_of_type
                )
                answer = response.all_extension_numbers_response
                answer.base_type_name = name
                answer.extension_number.extend(numbers)
            elif kind == "list_services":
                response.list_services_response.service.extend(
                    v1.ServiceResponse(name=name) for name in self._service_names()
                )
            else:
                # Nothing set, or a field of a newer reflection.proto we do not know.
                _error(
                    response,
                    StatusCode.INVALID_ARGUMENT,
                    f"the request asks for nothing known: set one of {_REQUEST_KINDS}",
                )
        except NotFoundError as exc:
            _error(response, StatusCode.NOT_FOUND, str(exc))
        return response

    def _send_file(self, response: v1.ServerReflectionResponse, file: FileDescriptor) -> None:
        files = self._lookup.with_dependencies(file, self._sent)
        response.file_descriptor_response.file_descriptor_proto.extend(files)


def _error(response: v1.ServerReflectionResponse, code: StatusCode, message: str) -> None:
    response.error_response.error_code = int(code)
    response.error_response.error_message = message


class _V1Servicer(v1_services.ServerReflectionServicer):
    """``grpc.reflection.v1.ServerReflection``."""

    def __init__(self, service: ReflectionService) -> None:
        self._service = service

    async def ServerReflectionInfo(
        self,
        requests: RequestIterator[v1.ServerReflectionRequest],
        context: ServicerContext,
    ) -> AsyncIterator[v1.ServerReflectionResponse]:
        """One response per request, until the client half-closes."""
        session = self._service.open_session()
        async for request in requests:
            yield session.answer(request)


class _V1AlphaServicer(v1alpha_services.ServerReflectionServicer):
    """``grpc.reflection.v1alpha.ServerReflection``, answered by the v1 session."""

    def __init__(self, service: ReflectionService) -> None:
        self._service = service

    async def ServerReflectionInfo(
        self,
        requests: RequestIterator[v1alpha.ServerReflectionRequest],
        context: ServicerContext,
    ) -> AsyncIterator[v1alpha.ServerReflectionResponse]:
        """One response per request, until the client half-closes."""
        session = self._service.open_session()
        async for request in requests:
            answer = session.answer(
                v1.ServerReflectionRequest.FromString(request.SerializeToString())
            )
            yield v1alpha.ServerReflectionResponse.FromString(answer.SerializeToString())
