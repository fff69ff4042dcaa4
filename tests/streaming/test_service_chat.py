"""Chat end to end: rooms, identities, notices, departures."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
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

Chat = StreamStreamCall[pb.ChatMessage, pb.ChatMessage]


async def _next(call: Chat) -> tuple[str, str, str]:
    with trio.fail_after(5):
        message = await call.receive()
    assert message is not None
    assert abs(message.timestamp.ToNanoseconds() / 1e9 - time.time()) < 60
    return message.user_id, message.room_id, message.content


async def _subscribers(served: Served, n: int) -> None:
    await wait_until(lambda: served.running.backends.events.subscriber_count == n)


async def test_three_clients_two_rooms(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        stub = served.stub
        async with stub.Chat(metadata={"user-id": "alice", "room-id": "a"}) as alice:
            await alice.initial_metadata()
            assert await _next(alice) == ("system", "a", "alice joined")
            async with stub.Chat(metadata={"user-id": "bob", "room-id": "a"}) as bob:
                assert await _next(bob) == ("system", "a", "bob joined")
                assert await _next(alice) == ("system", "a", "bob joined")
                async with stub.Chat(metadata={"user-id": "carol", "room-id": "b"}) as carol:
                    assert await _next(carol) == ("system", "b", "carol joined")

                    # Room a: to both members, the sender included; not to carol.
                    # Whatever user_id the client writes, the metadata's is used.
                    await bob.send(pb.ChatMessage(user_id="mallory", content="hi a"))
                    assert await _next(bob) == ("bob", "a", "hi a")
                    assert await _next(alice) == ("bob", "a", "hi a")

                    await carol.send(pb.ChatMessage(content="hi b"))
                    assert await _next(carol) == ("carol", "b", "hi b")

                    # A message to another room joins it first.
                    await carol.send(pb.ChatMessage(room_id="a", content="visiting"))
                    for member in (alice, bob, carol):
                        assert await _next(member) == ("system", "a", "carol joined")
                        assert await _next(member) == ("carol", "a", "visiting")

                    await alice.send(pb.ChatMessage(room_id="a", content="welcome"))
                    for member in (alice, bob, carol):
                        assert await _next(member) == ("alice", "a", "welcome")
                # Carol left (the block cancelled her call): room a hears it at once.
                for member in (alice, bob):
                    assert await _next(member) == ("system", "a", "carol left")
                await bob.done_writing()  # half-close: leaving
                assert await _next(alice) == ("system", "a", "bob left")
                await _subscribers(served, 1)  # alice's
        await _subscribers(served, 0)
        assert served.running.service.chat.active == 0


async def test_chat_needs_a_user(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        with pytest.raises(RpcError) as missing, trio.fail_after(5):
            async for _ in served.stub.Chat([pb.ChatMessage(room_id="a", content="x")]):
                pass
        assert missing.value.code is StatusCode.UNAUTHENTICATED
        assert "user-id" in missing.value.details
        with pytest.raises(RpcError) as reserved, trio.fail_after(5):
            async for _ in served.stub.Chat([], metadata={"user-id": "system"}):
                pass
        assert reserved.value.code is StatusCode.INVALID_ARGUMENT


async def test_message_without_any_room(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        with pytest.raises(RpcError) as caught, trio.fail_after(5):
            async for _ in served.stub.Chat(
                [pb.ChatMessage(content="where?")], metadata={"user-id": "dan"}
            ):
                pass
        assert caught.value.code is StatusCode.INVALID_ARGUMENT
        assert "no room_id" in caught.value.details
        await _subscribers(served, 0)


async def test_disconnected_client_is_removed(tmp_path: Path, grpcio_stubs: ModuleType) -> None:
    async with running(tmp_path) as served:
        async with served.stub.Chat(metadata={"user-id": "alice", "room-id": "r"}) as alice:
            assert await _next(alice) == ("system", "r", "alice joined")
            # bob, on a grpcio channel that then closes under him.
            channel = grpc.insecure_channel(served.address)
            release = threading.Event()

            def requests() -> Iterator[pb.ChatMessage]:
                release.wait(10)  # never sends; holds the stream open
                return
                yield

            try:
                bob = grpcio_stubs.StreamingServiceStub(channel).Chat(
                    requests(), metadata=[("user-id", "bob"), ("room-id", "r")]
                )
                assert (await in_thread(next, bob)).content == "bob joined"
                assert await _next(alice) == ("system", "r", "bob joined")
                channel.close()  # the connection goes away
                assert await _next(alice) == ("system", "r", "bob left")
            finally:
                release.set()
        await _subscribers(served, 0)


async def test_chat_with_grpcio(tmp_path: Path, grpcio_stubs: ModuleType) -> None:
    async with (
        running(tmp_path) as served,
        grpcio_stub(grpcio_stubs, served.address) as stub,
        served.stub.Chat(metadata={"user-id": "alice", "room-id": "r"}) as alice,
    ):
        assert await _next(alice) == ("system", "r", "alice joined")
        gate = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def bob() -> list[tuple[str, str, str]]:
            def requests() -> Iterator[pb.ChatMessage]:
                yield pb.ChatMessage(room_id="r", content="from grpcio")
                # Stay in the room until alice has seen the message.
                trio.from_thread.run(gate.wait, trio_token=token)

            call = stub.Chat(requests(), metadata=[("user-id", "bob")])
            return [(m.user_id, m.room_id, m.content) for m in call]

        async with trio.open_nursery() as nursery:
            seen: list[tuple[str, str, str]] = []

            async def run_bob() -> None:
                seen.extend(await in_thread(bob))

            nursery.start_soon(run_bob)
            assert await _next(alice) == ("system", "r", "bob joined")
            assert await _next(alice) == ("bob", "r", "from grpcio")
            gate.set()
        assert seen == [("system", "r", "bob joined"), ("bob", "r", "from grpcio")]
        assert await _next(alice) == ("system", "r", "bob left")
