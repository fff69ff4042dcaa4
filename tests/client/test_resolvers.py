"""Name resolution end to end, with puregrpc servers: dns, ipv6, unix, unix-abstract, static lists.

Also resolvers of the test's own: registered for a scheme, failing, and
counting how often they are asked to look again.
"""

from __future__ import annotations

import collections
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import pytest
import trio

from puregrpc import RpcError, StatusCode
from puregrpc.client import (
    Address,
    BackoffPolicy,
    Channel,
    ChannelOptions,
    ConnectivityState,
    DnsResolver,
    LoadBalancer,
    LoadBalancingConfig,
    Pick,
    PollingResolver,
    StaticResolver,
    SubchannelHandle,
    Target,
    register_load_balancer,
    register_resolver,
    unregister_resolver,
)
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServicerContext

NAME = raw_method("/resolve.Test/Name", Cardinality.UNARY_UNARY)
SLOW = raw_method("/resolve.Test/Slow", Cardinality.UNARY_UNARY)
FAST = BackoffPolicy(initial_backoff=0.05, max_backoff=0.2, jitter=0.1)


def named(name: str) -> Server:
    """A server whose methods answer with its name (SLOW after ``request`` seconds)."""

    async def name_of(request: bytes, context: ServicerContext) -> bytes:
        return name.encode()

    async def slow(request: bytes, context: ServicerContext) -> bytes:
        await trio.sleep(float(request))
        return name.encode()

    return Server([MethodHandler(method=NAME, func=name_of), MethodHandler(method=SLOW, func=slow)])


@asynccontextmanager
async def serving(name: str, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """A named server on ``host``; yields its port."""
    server = named(name)
    async with trio.open_nursery() as nursery:
        port: int = await nursery.start(server.serve, host, 0)
        try:
            yield port
        finally:
            await server.stop(grace=0)


async def call_name(channel: Channel, *, wait_for_ready: bool = False) -> str:
    response = await channel.unary_unary(NAME, b"", timeout=5, wait_for_ready=wait_for_ready)
    return response.decode()


# ------------------------------------------------------------------- dns


async def test_dns_finds_localhost_and_reaches_a_server_on_127_0_0_1() -> None:
    addresses = await DnsResolver("localhost", 1234).resolve()
    assert Address("127.0.0.1", 1234) in addresses
    assert set(addresses) <= {Address("127.0.0.1", 1234), Address("::1", 1234)}
    async with serving("local") as port:
        for target in (f"localhost:{port}", f"dns:localhost:{port}", f"dns:///localhost:{port}"):
            async with Channel(target) as channel:
                with trio.fail_after(10):
                    assert await call_name(channel) == "local"


async def test_a_name_that_does_not_resolve_fails_calls_unavailable_naming_the_target() -> None:
    class Unresolvable(PollingResolver):
        async def resolve(self) -> Sequence[Address]:
            raise OSError("Name or service not known")

    seen: list[ConnectivityState] = []
    async with Channel("dns:///nowhere.test:1", resolver=Unresolvable()) as channel:
        with trio.fail_after(5):
            with pytest.raises(RpcError) as caught:
                await call_name(channel)
            seen.append(channel.get_state())
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert caught.value.details == (
        "cannot resolve dns:///nowhere.test:1: Name or service not known"
    )
    assert seen == [ConnectivityState.TRANSIENT_FAILURE]


async def test_wait_for_ready_waits_through_failed_resolutions_until_one_succeeds() -> None:
    async with serving("late") as port:

        class Flaky(PollingResolver):
            async def resolve(self) -> Sequence[Address]:
                if self.resolutions < 3:
                    raise OSError("temporary failure in name resolution")
                return [Address("127.0.0.1", port)]

        resolver = Flaky(backoff=BackoffPolicy(initial_backoff=0.05, jitter=0))
        async with Channel("flaky", resolver=resolver) as channel:
            with trio.fail_after(5):
                assert await call_name(channel, wait_for_ready=True) == "late"
    assert resolver.resolutions == 3


async def test_failing_connections_ask_for_new_resolutions_no_more_than_the_interval_allows() -> (
    None
):
    # Nothing listens: every attempt fails and asks the resolver to look
    # again; with min_interval 0.25 s, 1.2 s of failures allow about 5.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    class Counting(PollingResolver):
        async def resolve(self) -> Sequence[Address]:
            return [Address("127.0.0.1", port)]

    resolver = Counting(min_interval=0.25)
    options = ChannelOptions(backoff=BackoffPolicy(initial_backoff=0.01, max_backoff=0.02))
    async with Channel("counting", resolver=resolver, options=options) as channel:
        with trio.fail_after(5):
            started = trio.current_time()
            failures = 0
            while trio.current_time() - started < 1.2:
                try:
                    await call_name(channel)
                except RpcError:
                    failures += 1
                await trio.sleep(0.01)
    assert failures >= 10, "the connection kept failing"
    assert 3 <= resolver.resolutions <= 7, resolver.resolutions


async def test_the_channel_is_connecting_while_its_name_resolves() -> None:
    async with serving("resolved") as port:
        release = trio.Event()

        class Slow(PollingResolver):
            async def resolve(self) -> Sequence[Address]:
                await release.wait()
                return [Address("127.0.0.1", port)]

        async with Channel("slow", resolver=Slow()) as channel:
            with trio.fail_after(5):
                assert channel.get_state(try_to_connect=True) is ConnectivityState.IDLE
                assert channel.get_state() is ConnectivityState.CONNECTING
                await trio.sleep(0.05)
                assert channel.get_state() is ConnectivityState.CONNECTING
                release.set()
                await channel.channel_ready()
                assert await call_name(channel, wait_for_ready=False) == "resolved"


async def test_round_robin_over_a_list_with_a_dead_address_sends_every_call_to_the_live_one() -> (
    None
):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    options = ChannelOptions(load_balancing="round_robin", backoff=FAST)
    async with serving("alive") as port:
        target = f"ipv4:127.0.0.1:{dead},127.0.0.1:{port}"
        async with Channel(target, options=options) as channel:
            with trio.fail_after(10):
                await channel.channel_ready()
                # Fail-fast calls: the dead address is never picked, so none fails.
                names = [await call_name(channel, wait_for_ready=False) for _ in range(100)]
                assert channel.get_state() is ConnectivityState.READY
    assert names == ["alive"] * 100


# ------------------------------------------------------------------ ipv6


async def test_ipv6_targets_reach_a_server_on_the_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    async with serving("six", host="::1") as port:
        for target in (f"ipv6:[::1]:{port}", f"[::1]:{port}"):
            async with Channel(target) as channel:
                with trio.fail_after(5):
                    assert await call_name(channel) == "six"


# ------------------------------------------------------------------ unix


async def test_unix_targets_in_both_forms_reach_a_unix_socket_server() -> None:
    server = named("unix")
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "grpc.sock")
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(server.serve_unix, path)
                for target in (f"unix:{path}", f"unix://{path}"):
                    async with Channel(target) as channel:
                        assert await call_name(channel) == "unix"
                await server.stop(grace=0)


async def test_unix_abstract_target_reaches_a_server_on_an_abstract_socket() -> None:
    if not hasattr(socket, "AF_UNIX") or os.uname().sysname != "Linux":
        pytest.skip("abstract Unix sockets are a Linux feature")
    name = f"puregrpc-test-{os.getpid()}-{id(object())}"
    server = named("abstract")
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind("\0" + name)
    sock.listen()
    listener = trio.SocketListener(sock)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:

            async def accept_one_at_a_time() -> None:
                while True:
                    stream = await listener.accept()
                    nursery.start_soon(server.handle_stream, stream)

            nursery.start_soon(accept_one_at_a_time)
            async with Channel(f"unix-abstract:{name}") as channel:
                assert await call_name(channel) == "abstract"
            await server.stop(grace=0)
            nursery.cancel_scope.cancel()
    await listener.aclose()


# --------------------------------------------------------- static lists


async def test_a_static_list_changed_while_calls_run_adds_and_removes_backends() -> None:
    async with serving("a") as port_a, serving("b") as port_b:
        a, b = Address("127.0.0.1", port_a), Address("127.0.0.1", port_b)
        resolver = StaticResolver([a])
        options = ChannelOptions(load_balancing="round_robin", backoff=FAST)
        failures: list[RpcError] = []
        seen: list[str] = []
        async with Channel("backends", resolver=resolver, options=options) as channel:

            async def until(condition: str, limit: int = 2000) -> None:
                for _ in range(limit):
                    if condition == "b joined" and seen[-20:].count("b") >= 5:
                        return
                    await trio.sleep(0.001)
                raise AssertionError(f"never saw {condition}: {seen[-20:]}")

            stop = trio.Event()

            async def caller() -> None:
                while not stop.is_set():
                    try:
                        seen.append(await call_name(channel))
                    except RpcError as exc:
                        failures.append(exc)

            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(caller)
                    nursery.start_soon(caller)
                    for _ in range(5000):
                        if len(seen) >= 50:
                            break
                        await trio.sleep(0.001)
                    assert set(seen) == {"a"}
                    resolver.set_addresses([a, b])
                    await until("b joined")
                    # A slow call on a, in flight while a leaves the list: it finishes.
                    slow_on_a = None
                    for _ in range(10):
                        answer = await channel.unary_unary(SLOW, b"0.3", timeout=5)
                        if answer == b"a":
                            slow_on_a = answer
                            break
                    assert slow_on_a == b"a"

                    # The callers pause, so that round_robin's alternation is
                    # the slow calls' own: of two calls, one lands on a.
                    stop.set()
                    await trio.sleep(0.05)

                    async def slow_call() -> None:
                        answers.append(await channel.unary_unary(SLOW, b"0.3", timeout=5))

                    answers: list[bytes] = []
                    nursery.start_soon(slow_call)
                    nursery.start_soon(slow_call)
                    await trio.sleep(0.1)
                    resolver.set_addresses([b])  # a leaves with a call in flight on it
                    for _ in range(20):
                        seen.append(await call_name(channel))
                    assert seen[-20:] == ["b"] * 20, "a left the rotation"
        assert sorted(answers) == [b"a", b"b"], "the call in flight on a finished"
        assert failures == []
        counts = collections.Counter(seen)
        assert counts["a"] >= 50 and counts["b"] >= 25


async def test_an_empty_static_list_fails_calls_and_a_new_list_heals_the_channel() -> None:
    async with serving("healed") as port:
        resolver = StaticResolver([])
        async with Channel("empty", resolver=resolver) as channel:
            with trio.fail_after(5):
                with pytest.raises(RpcError) as caught:
                    await call_name(channel)
                assert "cannot resolve empty: the resolver's address list is empty" in (
                    caught.value.details
                )
                resolver.set_addresses([Address("127.0.0.1", port)])
                assert await call_name(channel) == "healed"


# ------------------------------------------------------ registered schemes


async def test_a_registered_scheme_resolves_targets_of_that_scheme() -> None:
    async with serving("registered") as port:
        targets: list[Target] = []

        def factory(target: Target) -> StaticResolver:
            targets.append(target)
            if target.endpoint != "my-service":
                raise ValueError(f"unknown service {target.endpoint!r}")
            return StaticResolver([Address("127.0.0.1", port)])

        register_resolver("registry", factory)
        try:
            with pytest.raises(ValueError, match="unknown service 'other'"):
                Channel("registry:other")
            async with Channel("registry:///my-service") as channel:
                with trio.fail_after(5):
                    assert await call_name(channel) == "registered"
        finally:
            unregister_resolver("registry")
        assert targets[-1] == Target(
            text="registry:///my-service", scheme="registry", authority="", endpoint="my-service"
        )
        # Unregistered, the scheme means nothing: "registry:other" is a DNS host and port.
        with pytest.raises(ValueError, match="invalid port 'other'"):
            Channel("registry:other")


def test_scheme_names_are_checked_when_registered() -> None:
    with pytest.raises(ValueError, match="not a URI scheme"):
        register_resolver("Not A Scheme", lambda target: StaticResolver([]))


# ------------------------------------------------------- policies of one's own


class LastReadyBalancer(LoadBalancer):
    """Connects everything; every call to the last READY subchannel of the list."""

    def update_subchannels(self, subchannels: Sequence[SubchannelHandle], now: float) -> None:
        self._subchannels = tuple(subchannels)

    def subchannel_changed(self, subchannel: SubchannelHandle, now: float) -> None:
        pass

    def exit_idle(self, now: float) -> None:
        for sub in self.subchannels:
            sub.request_connection()

    def pick(self, now: float) -> Pick:
        self.exit_idle(now)
        ready = [sub for sub in self.subchannels if sub.state is ConnectivityState.READY]
        return Pick(ready[-1]) if ready else Pick()


class LastReady(LoadBalancingConfig):
    name: ClassVar[str] = "last_ready"

    def build(self) -> LastReadyBalancer:
        return LastReadyBalancer()

    @classmethod
    def from_json(cls, config: Mapping[str, Any]) -> LastReady:
        return cls()


async def test_a_registered_policy_chosen_by_name_decides_where_calls_go() -> None:
    register_load_balancer(LastReady.name, LastReady.from_json)
    options = ChannelOptions(load_balancing="last_ready")
    async with serving("first") as one, serving("second") as two:
        target = f"ipv4:127.0.0.1:{one},127.0.0.1:{two}"
        async with Channel(target, options=options) as channel:
            with trio.fail_after(5):
                while channel.get_state() is not ConnectivityState.READY:
                    channel.get_state(try_to_connect=True)
                    await channel.wait_for_state_change(channel.get_state())
                # Until both are READY, calls go to whichever is; then all to the second.
                for _ in range(500):
                    if await call_name(channel) == "second":
                        break
                    await trio.sleep(0.005)
                names = [await call_name(channel) for _ in range(20)]
    assert names == ["second"] * 20
