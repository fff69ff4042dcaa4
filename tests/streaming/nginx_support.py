"""Debian's nginx in front of real puregrpc-streaming instances, for the tests.

:func:`nginx_binary` is the fixture that skips (with the reason) where nginx
with gRPC support is missing; :func:`cluster` runs instances A and B
(``puregrpc-streaming serve`` subprocesses on one data directory) behind an
nginx of the test's own on a free loopback port, and a channel through it
that records which instance served each call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import trio

from puregrpc_streaming.client_helpers import open_channel
from puregrpc_streaming.cluster import (
    Nginx,
    NginxSettings,
    ServiceInstance,
    UpstreamRecorder,
    find_nginx,
    run_instance,
)
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

__all__ = ["ADMIN_TOKEN", "TOKENS", "Cluster", "cluster", "nginx_binary", "through"]

ADMIN_TOKEN = "nginx-test-admin-token"
#: user -> bearer token of the chat users.
TOKENS = {"ann": "nginx-test-ann-token", "bob": "nginx-test-bob-token"}
ROWS = 300


@pytest.fixture
def nginx_binary() -> str:
    """The nginx binary (skips the test where there is none able to grpc_pass)."""
    binary, why = find_nginx()
    if binary is None:
        pytest.skip(why)
    return binary


@dataclass
class Cluster:
    """Instances behind nginx, and an admin stub calling through nginx."""

    nginx: Nginx
    instances: list[ServiceInstance]
    recorder: UpstreamRecorder
    stub: StreamingServiceStub

    def at(self, address: str) -> ServiceInstance:
        """The instance listening on ``address``."""
        (found,) = [i for i in self.instances if i.address == address]
        return found


def _token_options() -> list[str]:
    options = ["--token", f"{ADMIN_TOKEN}:ops:admin"]
    for user, token in TOKENS.items():
        options += ["--token", f"{token}:{user}"]
    return options


@asynccontextmanager
async def through(
    address: str, token: str = ADMIN_TOKEN
) -> AsyncIterator[tuple[StreamingServiceStub, UpstreamRecorder]]:
    """A stub calling ``address`` with ``token``, and the recorder of its calls."""
    recorder = UpstreamRecorder()
    async with open_channel(address, token=token, interceptors=[recorder]) as channel:
        yield StreamingServiceStub(channel), recorder


@asynccontextmanager
async def cluster(
    tmp_path: Path, binary: str, *options: str, settings: NginxSettings | None = None
) -> AsyncIterator[Cluster]:
    """Instances A and B on ``tmp_path/data`` (plus ``options``) behind nginx."""
    async with AsyncExitStack() as stack:
        instances = [
            await stack.enter_async_context(
                run_instance(
                    name,
                    tmp_path / "data",
                    *("--dataset-rows", str(ROWS), "--log-level", "WARNING"),
                    *_token_options(),
                    *options,
                )
            )
            for name in ("A", "B")
        ]
        upstreams = tuple(i.address for i in instances)
        chosen = replace(settings or NginxSettings(upstreams=upstreams), upstreams=upstreams)
        nginx = Nginx(chosen, tmp_path / "nginx", binary=binary)
        await trio.to_thread.run_sync(nginx.start)
        stack.callback(nginx.stop)
        stub, recorder = await stack.enter_async_context(through(nginx.address))
        yield Cluster(nginx, instances, recorder, stub)
