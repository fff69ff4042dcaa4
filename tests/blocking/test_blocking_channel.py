"""The blocking client: every call type from plain synchronous code, on two servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from blocking_support import Echo, grpcio_echo, puregrpc_echo

from puregrpc import RpcError, StatusCode
from puregrpc.blocking import BlockingChannel
from puregrpc.client import CallOptions
from puregrpc.testing.protos.echo_pb2 import EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoBlockingStub

HERE = Path(__file__).resolve().parent


def _four_call_types(port: int) -> None:
    with BlockingChannel(f"127.0.0.1:{port}") as channel:
        stub = EchoBlockingStub(channel)
        assert stub.Unary(EchoRequest(message="one"), timeout=5).message == "one"
        replies = stub.ServerStream(EchoRequest(message="s", count=3), timeout=5)
        assert [r.index for r in replies] == [0, 1, 2]
        assert replies.code is StatusCode.OK
        joined = stub.ClientStream(EchoRequest(message=m) for m in "abc")
        assert joined.message == "a+b+c"
        echoed = stub.Bidi([EchoRequest(message="x"), EchoRequest(message="y")], timeout=5)
        assert [r.message for r in echoed] == ["x", "y"]
        with pytest.raises(RpcError) as caught:
            stub.Unary(EchoRequest(message="fail"), timeout=5)
        assert caught.value.code is StatusCode.INVALID_ARGUMENT
        assert caught.value.details == "asked to fail"


def test_four_call_types_against_puregrpc() -> None:
    service = Echo()
    with puregrpc_echo(service) as port:
        _four_call_types(port)
        with BlockingChannel(f"127.0.0.1:{port}") as channel:
            EchoBlockingStub(channel).Unary(
                EchoRequest(), options=CallOptions(metadata=[("x-script", "yes")])
            )
    assert service.metadata[-1]["x-script"] == "yes"


def test_four_call_types_against_grpcio() -> None:
    with grpcio_echo() as port:
        _four_call_types(port)


def test_a_timeout_ends_a_waiting_call_deadline_exceeded() -> None:
    with puregrpc_echo(Echo()) as port, BlockingChannel(f"127.0.0.1:{port}") as channel:
        call = EchoBlockingStub(channel).Bidi(timeout=0.3)  # sends nothing: no response comes
        started = time.monotonic()
        with pytest.raises(RpcError) as caught:
            call.receive()
        assert time.monotonic() - started < 5
    assert caught.value.code is StatusCode.DEADLINE_EXCEEDED


def test_bidi_send_and_receive_in_turn_and_a_blocking_generator() -> None:
    with puregrpc_echo(Echo()) as port, BlockingChannel(f"127.0.0.1:{port}") as channel:
        stub = EchoBlockingStub(channel)
        call = stub.Bidi(timeout=5)
        for word in ("ping", "pong"):
            call.send(EchoRequest(message=word))
            reply = call.receive()
            assert reply is not None and reply.message == word
        call.done_writing()
        assert call.receive() is None
        assert call.code is StatusCode.OK

        def slow_requests() -> Iterator[EchoRequest]:
            for word in ("a", "b"):
                time.sleep(0.05)  # blocks: stepped in a worker thread, not the trio loop
                yield EchoRequest(message=word)

        assert stub.ClientStream(slow_requests(), timeout=5).message == "a+b"
        assert [r.message for r in stub.Bidi(slow_requests(), timeout=5)] == ["a", "b"]


def test_leaving_a_stream_early_cancels_it_on_the_server() -> None:
    service = Echo()
    with puregrpc_echo(service) as port, BlockingChannel(f"127.0.0.1:{port}") as channel:
        with EchoBlockingStub(channel).ServerStream(EchoRequest(count=-1), timeout=10) as replies:
            assert next(replies).index == 0
        assert service.cancelled.wait(5)
        assert replies.code is StatusCode.CANCELLED


def test_a_failing_request_iterator_cancels_the_call_with_its_error() -> None:
    def broken() -> Iterator[EchoRequest]:
        yield EchoRequest(message="a")
        raise OSError("disk went away")

    with puregrpc_echo(Echo()) as port, BlockingChannel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(RpcError) as caught:
            EchoBlockingStub(channel).ClientStream(broken(), timeout=5)
        assert EchoBlockingStub(channel).Unary(EchoRequest(message="ok")).message == "ok"
    assert caught.value.code is StatusCode.CANCELLED
    assert "OSError: disk went away" in caught.value.details


def test_close_stops_the_thread_and_later_calls_say_so() -> None:
    with puregrpc_echo(Echo()) as port:
        channel = BlockingChannel(f"127.0.0.1:{port}")
        assert EchoBlockingStub(channel).Unary(EchoRequest(message="a")).message == "a"
        assert "open" in repr(channel)
        channel.close()
        channel.close()  # idempotent
        assert "closed" in repr(channel)
        with pytest.raises(RuntimeError, match="the blocking channel is closed"):
            EchoBlockingStub(channel).Unary(EchoRequest())
    assert not [t for t in threading.enumerate() if t.name.startswith("puregrpc channel")]


def test_a_bad_target_fails_in_the_callers_thread() -> None:
    with pytest.raises(ValueError):
        BlockingChannel("unix:")


INTERRUPTED = """
import sys, time
from blocking_support import Echo, puregrpc_echo
from puregrpc.blocking import BlockingChannel
from puregrpc.testing.protos.echo_pb2 import EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoBlockingStub

service = Echo()
with puregrpc_echo(service) as port, BlockingChannel(f"127.0.0.1:{port}") as channel:
    call = EchoBlockingStub(channel).Bidi(timeout=30)
    call.send(EchoRequest(message="first"))
    assert call.receive().message == "first"
    print("waiting", flush=True)
    started = time.monotonic()
    try:
        call.receive()  # the server sends nothing more: only Ctrl-C ends this
    except KeyboardInterrupt:
        print("interrupted after %.1f s" % (time.monotonic() - started), flush=True)
    print("server saw cancel:", service.cancelled.wait(5), flush=True)
    print("code:", call.code.name, flush=True)
"""


def test_ctrl_c_cancels_the_call_in_flight() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED],
        cwd=HERE,
        env=dict(os.environ, PYTHONPATH=str(HERE)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "waiting"
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        output, errors = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, errors
    lines = output.splitlines()
    assert lines[0].startswith("interrupted after ")
    assert lines[1:] == ["server saw cancel: True", "code: CANCELLED"]
