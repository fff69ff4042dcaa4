"""Authorization: events go to their audience, and queries read the dataset only.

Before issue #14 any client replayed every event (every room's chat text
included) with ``last-event-id: 0``, and InteractiveQuery read every table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from service_support import Served, running, upload, wait_until

from puregrpc.client import CallOptions, Channel, ChannelOptions
from puregrpc_streaming.identity import Identity
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

TOKENS = {
    "ann-token-0123456789": Identity(user_id="ann"),
    "bob-token-0123456789": Identity(user_id="bob"),
    "root-token-012345678": Identity(user_id="root", roles=frozenset({"admin"})),
}


def as_user(served: Served, user: str) -> Channel:
    """A channel to the server that calls as ``user`` (by its token)."""
    token = next(t for t, identity in TOKENS.items() if identity.user_id == user)
    metadata = [("authorization", f"Bearer {token}")]
    return Channel(
        served.address, options=ChannelOptions(call_defaults=CallOptions(metadata=metadata))
    )


async def say(stub: StreamingServiceStub, room: str, text: str, user: str = "") -> None:
    """Join ``room`` and send ``text``; return once it came back (it is published)."""
    metadata = [("room-id", room)] + ([("user-id", user)] if user else [])
    with trio.fail_after(5):
        async with stub.Chat(metadata=metadata) as call:
            await call.send(pb.ChatMessage(content=text))
            while (message := await call.receive()) is not None:
                if message.content == text:
                    break
            await call.done_writing()


async def replayed(stub: StreamingServiceStub, *, until: str = "end") -> list[pb.Event]:
    """Every event the caller may see from the start of the log (heartbeats skipped).

    Ends at the first heartbeat: it comes once the replay has caught up.
    """
    events: list[pb.Event] = []
    with trio.fail_after(10):
        call = stub.WatchEvents(pb.WatchRequest(), metadata=[("last-event-id", "0")])
        async with call:
            async for event in call:
                if event.type == "heartbeat":
                    break
                events.append(event)
    return events


def chat_lines(events: list[pb.Event]) -> set[str]:
    """``room user: text`` of the chat messages among ``events`` (join notices skipped)."""
    lines = set()
    for event in events:
        if event.type == "chat.message":
            payload = json.loads(event.payload)
            if payload["user_id"] != "system":
                lines.add(f"{payload['room_id']} {payload['user_id']}: {payload['content']}")
    return lines


async def test_anonymous_watcher_sees_no_chat(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        await say(served.stub, "secret", "the plan", user="eve")
        await served.running.backends.events.publish("sync.changed", {"key": "k"})
        events = await replayed(served.stub)
    assert chat_lines(events) == set()
    assert [e.type for e in events] == ["sync.changed"]  # what everyone may see


async def test_members_see_their_rooms_and_admins_see_all(tmp_path: Path) -> None:
    async with running(tmp_path, tokens=TOKENS) as served:
        async with as_user(served, "ann") as ann, as_user(served, "bob") as bob:
            ann_stub, bob_stub = StreamingServiceStub(ann), StreamingServiceStub(bob)
            await say(ann_stub, "a", "for room a")
            await say(bob_stub, "b", "for room b")
            ann_sees = chat_lines(await replayed(ann_stub))
            bob_sees = chat_lines(await replayed(bob_stub))
        async with as_user(served, "root") as root:
            root_sees = chat_lines(await replayed(StreamingServiceStub(root)))
    assert ann_sees == {"a ann: for room a"}
    assert bob_sees == {"b bob: for room b"}
    assert root_sees == {"a ann: for room a", "b bob: for room b"}


async def test_members_see_live_messages_of_their_rooms_only(tmp_path: Path) -> None:
    async with (
        running(tmp_path, tokens=TOKENS) as served,
        as_user(served, "ann") as ann,
        as_user(served, "bob") as bob,
    ):
        ann_stub, bob_stub = StreamingServiceStub(ann), StreamingServiceStub(bob)
        await say(ann_stub, "a", "joining")
        bus = served.running.backends.events
        got: list[str] = []
        with trio.fail_after(10):
            async with ann_stub.WatchEvents(pb.WatchRequest(event_types=["chat.message"])) as call:
                await wait_until(lambda: bus.subscriber_count == 1)
                await say(bob_stub, "b", "not for ann")
                await say(bob_stub, "a", "for ann")
                async for event in call:
                    payload = json.loads(event.payload)
                    if event.type == "chat.message" and payload["user_id"] == "bob":
                        got.append(payload["content"])
                        break
    assert got == ["for ann"]


async def test_file_events_go_to_the_uploader_and_admins(tmp_path: Path) -> None:
    async with running(tmp_path, tokens=TOKENS) as served:
        async with as_user(served, "ann") as ann, as_user(served, "bob") as bob:
            file_id = await upload(StreamingServiceStub(ann), b"ann's data", "a.txt")
            ann_sees = await replayed(StreamingServiceStub(ann))
            bob_sees = await replayed(StreamingServiceStub(bob))
        async with as_user(served, "root") as root:
            root_sees = await replayed(StreamingServiceStub(root))

    def uploads(events: list[pb.Event]) -> list[str]:
        return [json.loads(e.payload)["file_id"] for e in events if e.type == "file.uploaded"]

    assert uploads(ann_sees) == [file_id]
    assert json.loads(ann_sees[0].payload)["user_id"] == "ann"
    assert uploads(bob_sees) == []
    assert uploads(root_sees) == [file_id]


async def query(stub: StreamingServiceStub, sql: str) -> tuple[list[dict[str, object]], str, str]:
    """(rows, error, error_code) of one query on a fresh stream."""
    rows: list[dict[str, object]] = []
    with trio.fail_after(10):
        async with stub.InteractiveQuery() as call:
            await call.send(pb.QueryRequest(query=sql))
            while (response := await call.receive()) is not None:
                if response.data:
                    rows.append(json.loads(response.data))
                if response.complete:
                    await call.done_writing()
                    return rows, response.error, response.error_code
    raise AssertionError("the query stream ended early")


@pytest.mark.parametrize(
    ("sql", "table"),
    [
        ("SELECT name FROM sqlite_master", "sqlite_master"),
        ("SELECT * FROM sqlite_schema", "sqlite_master"),
        ("SELECT count(*) FROM kv", "kv"),
        ("SELECT name, value FROM metrics", "metrics"),
        ("SELECT payload FROM events", "events"),
        ("SELECT d.id FROM dataset d JOIN room_members m ON 1", "room_members"),
    ],
)
async def test_queries_read_the_dataset_table_only(tmp_path: Path, sql: str, table: str) -> None:
    async with running(tmp_path) as served:
        rows, error, code = await query(served.stub, sql)
        assert (rows, code) == ([], "PERMISSION_DENIED")
        assert f"reading table '{table}' is not allowed" in error
        rows, error, code = await query(served.stub, "SELECT count(*) AS n FROM dataset")
        assert (error, code) == ("", "")
        assert rows[0]["n"] == served.config.dataset_rows


async def test_an_admin_may_read_every_table(tmp_path: Path) -> None:
    async with running(tmp_path, tokens=TOKENS) as served, as_user(served, "root") as root:
        rows, error, _ = await query(
            StreamingServiceStub(root), "SELECT name FROM sqlite_master WHERE name = 'kv'"
        )
    assert (rows, error) == ([{"name": "kv"}], "")


async def test_pure_table_valued_functions_are_allowed(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        each = await query(served.stub, "SELECT key, value FROM json_each('[10,20]')")
        tree = await query(served.stub, """SELECT fullkey FROM json_tree('{"a":[1]}')""")
        joined = await query(
            served.stub,
            "SELECT d.id, j.key FROM dataset d, json_each(d.data) j WHERE d.id = 1 LIMIT 1",
        )
        star = await query(served.stub, "SELECT * FROM json_each('[1]')")
    assert each == ([{"key": 0, "value": 10}, {"key": 1, "value": 20}], "", "")
    assert tree == ([{"fullkey": "$"}, {"fullkey": "$.a"}, {"fullkey": "$.a[0]"}], "", "")
    assert joined[1:] == ("", "") and joined[0][0]["id"] == 1
    assert star[1:] == ("", "") and star[0][0]["value"] == 1


@pytest.mark.parametrize(
    ("sql", "function"),
    [
        ("SELECT * FROM pragma_table_info('kv')", "pragma_table_info"),
        ("SELECT name FROM pragma_table_list", "pragma_table_list"),
        ("SELECT name FROM pragma_function_list", "pragma_function_list"),
        ("SELECT * FROM pragma_database_list", "pragma_database_list"),
        ("SELECT name, pgsize FROM dbstat", "dbstat"),
    ],
)
async def test_other_table_valued_functions_are_denied_by_name(
    tmp_path: Path, sql: str, function: str
) -> None:
    async with running(tmp_path) as served:
        rows, error, code = await query(served.stub, sql)
    assert (rows, code) == ([], "PERMISSION_DENIED")
    assert f"table-valued function '{function}' is not allowed" in error
    assert "json_each and json_tree" in error
