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

The same filter compiles for PostgreSQL with ``dialect="postgres"``:
``%s`` placeholders, ``TRUE``/``FALSE``, strings compared ``COLLATE "C"``
(code point order on UTF-8) and every glob as an anchored regular
expression (``~``) built here from fnmatch's own reading of the pattern
(:func:`glob_to_regex`), so no function needs registering.
"""

from __future__ import annotations

import fnmatch
import re
import sqlite3
from collections.abc import Mapping
from typing import Any, Literal

from .filters import AllOf, AnyOf, Comparison, Filter, Not

__all__ = [
    "GLOB_FUNCTION",
    "ColumnKind",
    "Dialect",
    "filter_to_sql",
    "glob_to_regex",
    "register_functions",
]

#: The kind of value a column holds.
ColumnKind = Literal["number", "string"]
#: The SQL a condition is written in.
Dialect = Literal["sqlite", "postgres"]
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


def filter_to_sql(
    tree: Filter, columns: Mapping[str, ColumnKind], dialect: Dialect = "sqlite"
) -> tuple[str, list[Any]]:
    """The SQL condition of ``tree`` over ``columns`` (name -> kind), and its parameters.

    Every field ``tree`` names must be a key of ``columns`` (parse with
    ``fields=columns``); the names are used as SQL column names.
    """
    params: list[Any] = []
    return _condition(tree, _Columns(columns, dialect), params), params


class _Columns:
    """The columns and the dialect, passed down the tree together."""

    __slots__ = ("dialect", "kinds")

    def __init__(self, kinds: Mapping[str, ColumnKind], dialect: Dialect) -> None:
        self.kinds = kinds
        self.dialect = dialect

    def __getitem__(self, name: str) -> ColumnKind:
        return self.kinds[name]

    def constant(self, value: bool) -> str:
        if self.dialect == "postgres":
            return "TRUE" if value else "FALSE"
        return "1" if value else "0"

    @property
    def slot(self) -> str:
        return "%s" if self.dialect == "postgres" else "?"


def _condition(tree: Filter, columns: _Columns, params: list[Any]) -> str:
    if isinstance(tree, Comparison):
        return _comparison(tree, columns, params)
    if isinstance(tree, Not):
        return f"(NOT {_condition(tree.inner, columns, params)})"
    joiner = " AND " if isinstance(tree, AllOf) else " OR "
    return _balanced(list(tree.parts), joiner, columns, params, kind=type(tree))


def _balanced(
    parts: list[Filter],
    joiner: str,
    columns: _Columns,
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


def _comparison(node: Comparison, columns: _Columns, params: list[Any]) -> str:
    column_kind = columns[node.path[0]]
    column = node.path[0]
    slot = columns.slot
    if len(node.path) > 1:
        return columns.constant(False)  # a column has no fields: every comparison is false
    op, literal = node.op, node.literal
    postgres = columns.dialect == "postgres"
    if op in ("~", "!~"):
        if column_kind != "string":
            return columns.constant(False)
        negate = "NOT " if op == "!~" else ""
        if postgres:
            params.append(glob_to_regex(str(literal)))
            return f'({negate}({column} COLLATE "C" ~ {slot}))'
        glob = _as_glob(str(literal))
        if glob is None:
            params.append(literal)
            return f"({negate}{GLOB_FUNCTION}({column}, ?))"
        params.append(glob)
        return f"({negate}{column} GLOB ?)"
    same_kind = _kind(literal) == column_kind
    if not same_kind:
        # Never equal, always different, never ordered.
        return columns.constant(op == "!=")
    params.append(_bindable(literal))
    if postgres and column_kind == "string":
        return f'({column} COLLATE "C" {op} {slot})'
    return f"({column} {op} {slot})"


def glob_to_regex(pattern: str) -> str:
    """``pattern`` (fnmatch syntax) as an anchored PostgreSQL regular expression.

    Sets are read as :func:`fnmatch.translate` reads them (a leading ``!``
    negates, a leading ``]`` is itself, empty ranges are dropped); every
    character is written as a ``\\U`` escape, so none is special.
    """
    out: list[str] = []
    pos, end = 0, len(pattern)
    while pos < end:
        char = pattern[pos]
        pos += 1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char != "[":
            out.append(_escape(char))
        else:
            close = pos
            if close < end and pattern[close] == "!":
                close += 1
            if close < end and pattern[close] == "]":
                close += 1
            while close < end and pattern[close] != "]":
                close += 1
            if close >= end:
                out.append(_escape("["))  # a "[" that opens no set is itself
                continue
            out.append(_regex_set(pattern[pos:close]))
            pos = close + 1
    return "^(?:" + "".join(out) + ")$"


def _escape(char: str) -> str:
    return f"\\U{ord(char):08x}"


def _regex_set(content: str) -> str:
    """A set's content (between the brackets) as fnmatch reads it, as a regex set."""
    negate = content.startswith("!")
    body = content[1:] if negate else content
    # fnmatch splits at each "-" after the first character: each split joins
    # the last character before it and the first after it into a range.
    chunks: list[str] = []
    start, search = 0, 1
    while (dash := body.find("-", search)) >= 0:
        chunks.append(body[start:dash])
        start, search = dash + 1, dash + 3
    last = body[start:]
    if last:
        chunks.append(last)
    elif chunks:
        chunks[-1] += "-"
    else:
        chunks.append(last)
    for k in range(len(chunks) - 1, 0, -1):  # an empty range is dropped
        if chunks[k - 1][-1] > chunks[k][0]:
            chunks[k - 1] = chunks[k - 1][:-1] + chunks[k][1:]
            del chunks[k]
    items: list[str] = []
    for k, chunk in enumerate(chunks):
        chars = list(chunk)
        if k > 0:  # its first character ends the range the previous chunk began
            items[-1] += "-" + _escape(chars.pop(0))
        items.extend(_escape(c) for c in chars)
    if not items:
        return "." if negate else "(?!.)."  # any character / nothing
    return "[" + ("^" if negate else "") + "".join(items) + "]"


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
