"""The filter expression language (puregrpc_streaming.filters)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puregrpc_streaming.filters import FilterError, compile_filter, match_all

FILE = {"filename": "data.csv", "size": 2048, "checksum": "ab", "labels": {"host": "db-1"}}
ROW = {"id": 7, "category": "red", "value": 0.75, "flag": True, "none": None}


@pytest.mark.parametrize(
    ("text", "record", "expected"),
    [
        ('filename ~ "*.csv" and size > 1000', FILE, True),
        ('filename ~ "*.csv" and size > 4096', FILE, False),
        ('filename !~ "*.txt"', FILE, True),
        ("filename ~ 'data.???'", FILE, True),
        ('filename ~ "[de]ata.csv"', FILE, True),
        ('category = "red" or value >= 0.5', ROW, True),
        ('category == "blue" or value >= 0.8', ROW, False),
        ('not (category = "red")', ROW, False),
        ('NOT category = "blue" AND id <= 7', ROW, True),
        ("id != 7", ROW, False),
        ("id = 7.0", ROW, True),  # integers and decimals compare as numbers
        ("value < 1", ROW, True),
        ("value > -1e3", ROW, True),
        ("flag = true", ROW, True),
        ("flag = 1", ROW, False),  # a boolean is not a number
        ("none = null", ROW, True),
        ('id = "7"', ROW, False),  # different kinds are never equal...
        ('id != "7"', ROW, True),  # ...so they are always different
        ('id < "8"', ROW, False),  # and never ordered
        ('category > "blue"', ROW, True),  # strings order lexicographically
        ("missing = 1", ROW, False),  # a missing field fails every comparison
        ("missing != 1", ROW, False),
        ("not (missing = 1)", ROW, True),
        ('labels.host = "db-1"', FILE, True),
        ('labels.zone = "x"', FILE, False),
        ('filename.part = "x"', FILE, False),  # not an object: missing
        ('(id = 1 or id = 7) and (category = "red")', ROW, True),
        ("id = 1 or id = 2 or id = 7", ROW, True),
        ('category = "r\\"ed"', {"category": 'r"ed'}, True),
        ("", ROW, True),
        ("   ", ROW, True),
    ],
)
def test_evaluation(text: str, record: dict[str, Any], expected: bool) -> None:
    assert compile_filter(text)(record) is expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "size >",
            "expected a value (a string, number, true, false or null) after '>' at column 7",
        ),
        ("size", "expected a comparison"),
        ("> 3", "expected a field name at column 1"),
        ("size > 1 and", "expected a field name at column 13"),
        ("size > 1 size < 2", "unexpected 'size' at column 10"),
        ("(size > 1", "expected ')' at column 10 to close the '(' at column 1"),
        ("size > 1)", "unexpected ')'"),
        ('name = "open', "string starting at column 8 is not closed"),
        ('name = "\\q"', "unknown escape"),
        ("size ~ 3", "must be a string"),
        ("size # 3", "unexpected '#' at column 6"),
        ("size > ¹", "unexpected '¹' at column 8"),
        ("size > -", "unexpected '-' at column 8"),
        ("size ! 3", "unexpected '!'"),
        ("size > 1e999", "out of range"),
        ("size = and", "expected a value"),
        ("not " * 100 + "a = 1", "nests more than 64 levels"),
        ("(" * 100 + "a = 1" + ")" * 100, "nests more than 64 levels"),
        ("a = 1 or " * 1000 + "a = 2", "too long"),
    ],
)
def test_malformed_filters(text: str, needle: str) -> None:
    with pytest.raises(FilterError) as caught:
        compile_filter(text)
    assert needle in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_allowed_fields() -> None:
    predicate = compile_filter("value > 0.5", fields=("id", "value"))
    assert predicate({"id": 1, "value": 0.9})
    with pytest.raises(FilterError, match="unknown field 'colour' at column 1; the fields are id"):
        compile_filter("colour = 'red'", fields=("id", "value"))


def test_empty_filter_is_match_all() -> None:
    assert compile_filter("") is match_all


_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=5)
)


@given(
    st.sampled_from(["x = 1", 'x ~ "a*"', "x < 'b'", "not (x >= 2.5)", "x.y != null"]),
    st.dictionaries(st.sampled_from(["x", "y"]), _values | st.dictionaries(st.just("y"), _values)),
)
def test_evaluation_never_raises(text: str, record: dict[str, Any]) -> None:
    assert compile_filter(text)(record) in (True, False)


#: Characters the grammar cares about, and a few that look like digits or letters.
_FILTER_CHARS = st.sampled_from(list("ab_ .-09eE()=!<>~\"'\\ntrufalsnotdor*?[]¹٣é"))


@given(st.text(_FILTER_CHARS, max_size=30) | st.text(max_size=30))
def test_parsing_raises_only_filter_errors(text: str) -> None:
    try:
        compile_filter(text)
    except FilterError:
        pass
