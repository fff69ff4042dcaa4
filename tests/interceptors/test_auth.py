"""AuthInterceptor: UNAUTHENTICATED without credentials, PERMISSION_DENIED without rights."""

from __future__ import annotations

from typing import Any

import pytest
from interceptors_support import COLLECT, HEALTH, UNARY, Things, serving

from puregrpc import Metadata, RpcError, StatusCode
from puregrpc.interceptors import AuthInterceptor, bearer_tokens, identity_of
from puregrpc.runtime import Method

TOKENS = bearer_tokens({"tok-alice": "alice", "tok-bob": "bob"})


def bearer(token: str) -> Metadata:
    return Metadata([("authorization", f"Bearer {token}")])


async def test_no_or_wrong_credentials_are_unauthenticated_and_the_handler_never_runs() -> None:
    things = Things()
    async with serving(things.handlers(), [AuthInterceptor(TOKENS)]) as channel:
        for metadata in (None, bearer("tok-eve"), Metadata([("authorization", "Basic tok-alice")])):
            with pytest.raises(RpcError) as refused:
                await channel.unary_unary(UNARY, b"x", metadata=metadata)
            assert refused.value.code is StatusCode.UNAUTHENTICATED
            assert "/test.Things/Get needs a bearer token" in refused.value.details
        with pytest.raises(RpcError) as streaming:
            await channel.stream_unary(COLLECT, [b"a", b"b"])
        assert streaming.value.code is StatusCode.UNAUTHENTICATED
    assert things.ran == 0


async def test_a_valid_token_runs_the_handler_with_its_identity() -> None:
    things = Things()
    async with serving(things.handlers(), [AuthInterceptor(TOKENS)]) as channel:
        assert await channel.unary_unary(UNARY, b"x", metadata=bearer("tok-bob")) == b"thing:x"
        assert await channel.stream_unary(COLLECT, [b"a", b"b"], metadata=bearer("tok-alice")) == (
            b"a,b"
        )
    assert identity_of(things.contexts[0]) == "bob"


async def test_an_identity_without_rights_is_permission_denied() -> None:
    async def only_alice_writes(identity: object, method: Method[Any, Any]) -> bool:
        return method.name != "Collect" or identity == "alice"

    things = Things()
    auth = AuthInterceptor(TOKENS, authorize=only_alice_writes)
    async with serving(things.handlers(), [auth]) as channel:
        with pytest.raises(RpcError) as denied:
            await channel.stream_unary(COLLECT, [b"a"], metadata=bearer("tok-bob"))
        assert denied.value.code is StatusCode.PERMISSION_DENIED
        assert denied.value.details == "bob may not call /test.Things/Collect"
        assert await channel.stream_unary(COLLECT, [b"a"], metadata=bearer("tok-alice")) == b"a"
        # A plain (not async) authorizer works too.
    sync_auth = AuthInterceptor(TOKENS, authorize=lambda identity, method: identity == "alice")
    async with serving(Things().handlers(), [sync_auth]) as channel:
        with pytest.raises(RpcError) as denied_sync:
            await channel.unary_unary(UNARY, b"x", metadata=bearer("tok-bob"))
        assert denied_sync.value.code is StatusCode.PERMISSION_DENIED


async def test_exempt_services_stay_open() -> None:
    auth = AuthInterceptor(TOKENS, exempt=["grpc.health.v1.Health"])
    async with serving(Things().handlers(), [auth]) as channel:
        assert await channel.unary_unary(HEALTH, b"") == b"SERVING"
        with pytest.raises(RpcError):
            await channel.unary_unary(UNARY, b"x")
    assert auth.is_exempt(HEALTH) and not auth.is_exempt(UNARY)
    by_path = AuthInterceptor(TOKENS, exempt=["/test.Things/Get"])
    assert by_path.is_exempt(UNARY) and not by_path.is_exempt(COLLECT)


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="empty bearer token"):
        bearer_tokens({"": "anyone"})
