"""ExceptionMappingInterceptor: application exceptions become the statuses they mean."""

from __future__ import annotations

import pytest
from interceptors_support import UNARY, Things, serving

from puregrpc import RpcError, StatusCode
from puregrpc.interceptors import ExceptionMappingInterceptor


async def call_code(mapping: ExceptionMappingInterceptor, request: bytes) -> tuple[StatusCode, str]:
    async with serving(Things().handlers(), [mapping]) as channel:
        try:
            await channel.unary_unary(UNARY, request)
        except RpcError as exc:
            return exc.code, exc.details
    return StatusCode.OK, ""


async def test_a_mapped_exception_ends_the_call_with_its_code_and_text() -> None:
    mapping = ExceptionMappingInterceptor({LookupError: StatusCode.NOT_FOUND})
    assert await call_code(mapping, b"missing") == (StatusCode.NOT_FOUND, "'no such thing'")


async def test_the_most_specific_type_wins_whatever_the_order() -> None:
    mapping = ExceptionMappingInterceptor(
        {LookupError: StatusCode.NOT_FOUND, KeyError: StatusCode.INVALID_ARGUMENT}
    )
    assert (await call_code(mapping, b"missing"))[0] is StatusCode.INVALID_ARGUMENT
    assert mapping.code_for(IndexError()) is StatusCode.NOT_FOUND
    assert mapping.code_for(RuntimeError()) is None


async def test_unmapped_exceptions_and_rpc_errors_pass_unchanged() -> None:
    mapping = ExceptionMappingInterceptor({LookupError: StatusCode.NOT_FOUND})
    assert await call_code(mapping, b"bug") == (
        StatusCode.UNKNOWN,
        "unexpected ZeroDivisionError in the method handler",
    )
    assert await call_code(mapping, b"abort") == (StatusCode.ABORTED, "gave up")
    assert await call_code(mapping, b"x") == (StatusCode.OK, "")


async def test_an_exception_without_text_is_named_and_details_can_be_chosen() -> None:
    plain = ExceptionMappingInterceptor({ValueError: StatusCode.INVALID_ARGUMENT})
    assert await call_code(plain, b"bad") == (StatusCode.INVALID_ARGUMENT, "ValueError")
    redacted = ExceptionMappingInterceptor(
        {LookupError: StatusCode.NOT_FOUND}, details=lambda exc: "not found"
    )
    assert await call_code(redacted, b"missing") == (StatusCode.NOT_FOUND, "not found")


def test_a_mapping_must_name_exception_types_and_failing_codes() -> None:
    with pytest.raises(TypeError, match="not an exception type"):
        ExceptionMappingInterceptor({int: StatusCode.INTERNAL})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="cannot map to OK"):
        ExceptionMappingInterceptor({KeyError: StatusCode.OK})
