"""The embedded defaults wired together: what ``serve`` uses out of the box.

Everything lives under one data directory::

    <data_dir>/files/           uploads (LocalFileStore)
    <data_dir>/streaming.sqlite3  dataset, key-value records and metrics

and the event bus is in-process. :func:`open_embedded_backends` prepares them
(directories, schema, the dataset seeded on first start, leftovers of a crash
removed) and closes them at the end of its block.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from .events import InProcessEventBus
from .files import LocalFileStore
from .sqlite import SqliteDatabase, SqliteDatasetStore, SqliteKeyValueStore, SqliteMetricsStore

__all__ = ["EmbeddedBackends", "open_embedded_backends"]

logger = logging.getLogger("puregrpc_streaming.backends")


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddedBackends:
    """The embedded implementation of every backend interface."""

    files: LocalFileStore
    events: InProcessEventBus
    dataset: SqliteDatasetStore
    kv: SqliteKeyValueStore
    metrics: SqliteMetricsStore
    database: SqliteDatabase


@asynccontextmanager
async def open_embedded_backends(
    data_dir: Path, *, dataset_rows: int
) -> AsyncIterator[EmbeddedBackends]:
    """Open (creating if needed) the backends under ``data_dir`` for the block."""
    await trio.Path(data_dir).mkdir(parents=True, exist_ok=True)
    files = LocalFileStore(data_dir / "files")
    removed = await files.prepare()
    if removed:
        logger.info("removed %d unfinished upload(s) left by an earlier run", removed)
    database = SqliteDatabase(data_dir / "streaming.sqlite3")
    try:
        await database.open()
        dataset = SqliteDatasetStore(database)
        seeded = await dataset.ensure_seeded(dataset_rows)
        if seeded is not None:
            rows, seconds = seeded
            logger.info("seeded the dataset with %d rows in %.2f s", rows, seconds)
        events = InProcessEventBus()
        try:
            yield EmbeddedBackends(
                files=files,
                events=events,
                dataset=dataset,
                kv=SqliteKeyValueStore(database),
                metrics=SqliteMetricsStore(database),
                database=database,
            )
        finally:
            events.close()
    finally:
        await database.close()
