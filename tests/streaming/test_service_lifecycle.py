"""serve() and the practices every call gets: deadlines, logging, graceful stop, TLS."""

from __future__ import annotations

import logging
import re
import ssl
from pathlib import Path

import pytest
import trio
import trustme
from service_support import running

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub
from puregrpc_streaming.server import ServeConfig, serve
from puregrpc_streaming.service import DEFAULT_DEADLINES


async def test_serve_reports_its_address_and_stops_on_cancel(tmp_path: Path) -> None:
    config = ServeConfig(data_dir=tmp_path, dataset_rows=100)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(serve, config)
        host, _, port = address.rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0
        async with Channel(address) as channel:
            stub = StreamingServiceStub(channel)
            items = [i async for i in stub.ListLargeDataset(pb.ListRequest())]
            assert len(items) == 100
        nursery.cancel_scope.cancel()
    # Stopped: nothing listens there any more.
    with pytest.raises(OSError):
        await trio.open_tcp_stream(host, int(port))


async def test_open_streams_end_with_unavailable_on_shutdown(tmp_path: Path) -> None:
    config = ServeConfig(data_dir=tmp_path, dataset_rows=10, heartbeat_interval=60)
    outcome: list[RpcError] = []
    async with trio.open_nursery() as outer:
        server = trio.CancelScope()

        async def run_server(*, task_status: trio.TaskStatus[str]) -> None:
            with server:
                await serve(config, task_status=task_status)

        address = await outer.start(run_server)
        async with Channel(address) as channel, trio.open_nursery() as nursery:
            stub = StreamingServiceStub(channel)
            subscribed = trio.Event()

            async def watch() -> None:
                with pytest.raises(RpcError) as caught:
                    async with stub.WatchEvents(pb.WatchRequest()) as call:
                        await call.initial_metadata()
                        subscribed.set()
                        async for _ in call:
                            pass
                outcome.append(caught.value)

            nursery.start_soon(watch)
            await subscribed.wait()
            started = trio.current_time()
            server.cancel()  # what Ctrl-C in the CLI does
    (error,) = outcome
    assert error.code is StatusCode.UNAVAILABLE
    assert re.fullmatch(r"server shutting down; resume from last-event-id \d+", error.details)
    # Ended at once, not after the grace period.
    assert trio.current_time() - started < 2


def test_stream_deadlines_are_longer_than_unary_and_open_streams_have_none() -> None:
    open_ended = {"WatchEvents", "Chat", "SyncData", "InteractiveQuery"}
    unary = DEFAULT_DEADLINES["GetData"]
    assert unary is not None
    for name, seconds in DEFAULT_DEADLINES.items():
        if name in open_ended:
            assert seconds is None, name
        elif name != "GetData":
            assert seconds is not None and seconds > unary, name


async def test_server_default_deadline(tmp_path: Path) -> None:
    async with running(tmp_path, deadlines={"WatchEvents": 0.3}) as served:
        started = trio.current_time()
        with pytest.raises(RpcError) as caught, trio.fail_after(5):
            async for _ in served.stub.WatchEvents(pb.WatchRequest()):
                pass
        assert caught.value.code is StatusCode.DEADLINE_EXCEEDED
        assert "server's default deadline of 0.3 s" in caught.value.details
        assert trio.current_time() - started >= 0.29
        # A client deadline replaces the default: this watch outlives 0.3 s.
        beats = 0
        with pytest.raises(RpcError) as own, trio.fail_after(5):
            async for event in served.stub.WatchEvents(pb.WatchRequest(), timeout=1.0):
                beats += event.type == "heartbeat"
        assert own.value.code is StatusCode.DEADLINE_EXCEEDED
        assert beats >= 2  # heartbeats every 0.3 s well past the default


async def test_call_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="puregrpc_streaming")
    async with running(tmp_path) as served:
        await served.stub.BatchProcess([pb.ProcessRequest(operation="reverse")] * 3)
        with pytest.raises(RpcError):
            await served.stub.GetData(pb.GetDataRequest(key="missing"))
        with pytest.raises(RpcError):
            await served.stub.GetData(pb.GetDataRequest(key=""))
    messages = [
        (r.levelno, r.getMessage()) for r in caplog.records if r.name == "puregrpc_streaming"
    ]
    path = "/streaming.v1.StreamingService/"
    assert not [m for _, m in messages if " started by " in m]  # one line a call: its end
    (done,) = [m for _, m in messages if m.startswith(f"{path}BatchProcess from")]
    assert "ended OK after" in done and "3 message(s) in, 1 out" in done
    missing, bad = [(lvl, m) for lvl, m in messages if m.startswith(f"{path}GetData from")]
    # NOT_FOUND is an answer, not a fault of the server: below WARNING.
    assert missing[0] == logging.INFO
    assert "ended NOT_FOUND: no record with key 'missing'" in missing[1]
    assert bad[0] == logging.WARNING and "INVALID_ARGUMENT" in bad[1]


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"chunk_size": 8 * 1024}, "chunk_size"),
        ({"chunk_size": 128 * 1024}, "chunk_size"),
        ({"port": 70000}, "port"),
        ({"tls_cert": Path("cert.pem")}, "both a certificate and a key"),
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
        ({"batch_size": 0}, "batch_size"),
        ({"dataset_rows": -1}, "dataset_rows"),
    ],
)
def test_config_validation(tmp_path: Path, changes: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        ServeConfig(data_dir=tmp_path, **changes)  # type: ignore[arg-type]


async def test_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with (
        running(tmp_path / "data", tls_cert=cert_file, tls_key=key_file) as served,
        Channel(served.address, ssl_context=client_context) as channel,
    ):
        summary = await StreamingServiceStub(channel).CollectMetrics(
            [pb.Metric(name="tls", value=1.0)]
        )
        assert summary.total_count == 1


def test_bad_tls_files(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    (tmp_path / "key.pem").write_text("not a key")
    config = ServeConfig(
        data_dir=tmp_path, tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "key.pem"
    )
    with pytest.raises(ValueError, match="cannot load TLS certificate"):
        config.ssl_context()
