"""Filters (:mod:`.filters`) as SQLite conditions with the same meaning.

ListLargeDataset hands its filter to SQLite, so rows that do not match are
skipped inside the database: a filter that matches nothing costs one index
range scan in C, no Python per row. :func:`filter_to_sql` turns a parsed
filter into a condition and its parameters over columns whose kind is
known and which are never NULL (``number``: INTEGER or REAL; ``string``:
TEXT), reproducing the filter language's rules:

* a comparison of values of different kinds is false (``!=`` true), as is a
  dotted path into a column (a column has no fields) and an ordering of
  anything but two numbers or two strings;
* strings compare by code point, which is SQLite's BINARY collation on UTF-8;
* ``~`` is :func:`fnmatch.fnmatchcase`: SQLite's ``GLOB`` has the same
  ``*`` and ``?``, and the same sets for the plain ones (``[abc]``,
  ``[a-z]``, ``[!abc]``); any other pattern is matched by
  :data:`GLOB_FUNCTION`, a Python function the connection must register
  (:func:`register_functions`);
* integers beyond SQLite's 64 bits compare as doubles.
"""

from __future__ import annotations

import fnmatch
import re
import sqlite3
from collections.abc import Mapping
from typing import Any, Literal

from .filters import AllOf, AnyOf, Comparison, Filter, Not

__all__ = ["GLOB_FUNCTION", "ColumnKind", "filter_to_sql", "register_functions"]

#: The kind of value a column holds.
ColumnKind = Literal["number", "string"]
#: The SQL function name of a glob SQLite's GLOB cannot express.
GLOB_FUNCTION = "filter_glob"

_INT64 = (-(1 << 63), (1 << 63) - 1)
# Set contents GLOB reads as fnmatch does: letters, digits and a few
# punctuation marks, single or as ranges (the range check is below).
_PLAIN_SET = re.compile(r"(?:[A-Za-z0-9_.,:@ ](?:-[A-Za-z0-9_.,:@ ])?)+")
_SET_RANGE = re.compile(r"(.)-(.)")


def register_functions(conn: sqlite3.Connection) -> None:
    """Register :data:`GLOB_FUNCTION` on ``conn`` (once per connection)."""

    def glob(value: Any, pattern: Any) -> bool:
        return isinstance(value, str) and fnmatch.fnmatchcase(value, str(pattern))

    conn.create_function(GLOB_FUNCTION, 2, glob, deterministic=True)


def filter_to_sql(tree: Filter, columns: Mapping[str, ColumnKind]) -> tuple[str, list[Any]]:
    """The SQL condition of ``tree`` over ``columns`` (name -> kind), and its parameters.

    Every field ``tree`` names must be a key of ``columns`` (parse with
    ``fields=columns``); the names are used as SQL column names.
    """
    params: list[Any] = []
    return _condition(tree, columns, params), params


def _condition(tree: Filter, columns: Mapping[str, ColumnKind], params: list[Any]) -> str:
    if isinstance(tree, Comparison):
        return _comparison(tree, columns, params)
    if isinstance(tree, Not):
        return f"(NOT {_condition(tree.inner, columns, params)})"
    joiner = " AND " if isinstance(tree, AllOf) else " OR "
    return _balanced(list(tree.parts), joiner, columns, params, kind=type(tree))


def _balanced(
    parts: list[Filter],
    joiner: str,
    columns: Mapping[str, ColumnKind],
    params: list[Any],
    *,
    kind: type[AllOf] | type[AnyOf],
) -> str:
    # A balanced tree of ANDs or ORs: a long chain would otherwise be as
    # deep as it is long, against SQLite's expression depth limit (1000).
    if len(parts) <= 8:
        return "(" + joiner.join(_condition(p, columns, params) for p in parts) + ")"
    middle = len(parts) // 2
    left = _balanced(parts[:middle], joiner, columns, params, kind=kind)
    right = _balanced(parts[middle:], joiner, columns, params, kind=kind)
    return f"({left}{joiner}{right})"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null" if value is None else "other"


def _bindable(value: Any) -> Any:
    if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        try:
            return float(value)
        except OverflowError:
            return float("inf") if value > 0 else float("-inf")
    return value


def _comparison(node: Comparison, columns: Mapping[str, ColumnKind], params: list[Any]) -> str:
    column_kind = columns[node.path[0]]
    column = node.path[0]
    if len(node.path) > 1:
        return "0"  # a column has no fields: every comparison of one is false
    op, literal = node.op, node.literal
    if op in ("~", "!~"):
        if column_kind != "string":
            return "0"
        negate = "NOT " if op == "!~" else ""
        glob = _as_glob(str(literal))
        if glob is None:
            params.append(literal)
            return f"({negate}{GLOB_FUNCTION}({column}, ?))"
        params.append(glob)
        return f"({negate}{column} GLOB ?)"
    same_kind = _kind(literal) == column_kind
    if op in ("=", "!="):
        if not same_kind:
            return "0" if op == "=" else "1"
        params.append(_bindable(literal))
        return f"({column} {op} ?)"
    if not same_kind:
        return "0"  # orderings need two numbers or two strings
    params.append(_bindable(literal))
    return f"({column} {op} ?)"


def _as_glob(pattern: str) -> str | None:
    """``pattern`` (fnmatch syntax) as an SQLite GLOB pattern, or ``None`` if unsure."""
    out: list[str] = []
    pos = 0
    while pos < len(pattern):
        char = pattern[pos]
        if char != "[":
            out.append(char)
            pos += 1
            continue
        close = pattern.find("]", pos + 1)
        if close == -1:
            out.append("[[]")  # fnmatch: a "[" that opens no set is itself
            pos += 1
            continue
        content = pattern[pos + 1 : close]
        negate = content.startswith("!")
        body = content[1:] if negate else content
        if not _PLAIN_SET.fullmatch(body) or any(a > b for a, b in _SET_RANGE.findall(body)):
            return None
        out.append("[" + ("^" if negate else "") + body + "]")
        pos = close + 1
    return "".join(out)
