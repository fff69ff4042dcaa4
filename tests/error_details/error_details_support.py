"""Scenarios, servers and clients shared by the rich-error tests.

Every test method takes and returns raw bytes (``raw_method``). The request
of FAIL and STREAM_FAIL names a :data:`SCENARIOS` entry: the handler ends
its call with that scenario's code, message and details, through
:func:`puregrpc.error_details.rich_error` on the puregrpc server and through
grpcio-status's ``to_status`` + ``context.abort_with_status`` on the grpcio
one, so one expectation checks both servers.

* :func:`running_server` serves the puregrpc handlers on ``127.0.0.1:0``;
  :func:`start_grpcio_server` serves the grpcio ones.
* :func:`in_thread` runs blocking grpcio client code from a trio test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import pytest
import trio
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_status import rpc_status

from puregrpc import RpcError, StatusCode
from puregrpc.error_details import (
    BadRequest,
    DebugInfo,
    ErrorInfo,
    Help,
    LocalizedMessage,
    PreconditionFailure,
    QuotaFailure,
    RequestInfo,
    ResourceInfo,
    RetryInfo,
    rich_error,
)
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServicerContext

T = TypeVar("T")

SERVICE = "test.ErrorDetails"

#: Unary: request = a scenario name; ends with that scenario's rich error.
FAIL = raw_method(f"/{SERVICE}/Fail", Cardinality.UNARY_UNARY)
#: Server stream: sends b"one", b"two", then ends like FAIL.
STREAM_FAIL = raw_method(f"/{SERVICE}/StreamFail", Cardinality.UNARY_STREAM)
#: Unary (puregrpc only): ends NOT_FOUND with a google.rpc.Status saying INTERNAL.
MISMATCH = raw_method(f"/{SERVICE}/Mismatch", Cardinality.UNARY_UNARY)
#: Unary (puregrpc only): ends NOT_FOUND with bytes that are no google.rpc.Status.
GARBAGE = raw_method(f"/{SERVICE}/Garbage", Cardinality.UNARY_UNARY)

#: The type URL of a detail no descriptor pool knows.
UNKNOWN_TYPE_URL = "type.googleapis.com/example.test.NotRegistered"


def _unknown_detail() -> any_pb2.Any:
    """An ``Any`` of an unregistered type (field 1 = 7)."""
    return any_pb2.Any(type_url=UNKNOWN_TYPE_URL, value=b"\x08\x07")


@dataclass(frozen=True)
class Scenario:
    """One rich error: the status and details a FAIL handler ends its call with."""

    code: StatusCode
    message: str
    details: list[Message] = field(default_factory=list)


#: Scenario name (the FAIL request) -> the error the handler raises.
SCENARIOS: dict[str, Scenario] = {
    "bad-request": Scenario(
        StatusCode.INVALID_ARGUMENT,
        "Ungültige Anfrage: „E-Mail“ fehlt — 请重试 ✉️",
        [
            BadRequest(
                field_violations=[
                    BadRequest.FieldViolation(field="email", description="darf nicht leer sein"),
                    BadRequest.FieldViolation(field="name", description="名前は必須です"),
                ]
            ),
            LocalizedMessage(locale="ja-JP", message="メールアドレスがありません"),
        ],
    ),
    "retry": Scenario(
        StatusCode.UNAVAILABLE,
        "overloaded, retry later",
        [
            RetryInfo(retry_delay=duration_pb2.Duration(seconds=3, nanos=250_000_000)),
            ErrorInfo(reason="OVERLOADED", domain="example.test", metadata={"zone": "eu-1"}),
        ],
    ),
    "every-type": Scenario(
        StatusCode.FAILED_PRECONDITION,
        "every google.rpc detail type",
        [
            ErrorInfo(reason="R", domain="d.test", metadata={"k": "v"}),
            RetryInfo(retry_delay=duration_pb2.Duration(seconds=1)),
            DebugInfo(stack_entries=["frame 1", "frame 2"], detail="boom"),
            QuotaFailure(
                violations=[QuotaFailure.Violation(subject="project:1", description="too many")]
            ),
            PreconditionFailure(
                violations=[
                    PreconditionFailure.Violation(type="TOS", subject="user:1", description="no")
                ]
            ),
            BadRequest(field_violations=[BadRequest.FieldViolation(field="f")]),
            RequestInfo(request_id="req-1", serving_data="shard 3"),
            ResourceInfo(resource_type="book", resource_name="shelves/1/books/2", owner="me"),
            Help(links=[Help.Link(description="docs", url="https://example.test/help")]),
            LocalizedMessage(locale="fr-FR", message="échec"),
        ],
    ),
    "foreign": Scenario(
        StatusCode.PERMISSION_DENIED,
        "one detail of an unknown type, one outside google.rpc",
        [_unknown_detail(), wrappers_pb2.StringValue(value="a wrapped string")],
    ),
    "no-details": Scenario(StatusCode.ABORTED, "a google.rpc.Status with no details"),
}


def scenario_status(name: str) -> status_pb2.Status:
    """The ``google.rpc.Status`` of scenario ``name``, built by hand (as grpcio users do)."""
    scenario = SCENARIOS[name]
    status = status_pb2.Status(code=int(scenario.code), message=scenario.message)
    for detail in scenario.details:
        if isinstance(detail, any_pb2.Any):
            status.details.append(detail)
        else:
            status.details.add().Pack(detail)
    return status


# ---------------------------------------------------------------- puregrpc side


def pure_handlers() -> list[MethodHandler]:
    """The puregrpc handlers of FAIL, STREAM_FAIL, MISMATCH and GARBAGE."""

    def scenario_error(request: bytes) -> RpcError:
        scenario = SCENARIOS[request.decode()]
        return rich_error(scenario.code, scenario.message, scenario.details)

    async def fail(request: bytes, context: ServicerContext) -> bytes:
        raise scenario_error(request)

    async def stream_fail(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        yield b"one"
        yield b"two"
        raise scenario_error(request)

    async def mismatch(request: bytes, context: ServicerContext) -> bytes:
        wrong = status_pb2.Status(code=int(StatusCode.INTERNAL), message="not found")
        raise RpcError(StatusCode.NOT_FOUND, "not found", details_bin=wrong.SerializeToString())

    async def garbage(request: bytes, context: ServicerContext) -> bytes:
        raise RpcError(StatusCode.NOT_FOUND, "not found", details_bin=b"\xff\xff\xff")

    table: list[tuple[Any, Callable[..., Any]]] = [
        (FAIL, fail),
        (STREAM_FAIL, stream_fail),
        (MISMATCH, mismatch),
        (GARBAGE, garbage),
    ]
    return [MethodHandler(method=method, func=func) for method, func in table]


@asynccontextmanager
async def running_server() -> AsyncIterator[str]:
    """Serve :func:`pure_handlers` on ``127.0.0.1:0`` for the block; yield its target."""
    server = Server(pure_handlers())
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        try:
            yield f"127.0.0.1:{port}"
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await server.stop(grace=0)


async def expect_rpc_error(awaitable: Any) -> RpcError:
    """Await ``awaitable``; return the :class:`RpcError` it must raise."""
    with pytest.raises(RpcError) as info:
        await awaitable
    return info.value


# ---------------------------------------------------------------- grpcio side


def _grpcio_handlers() -> grpc.GenericRpcHandler:
    def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort_with_status(rpc_status.to_status(scenario_status(request.decode())))
        raise AssertionError("abort_with_status returned")

    def stream_fail(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b"one"
        yield b"two"
        context.abort_with_status(rpc_status.to_status(scenario_status(request.decode())))

    def mismatch(request: bytes, context: grpc.ServicerContext) -> bytes:
        wrong = status_pb2.Status(code=int(StatusCode.INTERNAL), message="not found")
        context.set_trailing_metadata((("grpc-status-details-bin", wrong.SerializeToString()),))
        context.abort(grpc.StatusCode.NOT_FOUND, "not found")
        raise AssertionError("abort returned")

    handlers = {
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "StreamFail": grpc.unary_stream_rpc_method_handler(stream_fail),
        "Mismatch": grpc.unary_unary_rpc_method_handler(mismatch),
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


@dataclass
class GrpcioServed:
    """A running grpcio test server."""

    server: grpc.Server
    port: int

    @property
    def target(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"


def start_grpcio_server() -> GrpcioServed:
    """Start a grpcio sync server with the grpcio handlers on 127.0.0.1, port 0."""
    server = grpc.server(ThreadPoolExecutor(max_workers=4), handlers=[_grpcio_handlers()])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return GrpcioServed(server=server, port=port)


def grpcio_code(code: grpc.StatusCode) -> StatusCode:
    """A grpcio status code as puregrpc's :class:`StatusCode`."""
    return StatusCode(code.value[0])


async def in_thread(fn: Callable[[], T]) -> T:
    """Run blocking (grpcio) code in a worker thread; abandon it if cancelled."""
    return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)
