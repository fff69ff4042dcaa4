"""SyncData and GetData end to end: versions, conflicts, pushed changes."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import grpc
import pytest
import trio
from service_support import Served, grpcio_stub, grpcio_stubs, in_thread, running, wait_until

from puregrpc import RpcError, StatusCode
from puregrpc.client import StreamStreamCall
from puregrpc_streaming.protos import streaming_pb2 as pb

__all__ = ["grpcio_stubs"]

Sync = StreamStreamCall[pb.SyncRequest, pb.SyncResponse]
ACK, CONFLICT, CHANGE = pb.SyncResponse.ACK, pb.SyncResponse.CONFLICT, pb.SyncResponse.CHANGE


async def _change(call: Sync, **fields: object) -> pb.SyncResponse:
    await call.send(pb.SyncRequest(**fields))  # type: ignore[arg-type]
    with trio.fail_after(5):
        response = await call.receive()
    assert response is not None
    return response


async def _get(served: Served, key: str) -> pb.GetDataResponse:
    return await served.stub.GetData(pb.GetDataRequest(key=key))


async def test_ack_conflict_and_change(tmp_path: Path) -> None:
    async with (
        running(tmp_path) as served,
        served.stub.SyncData() as one,
        served.stub.SyncData() as two,
    ):
        await wait_until(lambda: served.running.backends.events.subscriber_count == 2)
        ack = await _change(one, key="color", value=b"red", base_version=0, change_id="c1")
        assert (ack.kind, ack.key, ack.version, ack.change_id) == (ACK, "color", 1, "c1")
        # The other stream is told; this one is not (its next answer is its own).
        with trio.fail_after(5):
            pushed = await two.receive()
        assert pushed is not None
        assert (pushed.kind, pushed.key, pushed.value, pushed.version) == (
            CHANGE,
            "color",
            b"red",
            1,
        )
        # A stale base version conflicts and carries the server's state.
        conflict = await _change(two, key="color", value=b"blue", base_version=0, change_id="c2")
        assert (conflict.kind, conflict.value, conflict.version, conflict.change_id) == (
            CONFLICT,
            b"red",
            1,
            "c2",
        )
        assert "stale" in conflict.message
        ack = await _change(two, key="color", value=b"blue", base_version=1, change_id="c3")
        assert (ack.kind, ack.version) == (ACK, 2)
        with trio.fail_after(5):
            pushed = await one.receive()
        assert pushed is not None and (pushed.kind, pushed.value, pushed.version) == (
            CHANGE,
            b"blue",
            2,
        )
        # GetData reads the same store.
        record = await _get(served, "color")
        assert (record.key, record.value, record.version) == ("color", b"blue", 2)
        assert record.updated_at.seconds > 0


async def test_delete_and_recreate(tmp_path: Path) -> None:
    async with running(tmp_path) as served, served.stub.SyncData() as call:
        await _change(call, key="k", value=b"v", base_version=0)
        deleted = await _change(call, key="k", base_version=1, delete=True)
        assert (deleted.kind, deleted.deleted, deleted.version) == (ACK, True, 2)
        with pytest.raises(RpcError) as caught:
            await _get(served, "k")
        assert caught.value.code is StatusCode.NOT_FOUND
        # Deleting what does not exist conflicts; recreating continues the versions.
        again = await _change(call, key="k", base_version=2, delete=True)
        assert again.kind == CONFLICT and "does not exist" in again.message
        recreated = await _change(call, key="k", value=b"w", base_version=0)
        assert (recreated.kind, recreated.version) == (ACK, 3)
        assert (await _get(served, "k")).value == b"w"


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        (pb.SyncRequest(key=""), "key is required"),
        (pb.SyncRequest(key="x" * 1025), "longer than 1024"),
        (pb.SyncRequest(key="k", base_version=-1), "negative"),
        (pb.SyncRequest(key="k", value=bytes((1 << 20) + 1)), "larger than"),
    ],
)
async def test_bad_sync_requests(tmp_path: Path, request_: pb.SyncRequest, needle: str) -> None:
    async with running(tmp_path) as served:
        with pytest.raises(RpcError) as caught, trio.fail_after(5):
            async for _ in served.stub.SyncData([request_]):
                pass
        assert caught.value.code is StatusCode.INVALID_ARGUMENT
        assert needle in caught.value.details
        await wait_until(lambda: served.running.backends.events.subscriber_count == 0)


async def test_get_data_errors(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        with pytest.raises(RpcError) as empty:
            await _get(served, "")
        assert empty.value.code is StatusCode.INVALID_ARGUMENT
        with pytest.raises(RpcError) as missing:
            await _get(served, "never-written")
        assert missing.value.code is StatusCode.NOT_FOUND
        assert "never-written" in missing.value.details


async def test_sync_and_get_with_grpcio(tmp_path: Path, grpcio_stubs: ModuleType) -> None:
    async with running(tmp_path) as served, grpcio_stub(grpcio_stubs, served.address) as stub:

        def session() -> list[pb.SyncResponse]:
            requests = iter(
                [
                    pb.SyncRequest(key="g", value=b"1", base_version=0, change_id="a"),
                    pb.SyncRequest(key="g", value=b"2", base_version=0, change_id="b"),
                ]
            )
            return list(stub.SyncData(requests))

        acked, refused = await in_thread(session)
        assert (acked.kind, acked.version, refused.kind) == (ACK, 1, CONFLICT)
        record = await in_thread(stub.GetData, pb.GetDataRequest(key="g"))
        assert (record.value, record.version) == (b"1", 1)
        with pytest.raises(grpc.RpcError) as caught:
            await in_thread(stub.GetData, pb.GetDataRequest(key="nope"))
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
