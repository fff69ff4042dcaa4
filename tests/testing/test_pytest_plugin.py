"""The puregrpc pytest plugin, run by pytester in a fresh pytest like a user project's."""

from __future__ import annotations

import re
import textwrap

import pytest

pytest_plugins = ["pytester"]

#: Seconds one inner pytest run may take.
RUN_LIMIT = 120

#: A user's test module: an Echo service, served through the plugin's fixtures.
USER_TESTS = """
import pytest
import trio

from puregrpc import Metadata, RpcError, StatusCode
from puregrpc.client import CallOptions, Channel, ChannelOptions
from puregrpc.interceptors import AuthInterceptor, bearer_tokens
from puregrpc.server import Server, ServerOptions
from puregrpc.testing import InMemoryServer, StubFactory
from puregrpc.testing.protos.echo_pb2 import EchoReply, EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoServicer, EchoStub


class Echo(EchoServicer):
    async def Unary(self, request, context):
        if request.message == "fail":
            raise RpcError(StatusCode.NOT_FOUND, "nothing to echo")
        suffix = context.invocation_metadata().get("x-suffix", "")
        return EchoReply(message=request.message + suffix)

    async def ServerStream(self, request, context):
        for index in range(request.count):
            yield EchoReply(message=request.message, index=index)


@pytest.fixture
def puregrpc_services():
    return [Echo()]


async def test_stub(puregrpc_stub: StubFactory) -> None:
    echo = puregrpc_stub(EchoStub)
    with trio.fail_after(10):
        assert (await echo.Unary(EchoRequest(message="hi"), timeout=5)).message == "hi"
        replies = echo.ServerStream(EchoRequest(message="s", count=3), timeout=5)
        assert [r.index async for r in replies] == [0, 1, 2]


async def test_channel_and_server_share_one_connection(
    puregrpc_server: InMemoryServer, puregrpc_channel: Channel, puregrpc_stub: StubFactory
) -> None:
    with trio.fail_after(10):
        await EchoStub(puregrpc_channel).Unary(EchoRequest(message="a"), timeout=5)
        await puregrpc_stub(EchoStub).Unary(EchoRequest(message="b"), timeout=5)
    assert puregrpc_server.connection_count == 1
    assert "/puregrpc.testing.Echo/Unary" in puregrpc_server.server.handlers


async def test_status_errors(puregrpc_stub: StubFactory) -> None:
    with trio.fail_after(10), pytest.raises(RpcError) as info:
        await puregrpc_stub(EchoStub).Unary(EchoRequest(message="fail"), timeout=5)
    assert info.value.code is StatusCode.NOT_FOUND


async def test_each_test_gets_a_fresh_server(puregrpc_server: InMemoryServer) -> None:
    assert puregrpc_server.connection_count == 0


class TestOverrides:
    @pytest.fixture
    def puregrpc_channel_options(self) -> ChannelOptions:
        return ChannelOptions(
            call_defaults=CallOptions(metadata=[("x-suffix", "!"), ("authorization", "Bearer t")])
        )

    @pytest.fixture
    def puregrpc_interceptors(self):
        return [AuthInterceptor(bearer_tokens({"t": "tester"}))]

    async def test_options_and_interceptors(self, puregrpc_stub: StubFactory) -> None:
        with trio.fail_after(10):
            reply = await puregrpc_stub(EchoStub).Unary(EchoRequest(message="ok"), timeout=5)
        assert reply.message == "ok!"


class TestAGivenServer:
    @pytest.fixture
    def puregrpc_services(self):
        return [Server([Echo()], options=ServerOptions(compression="gzip"))]

    async def test_it_is_the_one_served(self, puregrpc_server: InMemoryServer) -> None:
        assert puregrpc_server.server.options.compression == "gzip"
        with trio.fail_after(10):
            reply = await puregrpc_server.stub(EchoStub).Unary(EchoRequest(message="g"), timeout=5)
        assert reply.message == "g"


async def test_uncaught_rpc_error_fails_the_test(puregrpc_stub: StubFactory) -> None:
    with trio.fail_after(10):
        await puregrpc_stub(EchoStub).Unary(EchoRequest(message="fail"), timeout=5)
"""


@pytest.fixture
def user_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A fresh project directory whose pytest loads installed plugins (as any project's does)."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    return pytester


def test_fixtures_serve_in_memory_in_trio_mode(user_project: pytest.Pytester) -> None:
    user_project.makeini("[pytest]\ntrio_mode = true\nfilterwarnings = error\n")
    user_project.makepyfile(test_user_service=USER_TESTS)
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider", timeout=RUN_LIMIT)
    result.assert_outcomes(passed=6, failed=1)
    # The failing test reports the call's RpcError (pytest-trio puts every
    # test's exception in a group of its own).
    result.stdout.fnmatch_lines(["*puregrpc*RpcError: NOT_FOUND: nothing to echo"])
    result.stdout.fnmatch_lines(["FAILED *::test_uncaught_rpc_error_fails_the_test*"])
    assert re.search(r"plugins: .*\bpuregrpc-", result.stdout.str())


def test_fixtures_work_with_the_trio_marker_outside_trio_mode(
    user_project: pytest.Pytester,
) -> None:
    user_project.makeini("[pytest]\nfilterwarnings = error\n")
    user_project.makepyfile(
        test_marked=textwrap.dedent(
            """
            import pytest
            import trio

            from puregrpc.testing import StubFactory
            from puregrpc.testing.protos.echo_pb2 import EchoReply, EchoRequest
            from puregrpc.testing.protos.echo_puregrpc import EchoServicer, EchoStub


            class Echo(EchoServicer):
                async def Unary(self, request, context):
                    return EchoReply(message=request.message.upper())


            @pytest.fixture
            def puregrpc_services():
                return [Echo()]


            @pytest.mark.trio
            async def test_marked(puregrpc_stub: StubFactory) -> None:
                with trio.fail_after(10):
                    reply = await puregrpc_stub(EchoStub).Unary(EchoRequest(message="up"))
                assert reply.message == "UP"
            """
        )
    )
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider", timeout=RUN_LIMIT)
    result.assert_outcomes(passed=1)


def test_a_project_that_does_not_use_it_loads_nothing(user_project: pytest.Pytester) -> None:
    user_project.makeini("[pytest]\nfilterwarnings = error\n")
    user_project.makepyfile(
        test_unrelated=textwrap.dedent(
            """
            import sys


            def test_nothing_of_puregrpc_is_loaded() -> None:
                loaded = [m for m in sys.modules if m.split(".")[0] in ("puregrpc", "trio", "h2")]
                assert loaded == []


            def test_plain(request) -> None:
                assert request.fixturenames == ["request"]  # no autouse fixture crept in
            """
        )
    )
    # Without pytest-trio, as a project using neither trio nor puregrpc runs.
    result = user_project.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:trio", timeout=RUN_LIMIT
    )
    result.assert_outcomes(passed=2)
    listing = user_project.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:trio", "--fixtures", timeout=RUN_LIMIT
    )
    text = listing.stdout.str()
    for name in ("puregrpc_services", "puregrpc_server", "puregrpc_channel", "puregrpc_stub"):
        assert re.search(rf"^{name}\b", text, re.MULTILINE), f"{name} not listed:\n{text}"
    assert "Makes generated stubs on ``puregrpc_channel``" in text
    # pytest-grpc's names (grpc_channel, grpc_stub...) stay free for it.
    assert not re.search(r"^grpc_", text, re.MULTILINE)
