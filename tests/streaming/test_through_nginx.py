"""Calls through a real nginx (``grpc_pass``) balancing two puregrpc-streaming instances."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path

import pytest
import trio
from hyperframe.frame import HeadersFrame
from nginx_support import ADMIN_TOKEN, TOKENS, Cluster, cluster, nginx_binary, through
from postgres_support import PostgresServer, postgres_server
from redis_support import RedisServer, redis_server

from puregrpc import RpcError, StatusCode
from puregrpc.testing.hostile import RawPeer, hostile_server
from puregrpc_streaming.client_helpers import RetryPolicy, download_file, upload_file
from puregrpc_streaming.cluster import (
    NO_UPSTREAM_MESSAGE,
    Nginx,
    NginxError,
    NginxSettings,
    ServiceInstance,
    render_config,
    run_instance,
)
from puregrpc_streaming.progress import Progress
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

__all__ = ["nginx_binary", "postgres_server", "redis_server"]

ACK, CONFLICT, CHANGE = pb.SyncResponse.ACK, pb.SyncResponse.CONFLICT, pb.SyncResponse.CHANGE


def test_the_config_names_every_instance_and_lifts_the_limits(tmp_path: Path) -> None:
    settings = NginxSettings(upstreams=("127.0.0.1:7001", "127.0.0.1:7002"), listen_port=7000)
    text = render_config(settings, tmp_path)
    assert "server 127.0.0.1:7001 " in text and "server 127.0.0.1:7002 " in text
    assert "listen 127.0.0.1:7000 http2;" in text and "grpc_pass grpc://streaming;" in text
    for line in ("client_max_body_size 0;", "grpc_read_timeout 3600s;", "keepalive 32;"):
        assert line in text, line
    # Every path nginx writes is in the directory.
    paths = re.findall(
        r"^\s*(?:pid|lock_file|error_log|access_log|\w+_temp_path) (\S+)", text, re.M
    )
    assert len(paths) == 9, paths
    assert all(path.startswith(f"{tmp_path.resolve()}/") for path in paths), paths
    assert NO_UPSTREAM_MESSAGE in text
    assert "error_page" not in render_config(
        NginxSettings(upstreams=("127.0.0.1:7001",), grpc_errors=False), tmp_path
    )
    with pytest.raises(ValueError, match="at least one upstream"):
        render_config(NginxSettings(upstreams=()), tmp_path)


def test_a_config_nginx_refuses_is_an_error_with_its_reason(
    tmp_path: Path, nginx_binary: str
) -> None:
    nginx = Nginx(NginxSettings(upstreams=("127.0.0.1:notaport",)), tmp_path, binary=nginx_binary)
    with pytest.raises(NginxError, match="invalid port"):
        nginx.start()
    assert not nginx.running


async def sync_once(
    stub: StreamingServiceStub, key: str, value: bytes, base: int
) -> pb.SyncResponse:
    """One change through a SyncData stream of its own, and its ACK or CONFLICT."""
    with trio.fail_after(20):
        async with stub.SyncData() as call:
            await call.send(pb.SyncRequest(key=key, value=value, base_version=base, change_id="c"))
            async for response in call:
                if response.kind != CHANGE:
                    await call.done_writing()
                    return response
    raise AssertionError("SyncData ended without answering")


async def test_the_four_call_types_through_nginx_reach_both_instances(
    tmp_path: Path, nginx_binary: str
) -> None:
    async with cluster(tmp_path, nginx_binary) as running:
        stub = running.stub
        with trio.fail_after(60):
            for round_ in range(2):  # every call type twice: once on each instance
                # Unary, also when it fails (a trailers-only answer passes through).
                with pytest.raises(RpcError) as missing:
                    await stub.GetData(pb.GetDataRequest(key=f"nothing-{round_}"), timeout=10)
                assert missing.value.code is StatusCode.NOT_FOUND
                # Client streaming.
                metrics = [pb.Metric(name="load", value=float(n)) for n in range(500)]
                summary = await stub.CollectMetrics(metrics, timeout=10)
                assert summary.total_count == 500 and summary.aggregates["load#max"] == 499
                # Server streaming.
                request = pb.ListRequest(page_size=40, filter="id > 100")
                ids = [item.id async for item in stub.ListLargeDataset(request, timeout=10)]
                assert ids == list(range(101, 301))
                # Bidirectional, then unary reading what it wrote.
                ack = await sync_once(stub, f"key-{round_}", b"value", 0)
                assert (ack.kind, ack.version) == (ACK, 1)
                got = await stub.GetData(pb.GetDataRequest(key=f"key-{round_}"), timeout=10)
                assert (got.value, got.version) == (b"value", 1)
        calls = running.recorder.calls
        served: dict[str, set[str]] = {}
        for call in calls:
            served.setdefault(call.method, set()).add(call.served_by)
    everyone = {instance.address for instance in running.instances}
    # Round robin per call: each method reached both instances.
    for method in ("CollectMetrics", "ListLargeDataset", "SyncData"):
        assert served[method] == everyone, (method, served)


async def test_64_mib_up_and_down_through_nginx_verified_by_sha256(
    tmp_path: Path, nginx_binary: str
) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(64 << 20)
    source.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    del data
    copy = tmp_path / "copy.bin"
    async with cluster(tmp_path, nginx_binary) as running:
        with trio.fail_after(120):
            uploaded = await upload_file(running.stub, source)
            downloaded = await download_file(
                running.stub, uploaded.file_id, copy, expected_sha256=expected
            )
        nginx = running.nginx
        temp_files = [p for p in (nginx.directory / "temp").rglob("*") if p.is_file()]
    assert uploaded.checksum == expected and uploaded.size == 64 << 20
    assert downloaded.checksum_verified and downloaded.sha256 == expected
    assert downloaded.size == 64 << 20 and copy.stat().st_size == 64 << 20
    # nginx streamed both ways: nothing was buffered to a temporary file.
    assert temp_files == []
    assert "temporary file" not in nginx.error_log.read_text()
    log = nginx.access_log.read_text().splitlines()
    upload_line, download_line = (line for line in log if "File HTTP/2.0" in line)
    assert "UploadFile" in upload_line and " 200 " in upload_line and "grpc-status=0" in upload_line
    assert "DownloadFile" in download_line and "grpc-status=0" in download_line


async def test_two_instances_share_redis_and_postgres_behind_nginx(
    tmp_path: Path,
    nginx_binary: str,
    redis_server: RedisServer,
    postgres_server: PostgresServer,
) -> None:
    shared = ("--redis-url", redis_server.url, "--postgres-url", postgres_server.url)
    async with cluster(tmp_path, nginx_binary, *shared) as running:
        stub, recorder = running.stub, running.recorder
        with trio.fail_after(60):
            async with stub.WatchEvents(pb.WatchRequest(event_types=["sync.changed"])) as watch:
                await watch.initial_metadata()  # subscribed
                watcher_on = recorder.calls[-1].served_by
                answers = [await sync_once(stub, "color", b"red", 0)]
                answers += [await sync_once(stub, "color", b"blue", 0) for _ in range(2)]
                changed = await watch.receive()
                watch.cancel()
        syncs = recorder.served("SyncData")
        async with (
            through(running.nginx.address, TOKENS["ann"]) as (ann_stub, ann_calls),
            through(running.nginx.address, TOKENS["bob"]) as (bob_stub, bob_calls),
        ):
            with trio.fail_after(30):
                async with ann_stub.Chat(metadata={"room-id": "lobby"}) as ann:
                    joined = await ann.receive()
                    async with bob_stub.Chat(metadata={"room-id": "lobby"}) as bob:
                        bob_joined = await bob.receive()
                        await bob.send(pb.ChatMessage(content="hello across nginx"))
                        heard = [await ann.receive() for _ in range(2)]
                        await bob.done_writing()
                    await ann.done_writing()
    everyone = {instance.address for instance in running.instances}
    # The compare-and-set is PostgreSQL's, whichever instance nginx picked.
    assert [(a.kind, a.version) for a in answers] == [(ACK, 1), (CONFLICT, 1), (CONFLICT, 1)]
    assert answers[1].value == answers[2].value == b"red"
    assert set(syncs) == everyone
    # The watcher's instance saw the change, made on either (events on Redis).
    assert changed is not None and json.loads(changed.payload)["key"] == "color"
    assert watcher_on in everyone
    # Ann and Bob were on different instances and heard each other (chat on Redis).
    assert {ann_calls.served("Chat")[0], bob_calls.served("Chat")[0]} == everyone
    assert joined is not None and joined.content == "ann joined"
    assert bob_joined is not None and bob_joined.content == "bob joined"
    assert [(m.user_id, m.content) for m in heard if m is not None] == [
        ("system", "bob joined"),
        ("bob", "hello across nginx"),
    ]


class _KillAt(Progress):
    """Progress that SIGKILLs the instance serving the download once ``at`` bytes arrived."""

    def __init__(self, running: Cluster, at: int) -> None:
        super().__init__("download", stream=io.StringIO(), tty=False)
        self._running = running
        self._at = at
        self.killed: ServiceInstance | None = None
        self.killed_at = 0

    def advance(self, count: int) -> None:
        super().advance(count)
        if self.killed is None and self.done >= self._at:
            serving = self._running.recorder.calls[-1].served_by
            self.killed = self._running.at(serving)
            self.killed.kill()
            self.killed_at = self.done


async def test_an_instance_killed_mid_download_the_client_resumes_through_nginx(
    tmp_path: Path, nginx_binary: str
) -> None:
    data = os.urandom(24 << 20)
    expected = hashlib.sha256(data).hexdigest()
    source, copy = tmp_path / "big.bin", tmp_path / "copy.bin"
    source.write_bytes(data)
    async with cluster(tmp_path, nginx_binary) as running:
        with trio.fail_after(60):
            uploaded = await upload_file(running.stub, source)
            progress = _KillAt(running, len(data) // 3)
            result = await download_file(
                running.stub,
                uploaded.file_id,
                copy,
                progress=progress,
                retry=RetryPolicy(attempts=4, initial_backoff=0.05),
            )
            assert progress.killed is not None
            await progress.killed.process.wait()
        downloads = [call for call in running.recorder.calls if call.method == "DownloadFile"]
        log = running.nginx.error_log.read_text()
    killed = progress.killed
    (survivor,) = [i for i in running.instances if i is not killed]
    assert killed.process.returncode == -9
    assert result.checksum_verified and result.sha256 == expected and result.reconnects == 1
    assert copy.read_bytes() == data
    # The first attempt was on the killed instance; the resumed one, from the
    # offset reached, on the other (nginx may name the dead one first: refused).
    first, resumed = downloads
    assert first.served_by == killed.address and resumed.served_by == survivor.address
    assert isinstance(resumed.request, pb.DownloadRequest)
    assert progress.killed_at <= resumed.request.start_offset < len(data)
    assert "upstream prematurely closed connection" in log


@pytest.mark.parametrize("grpc_errors", [True, False], ids=["mapped", "nginx-page"])
async def test_no_instance_reachable_is_unavailable(
    tmp_path: Path, nginx_binary: str, grpc_errors: bool
) -> None:
    gone = []
    for _ in range(2):  # ports nobody listens on
        with trio.socket.socket() as sock:
            await sock.bind(("127.0.0.1", 0))
            gone.append(f"127.0.0.1:{sock.getsockname()[1]}")
    settings = NginxSettings(upstreams=tuple(gone), grpc_errors=grpc_errors)
    with Nginx(settings, tmp_path / "nginx", binary=nginx_binary) as nginx:
        async with through(nginx.address) as (stub, _):
            with pytest.raises(RpcError) as unary, trio.fail_after(20):
                await stub.GetData(pb.GetDataRequest(key="k"), timeout=10)
            with pytest.raises(RpcError) as streaming, trio.fail_after(20):
                async with stub.Chat(metadata={"room-id": "lobby"}, timeout=10) as chat:
                    await chat.receive()
    for failure in (unary.value, streaming.value):
        assert failure.code is StatusCode.UNAVAILABLE
        if grpc_errors:
            assert failure.details == NO_UPSTREAM_MESSAGE
        else:
            assert failure.details.startswith("HTTP status 502 (Bad Gateway)")


async def test_a_call_whose_instance_breaks_before_answering_is_unavailable_then_retried(
    tmp_path: Path, nginx_binary: str
) -> None:
    requests: list[bytes] = []

    async def breaks_after_the_request(peer: RawPeer, index: int) -> None:
        # An instance going away: it takes the call, then drops the connection.
        while (frame := await peer.next_frame()) is not None:
            if isinstance(frame, HeadersFrame):
                requests.append(bytes(frame.data))
                return

    async with (
        hostile_server(breaks_after_the_request) as broken_port,
        run_instance("B", tmp_path / "data", "--token", f"{ADMIN_TOKEN}:ops:admin") as b,
    ):
        broken = f"127.0.0.1:{broken_port}"
        settings = NginxSettings(upstreams=(broken, b.address))
        nginx = Nginx(settings, tmp_path / "nginx", binary=nginx_binary)
        await trio.to_thread.run_sync(nginx.start)
        try:
            async with through(nginx.address) as (stub, recorder):
                with pytest.raises(RpcError) as missing, trio.fail_after(20):
                    # The first call goes to the first upstream: the broken one.
                    await stub.GetData(pb.GetDataRequest(key="k"), timeout=10)
            first_line = nginx.access_log.read_text().splitlines()[0]
        finally:
            nginx.stop()
    assert len(requests) == 1
    # B answered (NOT_FOUND): directly through nginx, or on the channel's own retry.
    assert missing.value.code is StatusCode.NOT_FOUND
    # nginx never resends a gRPC call it sent (its body is unbuffered): it
    # answered UNAVAILABLE (the 204 mapping), and the channel retried the read
    # (A6), this time on B.
    assert " 204 upstream=" in first_line and f"upstream={broken} " in first_line, first_line
    assert [call.method for call in recorder.calls] == ["GetData"]
