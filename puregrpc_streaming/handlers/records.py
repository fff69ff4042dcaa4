"""GetData and SyncData over the versioned key-value store."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from puregrpc import StatusCode
from puregrpc.server import RequestIterator, ServicerContext

from ..authentication import caller_of
from ..backends.base import (
    BusClosed,
    EventBus,
    KeyValueStore,
    KvChange,
    KvRecord,
    SubscriberTooSlow,
    Subscription,
)
from ..protos import streaming_pb2 as pb
from ._common import fail, flat_nursery, invalid, timestamp_ns

logger = logging.getLogger("puregrpc_streaming.records")

MAX_KEY = 1024
MAX_VALUE = 1 << 20


def check_key(key: str) -> str:
    """INVALID_ARGUMENT unless ``key`` is 1..1024 characters."""
    if not key:
        invalid("key is required")
    if len(key) > MAX_KEY:
        invalid(f"key is longer than {MAX_KEY} characters")
    return key


def _response(
    kind: pb.SyncResponse.Kind, record: KvRecord | None, key: str, **fields: Any
) -> pb.SyncResponse:
    if record is None:
        return pb.SyncResponse(kind=kind, key=key, **fields)
    return pb.SyncResponse(
        kind=kind,
        key=record.key,
        value=record.value,
        version=record.version,
        deleted=record.deleted,
        **fields,
    )


class RecordHandlers:
    """Serves GetData and SyncData."""

    def __init__(self, kv: KeyValueStore, events: EventBus) -> None:
        """Read and write ``kv``; announce changes on ``events``."""
        self._kv = kv
        self._events = events

    async def get(self, request: pb.GetDataRequest, context: ServicerContext) -> pb.GetDataResponse:
        """The current record of ``key`` (NOT_FOUND if it never existed or was deleted)."""
        key = check_key(request.key)
        record = await self._kv.get(key)
        if record is None or record.deleted:
            fail(StatusCode.NOT_FOUND, f"no record with key {key!r}")
        return pb.GetDataResponse(
            key=record.key,
            value=record.value,
            version=record.version,
            updated_at=timestamp_ns(int(record.updated_at * 1e9)),
        )

    async def sync(
        self, requests: RequestIterator[pb.SyncRequest], context: ServicerContext
    ) -> None:
        """Apply the client's changes (ACK or CONFLICT each) and push others' (CHANGE).

        A change applies when its ``base_version`` is the key's current
        version (0, or a deleted key's last version, for "does not exist");
        the ACK carries the new version. Otherwise CONFLICT carries the
        server's current value and version and why. Every applied change is
        a ``sync.changed`` event naming the authenticated caller as
        ``user_id`` ("" when anonymous), which every *other* SyncData stream
        turns into a CHANGE with the key's current state.
        """
        author = caller_of(context).user_id
        stream_id = secrets.token_hex(8)
        send_lock = trio.Lock()

        async def send(response: pb.SyncResponse) -> None:
            async with send_lock:  # two tasks answer on this stream
                await context.send(response)

        def others(payload: Mapping[str, Any]) -> bool:
            return payload.get("origin") != stream_id

        async with (
            self._events.subscribe(
                types=frozenset({"sync.changed"}), predicate=others
            ) as subscription,
            flat_nursery() as nursery,
        ):
            await context.send_initial_metadata()  # subscribed: tell the client
            nursery.start_soon(self._push_changes, subscription, send)
            async for request in requests:
                key = check_key(request.key)
                if len(request.value) > MAX_VALUE:
                    invalid(f"value of {key!r} is larger than {MAX_VALUE} bytes")
                if request.base_version < 0:
                    invalid(f"base_version {request.base_version} is negative")
                outcome = await self._kv.apply(
                    KvChange(
                        key=key,
                        value=request.value,
                        base_version=request.base_version,
                        delete=request.delete,
                    )
                )
                if outcome.applied:
                    assert outcome.current is not None
                    await send(
                        _response(
                            pb.SyncResponse.ACK, outcome.current, key, change_id=request.change_id
                        )
                    )
                    await self._events.publish(
                        "sync.changed",
                        {
                            "key": key,
                            "version": outcome.current.version,
                            "deleted": outcome.current.deleted,
                            "origin": stream_id,
                            "user_id": author,
                        },
                    )
                else:
                    await send(
                        _response(
                            pb.SyncResponse.CONFLICT,
                            outcome.current,
                            key,
                            change_id=request.change_id,
                            message=outcome.reason,
                        )
                    )
            nursery.cancel_scope.cancel()

    async def _push_changes(
        self,
        subscription: Subscription,
        send: Callable[[pb.SyncResponse], Awaitable[None]],
    ) -> None:
        while True:
            try:
                event = await subscription.next()
            except SubscriberTooSlow:
                fail(StatusCode.RESOURCE_EXHAUSTED, "sync client too slow: changes were dropped")
            except BusClosed as exc:
                fail(StatusCode.UNAVAILABLE, str(exc))
            key = str(event.payload.get("key", ""))
            # The current state, not the event's: a later change may already
            # have landed, and clients only need the newest version.
            record = await self._kv.get(key)
            if record is None:
                continue
            await send(_response(pb.SyncResponse.CHANGE, record, key))
