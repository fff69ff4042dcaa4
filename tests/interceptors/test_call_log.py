"""CallLogInterceptor: a start line and an end line per call, with the status the client sees."""

from __future__ import annotations

import logging
import re

import pytest
import trio
from interceptors_support import COLLECT, UNARY, Things, serving

from puregrpc import RpcError, StatusCode
from puregrpc.interceptors import AuthInterceptor, CallLogInterceptor, bearer_tokens

LOGGER = "test.calls"


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


async def test_ok_calls_log_at_info_with_counts_and_errors_at_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    log = CallLogInterceptor(logging.getLogger(LOGGER))
    async with serving(Things().handlers(), [log]) as channel:
        assert await channel.stream_unary(COLLECT, [b"a", b"b", b"c"], timeout=5) == b"a,b,c"
        with pytest.raises(RpcError):
            await channel.unary_unary(UNARY, b"bug")
    logged = lines(caplog)
    assert logged[0][0] == logging.DEBUG
    assert logged[0][1].startswith("/test.Things/Collect started by ")
    assert re.search(r"\(deadline: [45]\.\d{3} s\)$", logged[0][1])
    level, end = logged[1]
    assert level == logging.INFO
    assert end.startswith("/test.Things/Collect from ")
    assert " ended OK after " in end and end.endswith("3 message(s) in, 1 out")
    assert logged[2][1].endswith("(deadline: none)")
    level, failed = logged[3]
    assert level == logging.WARNING
    assert "ended UNKNOWN: unexpected ZeroDivisionError in the method handler" in failed
    (record,) = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert record.grpc_code == "UNKNOWN"  # type: ignore[attr-defined]
    assert record.grpc_method == "/test.Things/Get"  # type: ignore[attr-defined]


async def test_the_log_sees_what_inner_interceptors_decided(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    interceptors = [
        CallLogInterceptor(logging.getLogger(LOGGER)),
        AuthInterceptor(bearer_tokens({"t": "u"})),
    ]
    async with serving(Things().handlers(), interceptors) as channel:
        with pytest.raises(RpcError) as refused:
            await channel.unary_unary(UNARY, b"x")
    assert refused.value.code is StatusCode.UNAUTHENTICATED
    ((level, end),) = lines(caplog)  # the start line is DEBUG: not logged
    assert level == logging.WARNING
    assert "ended UNAUTHENTICATED: /test.Things/Get needs a bearer token" in end
    assert end.endswith("0 message(s) in, 0 out")


async def test_a_deadline_that_runs_out_is_logged_as_such(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    log = CallLogInterceptor(logging.getLogger(LOGGER), start_level=logging.INFO)

    async def never_ending(requests: object) -> object:
        yield b"one"
        await trio.sleep_forever()

    async with serving(Things().handlers(), [log]) as channel:
        with pytest.raises(RpcError) as expired:
            await channel.stream_unary(COLLECT, never_ending(None), timeout=0.3)
        assert expired.value.code is StatusCode.DEADLINE_EXCEEDED
        await trio.sleep(0.2)  # the server's end of the call logs after the client's
    logged = lines(caplog)
    assert logged[0][0] == logging.INFO and "started by" in logged[0][1]
    assert any("ended DEADLINE_EXCEEDED" in m or "ended CANCELLED" in m for _, m in logged[1:])
