"""ListLargeDataset filters run in SQLite (puregrpc_streaming.filter_sql).

Before issue #14 the filter ran in Python on every row of every page: a
filter that matched nothing read the whole table into Python (3.3 s for the
demo's million rows; bench/streaming_list.py: 0.06 s in SQLite).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from service_support import ROWS, running

from puregrpc_streaming.backends.base import DATASET_COLUMNS, DATASET_FIELDS, DatasetRow
from puregrpc_streaming.filter_sql import filter_to_sql, register_functions
from puregrpc_streaming.filters import compile_filter, parse_filter
from puregrpc_streaming.protos import streaming_pb2 as pb

ROWS_SEEN = [
    DatasetRow(1, "red", 0.25, b""),
    DatasetRow(2, "green", 0.5, b""),
    DatasetRow(3, "Blue", 1.0, b""),
    DatasetRow(4, "a*b", 0.0, b""),
    DatasetRow(5, "[x]", -2.5, b""),
    DatasetRow(6, "^-!", 7.0, b""),
    DatasetRow(7, "é", 1e18, b""),
    DatasetRow(8, "", 3.0, b""),
]


def matching_in_sqlite(text: str) -> list[int]:
    """Ids of :data:`ROWS_SEEN` the filter keeps when SQLite evaluates it."""
    conn = sqlite3.connect(":memory:")
    register_functions(conn)
    conn.execute("CREATE TABLE dataset (id INTEGER PRIMARY KEY, category TEXT, value REAL)")
    conn.executemany("INSERT INTO dataset VALUES (?, ?, ?)", [r[:3] for r in ROWS_SEEN])
    tree = parse_filter(text, fields=DATASET_FIELDS)
    condition, params = ("1", []) if tree is None else filter_to_sql(tree, DATASET_COLUMNS)
    found = conn.execute(f"SELECT id FROM dataset WHERE {condition} ORDER BY id", params)
    return [row[0] for row in found]


def matching_in_python(text: str) -> list[int]:
    """Ids of :data:`ROWS_SEEN` the Python predicate keeps."""
    predicate = compile_filter(text, fields=DATASET_FIELDS)
    return [row.id for row in ROWS_SEEN if predicate(row.as_record())]


@pytest.mark.parametrize(
    "text",
    [
        'category = "red"',
        'category != "red"',
        "category = 5",  # other kinds: never equal...
        "category != 5",  # ...always different
        "id = true",
        "id != null",
        'id < "8"',  # and never ordered
        "id = 2.0",
        "id > 9223372036854775807000",  # beyond 64 bits
        "id < 9223372036854775807000",
        "value >= 1",
        "value < -1e300",
        'category ~ "*e*"',
        'category ~ "a?b"',
        'category ~ "a*b"',
        'category ~ "[rg]*"',
        'category ~ "[!rg]*"',
        'category ~ "[a-z]*"',
        'category ~ "[]x]*"',  # no plain set: the Python function
        'category ~ "[^]*"',
        'category ~ "[x"',  # "[" that opens no set
        'category !~ "*"',
        'value ~ "*"',  # a glob of a number is false, !~ too
        'value !~ "*"',
        'category.part = "x"',  # a column has no fields
        "not (category.part = 1)",
        'category > "Z" and not (value < 0.5 or id = 8)',
        "id=0"
        + "".join(f" or id={n % 10}" for n in range(500)),  # longer than SQLite's expression depth
    ],
)
def test_sql_and_python_agree(text: str) -> None:
    assert matching_in_sqlite(text) == matching_in_python(text)


_fields = st.sampled_from(["id", "category", "value", "category.x"])
_literals = st.one_of(
    st.integers(-10, 10),
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from(['"red"', '"Blue"', '""', '"é"', "true", "false", "null"]),
)
_globs = st.text(alphabet="ab*?[]!^-xé", max_size=6).map(lambda p: '"' + p + '"')


@st.composite
def _filters(draw: st.DrawFn, depth: int = 0) -> str:
    if depth < 3 and draw(st.booleans()):
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


@settings(max_examples=300, deadline=None)
@given(_filters())
def test_sql_and_python_agree_on_random_filters(text: str) -> None:
    assert matching_in_sqlite(text) == matching_in_python(text)


async def test_a_filter_matching_nothing_reads_no_row_into_python(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        counters = served.running.backends.dataset.counters
        request = pb.ListRequest(filter='category = "none"', page_size=100)
        with trio.fail_after(10):
            items = [i async for i in served.stub.ListLargeDataset(request)]
        assert items == []
        assert counters.rows_fetched == 0 and counters.pages_fetched == 1
        # A filter that matches some: each page holds matching rows only.
        request = pb.ListRequest(filter="id > 4900 and id <= 4950", page_size=10)
        with trio.fail_after(10):
            ids = [i.id async for i in served.stub.ListLargeDataset(request)]
        assert ids == list(range(4901, 4951))
        assert counters.rows_fetched == 50 and counters.pages_fetched == 1 + 6
        assert ROWS > 4950
