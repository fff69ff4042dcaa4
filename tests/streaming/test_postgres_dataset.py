"""The dataset on PostgreSQL: the same rows and the same filtered pages as the embedded store."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from postgres_support import PostgresServer, postgres_server
from service_support import running

from puregrpc_streaming.backends.base import DATASET_FIELDS
from puregrpc_streaming.backends.postgres import PostgresDatabase, PostgresSettings
from puregrpc_streaming.backends.postgres_dataset import PostgresDataset
from puregrpc_streaming.backends.sqlite import SqliteDatabase, SqliteDatasetStore
from puregrpc_streaming.filters import parse_filter
from puregrpc_streaming.protos import streaming_pb2 as pb

__all__ = ["postgres_server"]

ROWS = 400

_fields = st.sampled_from(["id", "category", "value", "category.x"])
_literals = st.one_of(
    st.integers(-10, 500),
    st.floats(-1, 2, allow_nan=False),
    st.sampled_from(['"red"', '"blue"', '"Blue"', '""', '"é"', "true", "null"]),
)
_globs = st.text(alphabet="abdelru*?[]!^-xé", max_size=6).map(lambda p: '"' + p + '"')


@st.composite
def _filters(draw: st.DrawFn, depth: int = 0) -> str:
    if depth < 2 and draw(st.booleans()):
        joiner = draw(st.sampled_from([" and ", " or "]))
        parts = draw(st.lists(_filters(depth + 1), min_size=1, max_size=3))
        text = "(" + joiner.join(parts) + ")"
        return "not " + text if draw(st.booleans()) else text
    field = draw(_fields)
    if draw(st.booleans()):
        return f"{field} {draw(st.sampled_from(['~', '!~']))} {draw(_globs)}"
    op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
    literal = draw(_literals)
    return f"{field} {op} {literal if isinstance(literal, str) else repr(literal)}"


class Stores:
    """The embedded store and the PostgreSQL one, seeded alike, opened per use."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.sqlite = SqliteDatabase(tmp_path / "streaming.sqlite3")
        self.postgres = PostgresDatabase(PostgresSettings(url=url))

    async def both_pages(self, text: str, after: int, limit: int) -> tuple[list[int], list[int]]:
        """Ids of one page from each store for filter ``text``."""
        tree = parse_filter(text, fields=DATASET_FIELDS)
        embedded = SqliteDatasetStore(self.sqlite)
        shared = PostgresDataset(self.postgres)
        a = await embedded.page(after, limit, tree)
        b = await shared.page(after, limit, tree)
        assert a == b  # whole rows: category, value and data too
        return [r.id for r in a], [r.id for r in b]


async def open_stores(tmp_path: Path, url: str) -> Stores:
    stores = Stores(tmp_path, url)
    await stores.sqlite.open()
    await SqliteDatasetStore(stores.sqlite).ensure_seeded(ROWS)
    await stores.postgres.open()
    await PostgresDataset(stores.postgres).ensure_seeded(ROWS)
    return stores


async def test_seeded_once_with_the_embedded_rows(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    db = PostgresDatabase(PostgresSettings(url=postgres_server.url))
    await db.open()
    first = await PostgresDataset(db).ensure_seeded(ROWS)
    again = await PostgresDataset(db).ensure_seeded(ROWS)
    assert first is not None and first[0] == ROWS and again is None
    assert await PostgresDataset(db).row_count() == ROWS
    stores = await open_stores(tmp_path, postgres_server.url)
    ids, same = await stores.both_pages("", 0, ROWS + 10)
    assert ids == same == list(range(1, ROWS + 1))
    await db.close()
    await stores.postgres.close()
    await stores.sqlite.close()


async def test_keyset_pages_resume_from_the_last_id(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    stores = await open_stores(tmp_path, postgres_server.url)
    seen: list[int] = []
    after = 0
    for _ in range(ROWS):  # bounded: each page moves on
        ids, _same = await stores.both_pages('category = "red" or value < 0.3', after, 17)
        if not ids:
            break
        seen.extend(ids)
        after = ids[-1]
    whole, _ = await stores.both_pages('category = "red" or value < 0.3', 0, ROWS)
    assert seen == whole and len(whole) > 17
    await stores.postgres.close()
    await stores.sqlite.close()


@pytest.mark.parametrize(
    "text",
    [
        'category ~ "[]x]*"',
        'category ~ "[!a-e]*"',
        'category ~ "[e-a]*"',
        'category ~ "*[b-a-z]"',
        'category > "Z" and not (value < 0.5 or id = 8)',
        "id > 9223372036854775807000",
    ],
)
def test_pages_agree_on_hard_filters(
    tmp_path: Path, postgres_server: PostgresServer, text: str
) -> None:
    async def main() -> None:
        stores = await open_stores(tmp_path, postgres_server.url)
        await stores.both_pages(text, 0, ROWS)
        await stores.postgres.close()
        await stores.sqlite.close()

    trio.run(main)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=_filters())
def test_pages_agree_on_random_filters(
    tmp_path: Path, postgres_server: PostgresServer, text: str
) -> None:
    async def main() -> None:
        stores = await open_stores(tmp_path, postgres_server.url)
        await stores.both_pages(text, 0, ROWS)
        await stores.postgres.close()
        await stores.sqlite.close()

    trio.run(main)


async def test_a_listing_begun_on_a_resumes_on_b_from_its_cursor(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.url
    where = 'category = "blue" and value < 0.5'
    async with running(tmp_path / "a", postgres_url=url) as a:
        counters = a.running.backends.dataset.counters
        with trio.fail_after(20):
            whole = [i async for i in a.stub.ListLargeDataset(pb.ListRequest(filter=where))]
        head = whole[:40]
        assert len(whole) > 41 and counters.rows_fetched == len(whole)
    assert isinstance(a.running.backends.dataset, PostgresDataset)
    # A row removed from the shared table is gone from B's listing: B reads
    # PostgreSQL, not its own copy.
    gone = whole[41].id
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM dataset WHERE id = %s", (gone,))
    async with running(tmp_path / "b", postgres_url=url) as b:
        request = pb.ListRequest(filter=where, start_cursor=head[-1].cursor, page_size=7)
        with trio.fail_after(20):
            tail = [i async for i in b.stub.ListLargeDataset(request)]
        rows = await b.running.backends.dataset.row_count()
    assert [i.id for i in head + tail] == [i.id for i in whole if i.id != gone]
    assert rows == 5_000 - 1  # seeded once, by A: B found the mark and did not seed again
