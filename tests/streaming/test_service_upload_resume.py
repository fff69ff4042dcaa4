"""Resumable uploads: sessions named by ``upload-id``, resumed from the server's offset.

Before issue #14 an upload that lost its connection was lost entirely: the
next attempt sent the whole file again.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
import trio
from service_support import Relay, Trigger, chunks_of, running

from puregrpc import RpcError, StatusCode
from puregrpc.client import CallOptions, Channel, ChannelOptions
from puregrpc_streaming.backends import LocalFileStore
from puregrpc_streaming.backends.base import UploadSessionBusy
from puregrpc_streaming.backends.upload_sessions import SessionPolicy, session_key
from puregrpc_streaming.cli import amain
from puregrpc_streaming.client_helpers import RetryPolicy, open_channel, upload_file
from puregrpc_streaming.identity import Identity
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub
from puregrpc_streaming.server import ServeConfig, serve

SESSION = [("upload-id", "session-0123456789")]


async def offset_of(stub: StreamingServiceStub, metadata: list[tuple[str, str]]) -> int:
    """The ``upload-offset`` the server answers for a session (the call is then cancelled)."""
    with trio.fail_after(5):
        call = stub.UploadFile(metadata=metadata)
        async with call:
            offset = (await call.initial_metadata()).get("upload-offset")
            if offset is None:
                await call.response()  # the call failed: this raises its RpcError
            call.cancel()
    return int(str(offset))


async def test_an_interrupted_session_resumes_from_the_server_offset(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    chunks = chunks_of(data, "big.bin")
    async with running(tmp_path) as served:
        stub = served.stub
        assert await offset_of(stub, SESSION) == 0
        with trio.fail_after(10):
            call = stub.UploadFile(metadata=SESSION)
            async with call:
                assert (await call.initial_metadata())["upload-offset"] == "0"
                for chunk in chunks[:20]:  # 1.25 MiB, then the client goes away
                    await call.send(chunk)
                with trio.move_on_after(0.3):
                    await trio.sleep_forever()  # the server reads what was sent
                call.cancel()
        store = served.running.backends.files
        await _settled(served.running.service.active_calls, store)
        held = await offset_of(stub, SESSION)
        assert 0 < held <= 20 * 64 * 1024 and held % (64 * 1024) == 0
        with trio.fail_after(10):
            call = stub.UploadFile(metadata=SESSION)
            async with call:
                await call.initial_metadata()
                for chunk in chunks[held // (64 * 1024) :]:
                    await call.send(chunk)
                response = await call.response()
        assert response.size == len(data)
        assert response.checksum == hashlib.sha256(data).hexdigest()  # the whole file
        assert await offset_of(stub, SESSION) == 0  # committed: the session is gone


async def _settled(active: dict[str, int], store: LocalFileStore) -> None:
    with trio.fail_after(5):
        while active["UploadFile"] or store.counters.open_uploads:  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_sessions_are_per_caller_busy_and_of_one_file(tmp_path: Path) -> None:
    tokens = {"ann-token-0123456789": Identity(user_id="ann")}
    tokens["bob-token-0123456789"] = Identity(user_id="bob")

    def channel(token: str, address: str) -> Channel:
        metadata = [("authorization", f"Bearer {token}")]
        return Channel(
            address, options=ChannelOptions(call_defaults=CallOptions(metadata=metadata))
        )

    async with (
        running(tmp_path, tokens=tokens) as served,
        channel("ann-token-0123456789", served.address) as ann_channel,
        channel("bob-token-0123456789", served.address) as bob_channel,
    ):
        ann, bob = StreamingServiceStub(ann_channel), StreamingServiceStub(bob_channel)
        with trio.fail_after(10):
            call = ann.UploadFile(metadata=SESSION)
            async with call:
                await call.initial_metadata()
                await call.send(pb.FileChunk(content=b"x" * 1000, filename="a.txt"))
                with pytest.raises(RpcError) as busy:
                    await offset_of(ann, SESSION)
                assert busy.value.code is StatusCode.ABORTED
                assert await offset_of(bob, SESSION) == 0  # bob's own session, empty
                call.cancel()
        await _settled(served.running.service.active_calls, served.running.backends.files)
        assert await offset_of(ann, SESSION) == 1000
        await _settled(served.running.service.active_calls, served.running.backends.files)
        with pytest.raises(RpcError) as other, trio.fail_after(10):
            call = ann.UploadFile(metadata=SESSION)
            async with call:
                await call.initial_metadata()
                await call.send(pb.FileChunk(content=b"y", offset=1000, filename="b.txt"))
                await call.response()
        assert other.value.code is StatusCode.FAILED_PRECONDITION
        assert "this upload session is for 'a.txt', not 'b.txt'" in other.value.details


async def test_sessions_expire(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files", sessions=SessionPolicy(ttl=0.05))
    await store.prepare()
    try:
        key = session_key("user:ann", "session-0123456789")
        assert await store.claim_session(key) == 0
        sink = await store.resume_upload(key, "f.bin", 0)
        await sink.write(b"kept for a while")
        await sink.suspend()
        assert await store.claim_session(key) == 16
        store.release_session(key)
        await trio.sleep(0.1)
        assert await store.claim_session(key) == 0
        store.release_session(key)
        assert sorted(p.suffix for p in (tmp_path / "files" / "tmp").iterdir()) == [".lock"]
    finally:
        await store.close()
    assert SessionPolicy(ttl=10).expired(updated_at=100.0, now=111.0)
    assert not SessionPolicy(ttl=10).expired(updated_at=100.0, now=105.0)


async def test_expiry_never_removes_a_session_being_uploaded(tmp_path: Path) -> None:
    # A session idle past its ttl expires; one that a call is writing to now
    # (here for longer than the ttl) is not idle, whoever runs the expiry: a
    # new session on this instance or on another one sharing the directory.
    policy = SessionPolicy(ttl=0.05)
    one = LocalFileStore(tmp_path / "files", sessions=policy)
    two = LocalFileStore(tmp_path / "files", sessions=policy)
    await one.prepare()
    await two.prepare()
    try:
        key = session_key("user:ann", "long-upload")
        assert await one.claim_session(key) == 0
        sink = await one.resume_upload(key, "long.bin", 0)
        await sink.write(b"a" * 1000)
        await trio.sleep(0.1)  # past the ttl, the call still going on
        for store, owner in ((one, "user:bob"), (two, "user:cat")):
            other = session_key(owner, "another-upload")
            assert await store.claim_session(other) == 0
            await (await store.resume_upload(other, "other.bin", 0)).abort()
        await sink.write(b"b" * 1000)
        record = await sink.commit()
    finally:
        await one.close()
        await two.close()
    assert record.size == 2000
    assert record.checksum == hashlib.sha256(b"a" * 1000 + b"b" * 1000).hexdigest()
    assert list((tmp_path / "files" / "sessions").iterdir()) == []


async def test_a_session_restarted_after_expiry_keeps_its_lock(tmp_path: Path) -> None:
    # A call that finds its session expired starts it again, holding the
    # session's lock: another instance must find the session busy. Before,
    # the expiry unlinked the lock file under the claim, so the other
    # instance locked a new one and both wrote to the same .part.
    policy = SessionPolicy(ttl=0.05)
    one = LocalFileStore(tmp_path / "files", sessions=policy)
    two = LocalFileStore(tmp_path / "files", sessions=policy)
    await one.prepare()
    await two.prepare()
    try:
        key = session_key("user:ann", "comes-back-late")
        assert await one.claim_session(key) == 0
        first = await one.resume_upload(key, "late.bin", 0)
        await first.write(b"kept, then expired")
        await first.suspend()
        await trio.sleep(0.1)  # past the ttl
        assert await one.claim_session(key) == 0  # expired: starts again
        again = await one.resume_upload(key, "late.bin", 0)
        await again.write(b"x" * 1000)
        with pytest.raises(UploadSessionBusy):
            await two.claim_session(key)
        await again.write(b"y" * 1000)
        record = await again.commit()
    finally:
        await one.close()
        await two.close()
    assert record.checksum == hashlib.sha256(b"x" * 1000 + b"y" * 1000).hexdigest()
    assert list((tmp_path / "files" / "sessions").iterdir()) == []


async def test_upload_resumes_after_a_dropped_connection(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = ServeConfig(data_dir=tmp_path / "data", dataset_rows=100, heartbeat_interval=30)
    address: str = await nursery.start(serve, config)
    relay = Relay(int(address.rpartition(":")[2]))
    relay_port = await nursery.start(relay.run)
    source = tmp_path / "src.bin"
    data = os.urandom(16 << 20)
    source.write_bytes(data)
    trigger = Trigger(0.5, relay.cut)
    async with open_channel(f"127.0.0.1:{relay_port}") as channel:
        with trio.fail_after(60):
            result = await upload_file(
                StreamingServiceStub(channel),
                source,
                progress=trigger,
                retry=RetryPolicy(attempts=10, initial_backoff=0.05, max_backoff=0.3),
            )
    assert trigger.fired_at is not None
    assert result.reconnects >= 1 and result.resumed_from > 0
    assert result.checksum == hashlib.sha256(data).hexdigest()
    assert result.size == len(data)


async def test_cli_upload_resumes_after_a_dropped_connection(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = ServeConfig(data_dir=tmp_path / "data", dataset_rows=100, heartbeat_interval=30)
    address: str = await nursery.start(serve, config)
    relay = Relay(int(address.rpartition(":")[2]))
    relay_port = await nursery.start(relay.run)
    source = tmp_path / "src.bin"
    data = os.urandom(24 << 20)
    source.write_bytes(data)

    async def cut_midway() -> None:
        # Once the server holds some of it (a session's part file has grown).
        sessions = tmp_path / "data" / "files" / "sessions"
        with trio.fail_after(30):
            while not any(p.stat().st_size > 4 << 20 for p in sessions.glob("*.part")):  # noqa: ASYNC110
                await trio.sleep(0.01)
        relay.cut()

    nursery.start_soon(cut_midway)
    out, err = io.StringIO(), io.StringIO()
    with trio.fail_after(60):
        code = await amain(
            ["upload", str(source), "--target", f"127.0.0.1:{relay_port}"],
            stdout=out,
            stderr=err,
        )
    assert code == 0, err.getvalue()
    assert "resuming the upload" in err.getvalue()
    assert f"sha256: {hashlib.sha256(data).hexdigest()}" in out.getvalue()
