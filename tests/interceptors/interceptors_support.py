"""Raw-bytes handlers and an in-memory server (puregrpc.testing) for the interceptor tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from puregrpc import StatusCode
from puregrpc.client import Channel
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import (
    MethodHandler,
    RequestIterator,
    ServerInterceptor,
    ServicerContext,
)
from puregrpc.testing import serve_in_memory

UNARY = raw_method("/test.Things/Get", Cardinality.UNARY_UNARY)
COLLECT = raw_method("/test.Things/Collect", Cardinality.STREAM_UNARY)
HEALTH = raw_method("/grpc.health.v1.Health/Check", Cardinality.UNARY_UNARY)


class Things:
    """Handlers that answer, fail on request, and record who they saw."""

    def __init__(self) -> None:
        self.ran = 0
        self.contexts: list[ServicerContext] = []

    async def get(self, request: bytes, context: ServicerContext) -> bytes:
        self.ran += 1
        self.contexts.append(context)
        if request == b"missing":
            raise KeyError("no such thing")
        if request == b"bad":
            raise ValueError("")
        if request == b"abort":
            await context.abort(StatusCode.ABORTED, "gave up")
        if request == b"bug":
            raise ZeroDivisionError("division by zero")
        return b"thing:" + request

    async def collect(self, requests: RequestIterator[bytes], context: ServicerContext) -> bytes:
        self.ran += 1
        return b",".join([r async for r in requests])

    async def health(self, request: bytes, context: ServicerContext) -> bytes:
        return b"SERVING"

    def handlers(self) -> list[MethodHandler]:
        return [
            MethodHandler(method=UNARY, func=self.get),
            MethodHandler(method=COLLECT, func=self.collect),
            MethodHandler(method=HEALTH, func=self.health),
        ]


@asynccontextmanager
async def serving(
    services: list[Any], interceptors: list[ServerInterceptor]
) -> AsyncIterator[Channel]:
    """A channel to a server with ``interceptors``, over memory streams."""
    async with (
        serve_in_memory(services, interceptors=interceptors, grace=1) as served,
        served.channel() as channel,
    ):
        with trio.fail_after(10):
            yield channel
