"""Who is calling: bearer tokens, client certificates, and open development mode.

Before issue #14 any client could claim any chat user with ``user-id``
metadata, and the server had no notion of a caller at all.
"""

from __future__ import annotations

import json
import logging
import ssl
from pathlib import Path

import pytest
import trio
import trustme
from service_support import running, wait_until, write_leaf

from puregrpc import RpcError, StatusCode
from puregrpc.client import CallOptions, Channel, ChannelOptions
from puregrpc.health.protos.health_pb2 import HealthCheckRequest
from puregrpc.health.protos.health_puregrpc import HealthStub
from puregrpc_streaming.identity import (
    Identity,
    TokenTableError,
    load_token_file,
    parse_token_spec,
)
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

ANN = "ann-token-0123456789"
BOB = "bob-token-0123456789"
TOKENS = {
    ANN: Identity(user_id="ann"),
    BOB: Identity(user_id="bob", roles=frozenset({"admin"})),
}


def bearer(token: str) -> ChannelOptions:
    """Channel options sending ``token`` with every call."""
    return ChannelOptions(
        call_defaults=CallOptions(metadata=[("authorization", f"Bearer {token}")])
    )


# ------------------------------------------------------------------ tables


def test_token_lines_and_toml(tmp_path: Path) -> None:
    lines = tmp_path / "tokens.txt"
    lines.write_text(f"# comment\n\n{ANN}:ann\n{BOB}:bob:admin, ops\n")
    assert load_token_file(lines) == {
        ANN: Identity(user_id="ann"),
        BOB: Identity(user_id="bob", roles=frozenset({"admin", "ops"})),
    }
    toml = tmp_path / "tokens.toml"
    toml.write_text(f'[[tokens]]\ntoken = "{ANN}"\nuser = "ann"\nroles = ["admin"]\n')
    assert load_token_file(toml) == {ANN: Identity(user_id="ann", roles=frozenset({"admin"}))}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("short:ann\n", "tokens.txt:1: the token must be 8..512"),
        (f"{ANN}:ann\n{ANN}:bob\n", "tokens.txt:2: this token is already given to user 'ann'"),
        (f"{ANN}\n", "tokens.txt:1: expected TOKEN:USER"),
        (f"{ANN}:a b\n", "the user id must be"),
        ("# nothing\n", "defines no tokens"),
    ],
)
def test_bad_token_files_are_named_with_their_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(text)
    with pytest.raises(TokenTableError, match=needle):
        load_token_file(path)


def test_token_flag() -> None:
    assert parse_token_spec(f"{ANN}:ann:admin") == (
        ANN,
        Identity(user_id="ann", roles=frozenset({"admin"})),
    )
    with pytest.raises(TokenTableError, match="--token: expected"):
        parse_token_spec("nocolons")


# ------------------------------------------------------------------ tokens


async def test_calls_need_a_valid_token_but_health_does_not(tmp_path: Path) -> None:
    async with running(tmp_path, tokens=TOKENS) as served:
        metric = [pb.Metric(name="m", value=1.0)]
        with pytest.raises(RpcError) as missing:
            await served.stub.CollectMetrics(metric)
        assert missing.value.code is StatusCode.UNAUTHENTICATED
        assert "needs a bearer token" in missing.value.details
        wrong = [("authorization", "Bearer not-a-known-token")]
        with pytest.raises(RpcError) as bad:
            await served.stub.CollectMetrics(metric, metadata=wrong)
        assert bad.value.code is StatusCode.UNAUTHENTICATED
        assert "not valid" in bad.value.details
        health = await HealthStub(served.channel).Check(HealthCheckRequest(), timeout=5)
        assert health.status == health.SERVING
        async with Channel(served.address, options=bearer(ANN)) as channel:
            summary = await StreamingServiceStub(channel).CollectMetrics(metric, timeout=5)
        assert summary.total_count == 1


async def test_chat_user_is_the_token_user_whatever_the_client_claims(tmp_path: Path) -> None:
    async with (
        running(tmp_path, tokens=TOKENS) as served,
        Channel(served.address, options=bearer(ANN)) as channel,
    ):
        stub = StreamingServiceStub(channel)
        with pytest.raises(RpcError) as caught, trio.fail_after(5):
            async with stub.Chat(metadata=[("user-id", "bob"), ("room-id", "r")]) as call:
                await call.receive()
        assert caught.value.code is StatusCode.PERMISSION_DENIED
        assert "'bob' is not the authenticated user 'ann'" in caught.value.details
        with trio.fail_after(5):
            async with stub.Chat(metadata=[("room-id", "r")]) as call:
                await call.send(pb.ChatMessage(user_id="bob", content="hello"))
                message = await call.receive()
                while message is not None and message.user_id == "system":
                    message = await call.receive()
                await call.done_writing()
        assert message is not None
        assert (message.user_id, message.content) == ("ann", "hello")


async def test_sync_changes_name_the_token_user(tmp_path: Path) -> None:
    async with (
        running(tmp_path, tokens=TOKENS) as served,
        Channel(served.address, options=bearer(ANN)) as channel,
    ):
        stub = StreamingServiceStub(channel)
        with trio.fail_after(5):
            async with stub.WatchEvents(pb.WatchRequest(event_types=["sync.changed"])) as watch:
                await watch.initial_metadata()
                async with stub.SyncData() as sync:
                    await sync.send(pb.SyncRequest(key="k", value=b"v"))
                    ack = await sync.receive()
                    await sync.done_writing()
                event = await watch.receive()
                while event is not None and event.type == "heartbeat":
                    event = await watch.receive()
        assert ack is not None and ack.kind == pb.SyncResponse.ACK
        assert event is not None and json.loads(event.payload)["user_id"] == "ann"


# --------------------------------------------------------------- mutual TLS


async def test_mutual_tls_user_from_the_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert_file, key_file = write_leaf(ca.issue_cert("localhost", "127.0.0.1"), tmp_path, "server")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    def client_context(cert: trustme.LeafCert | None) -> ssl.SSLContext:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        if cert is not None:
            cert.configure_cert(context)
        return context

    async def chat_as(context: ssl.SSLContext, address: str) -> str:
        async with Channel(address, ssl_context=context) as channel:
            stub = StreamingServiceStub(channel)
            with trio.fail_after(5):
                async with stub.Chat(metadata=[("room-id", "tls")]) as call:
                    await call.send(pb.ChatMessage(content="hi"))
                    message = await call.receive()
                    while message is not None and message.user_id == "system":
                        message = await call.receive()
                    await call.done_writing()
        assert message is not None
        return message.user_id

    async with running(
        tmp_path / "data", tls_cert=cert_file, tls_key=key_file, client_ca=ca_file
    ) as served:
        peers = served.running.service.authentication
        assert not peers.open_mode
        by_cn = client_context(ca.issue_cert("ignored.example", common_name="carol"))
        assert await chat_as(by_cn, served.address) == "carol"
        by_san = client_context(ca.issue_cert("dave@example.org"))
        assert await chat_as(by_san, served.address) == "dave@example.org"
        with pytest.raises(RpcError) as caught:
            await chat_as(client_context(None), served.address)
        assert caught.value.code is StatusCode.UNAUTHENTICATED
        assert "client certificate" in caught.value.details


# ---------------------------------------------------------------- open mode


async def test_open_mode_is_announced_first_and_chat_takes_the_declared_user(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="puregrpc_streaming")
    async with running(tmp_path) as served:
        first = next(r for r in caplog.records if r.name.startswith("puregrpc_streaming"))
        assert "open development mode" in first.getMessage()
        assert first.levelno == logging.WARNING
        with trio.fail_after(5):
            async with served.stub.Chat(metadata=[("user-id", "eve"), ("room-id", "r")]) as call:
                await call.send(pb.ChatMessage(content="hi"))
                message = await call.receive()
                while message is not None and message.user_id == "system":
                    message = await call.receive()
                await call.done_writing()
        assert message is not None and message.user_id == "eve"
        await wait_until(lambda: served.running.service.active_calls["Chat"] == 0)
