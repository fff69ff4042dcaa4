"""The filter expression language of WatchEvents and ListLargeDataset.

A filter is a boolean expression over the fields of a record (an event's JSON
payload, or a dataset row). Examples::

    filename ~ "*.csv" and size > 1000
    category = "red" or value >= 0.5
    not (type = "heartbeat") and labels.host != "db-1"

Grammar (keywords are case-insensitive)::

    expr       := or_expr
    or_expr    := and_expr ( "or" and_expr )*
    and_expr   := not_expr ( "and" not_expr )*
    not_expr   := "not" not_expr | primary
    primary    := "(" expr ")" | comparison
    comparison := FIELD OP LITERAL
    OP         := "=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "~" | "!~"
    FIELD      := NAME ( "." NAME )*          -- dots reach into nested objects
    LITERAL    := STRING | NUMBER | "true" | "false" | "null"
    STRING     := '"' ... '"' | "'" ... "'"   -- backslash escapes \\ \" \' \n \t
    NUMBER     := -?digits[.digits][e[+-]digits]

Semantics:

* ``~`` / ``!~`` match a string field against a shell glob (``*``, ``?``,
  ``[abc]``; case-sensitive, see :func:`fnmatch.fnmatchcase`); the pattern
  must be a string.
* ``=`` and ``!=`` compare values of the same kind: numbers with numbers
  (integers and decimals alike), strings with strings, booleans with
  booleans, ``null`` with null. Values of different kinds are never equal.
* ``<``, ``<=``, ``>``, ``>=`` order two numbers or two strings; any other
  pair is false.
* A field the record does not have makes its comparison false (``!=``
  included), so ``not (x = 1)`` is how to say "x is missing or not 1".

Evaluation never raises. A malformed filter raises :class:`FilterError` (a
``ValueError``) that names the problem and its column; the service answers
INVALID_ARGUMENT with that message.

:func:`parse_filter` gives the expression tree (:data:`Filter`), which
:func:`compile_filter` turns into a Python predicate and
:mod:`.filter_sql` into an SQL condition with the same meaning.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AllOf",
    "AnyOf",
    "Comparison",
    "Filter",
    "FilterError",
    "Not",
    "Predicate",
    "compile_filter",
    "match_all",
    "parse_filter",
]

#: A compiled filter: takes a record, says whether it matches.
Predicate = Callable[[Mapping[str, Any]], bool]

_MAX_FILTER_LENGTH = 4096
_MAX_DEPTH = 64

_COMPARISONS = frozenset({"=", "==", "!=", "<", "<=", ">", ">=", "~", "!~"})
_KEYWORDS = frozenset({"and", "or", "not", "true", "false", "null"})
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
# ASCII only: str.isdigit() also accepts characters such as "¹" that int() refuses.
_DIGITS = "0123456789"
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


class FilterError(ValueError):
    """A malformed filter expression; the message names the problem and column."""


def match_all(record: Mapping[str, Any]) -> bool:
    """The predicate of an empty filter: everything matches."""
    return True


@dataclass(frozen=True, slots=True)
class Comparison:
    """``FIELD OP LITERAL``: ``path`` is the field split at its dots."""

    path: tuple[str, ...]
    #: One of ``= != < <= > >= ~ !~`` (``==`` is read as ``=``).
    op: str
    #: A str, int, float, bool or None (a str for ``~`` and ``!~``).
    literal: Any


@dataclass(frozen=True, slots=True)
class AllOf:
    """``a and b and ...`` (two parts or more)."""

    parts: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """``a or b or ...`` (two parts or more)."""

    parts: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """``not inner``."""

    inner: Filter


#: A parsed filter expression.
Filter = Comparison | AllOf | AnyOf | Not


def parse_filter(text: str, *, fields: Collection[str] | None = None) -> Filter | None:
    """Parse ``text`` into its expression tree (``None``: an empty or blank text).

    ``fields``, when given, lists the top-level field names allowed; any
    other name is an error (useful where records have a fixed shape).
    """
    if len(text) > _MAX_FILTER_LENGTH:
        raise FilterError(
            f"filter is too long ({len(text)} characters, at most {_MAX_FILTER_LENGTH})"
        )
    tokens = _tokenize(text)
    if len(tokens) == 1:  # only the end marker
        return None
    return _Parser(tokens, text, fields).parse()


def compile_filter(text: str, *, fields: Collection[str] | None = None) -> Predicate:
    """Parse ``text`` into a predicate (an empty or blank text matches everything).

    ``fields`` as in :func:`parse_filter`.
    """
    tree = parse_filter(text, fields=fields)
    return match_all if tree is None else _predicate(tree)


def _predicate(tree: Filter) -> Predicate:
    if isinstance(tree, Comparison):
        return _comparison(tree.path, tree.op, tree.literal)
    if isinstance(tree, Not):
        inner = _predicate(tree.inner)
        return lambda record: not inner(record)
    parts = [_predicate(part) for part in tree.parts]
    if isinstance(tree, AllOf):
        return lambda record: all(part(record) for part in parts)
    return lambda record: any(part(record) for part in parts)


# ----------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "name", "string", "number", "op", "(", ")", "keyword", "end"
    value: Any
    column: int  # 1-based, for messages


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    length = len(text)
    while pos < length:
        char = text[pos]
        column = pos + 1
        if char.isspace():
            pos += 1
        elif char in "()":
            tokens.append(_Token(char, char, column))
            pos += 1
        elif char in "\"'":
            value, pos = _read_string(text, pos)
            tokens.append(_Token("string", value, column))
        elif _is_digit(char) or (char == "-" and _is_digit(text[pos + 1 : pos + 2])):
            match = _NUMBER.match(text, pos)
            assert match is not None  # a digit always matches
            literal = match.group()
            number: float | int = (
                float(literal) if any(c in literal for c in ".eE") else int(literal)
            )
            if isinstance(number, float) and not math.isfinite(number):
                raise FilterError(f"number {literal} at column {column} is out of range")
            tokens.append(_Token("number", number, column))
            pos = match.end()
        elif char in "=!<>~":
            two = text[pos : pos + 2]
            if two in _COMPARISONS:
                tokens.append(_Token("op", two, column))
                pos += 2
            elif char in _COMPARISONS:
                tokens.append(_Token("op", char, column))
                pos += 1
            else:
                raise FilterError(f"unexpected {char!r} at column {column}")
        elif char.isalpha() or char == "_":
            match = _NAME.match(text, pos)
            if match is None:  # pragma: no cover - the first character always matches
                raise FilterError(f"unexpected {char!r} at column {column}")
            word = match.group()
            if word.lower() in _KEYWORDS:
                tokens.append(_Token("keyword", word.lower(), column))
            else:
                tokens.append(_Token("name", word, column))
            pos = match.end()
        else:
            raise FilterError(f"unexpected {char!r} at column {column}")
    tokens.append(_Token("end", None, length + 1))
    return tokens


def _is_digit(char: str) -> bool:
    return len(char) == 1 and char in _DIGITS


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    pos = start + 1
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == quote:
            return "".join(out), pos + 1
        if char == "\\":
            escaped = text[pos + 1 : pos + 2]
            if escaped not in _ESCAPES:
                raise FilterError(f"unknown escape \\{escaped} at column {pos + 1}")
            out.append(_ESCAPES[escaped])
            pos += 2
            continue
        out.append(char)
        pos += 1
    raise FilterError(f"string starting at column {start + 1} is not closed")


# ----------------------------------------------------------------- parser


_MISSING = object()


def _lookup(record: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _kind(value: Any) -> str:
    # bool is an int in Python, but true is not 1 in a filter.
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "other"


def _comparison(path: tuple[str, ...], op: str, literal: Any) -> Predicate:
    literal_kind = _kind(literal)

    if op in ("~", "!~"):
        pattern = str(literal)
        negate = op == "!~"

        def glob(record: Mapping[str, Any]) -> bool:
            value = _lookup(record, path)
            if not isinstance(value, str):
                return False
            return fnmatch.fnmatchcase(value, pattern) != negate

        return glob

    if op in ("=", "==", "!="):
        negate = op == "!="

        def equality(record: Mapping[str, Any]) -> bool:
            value = _lookup(record, path)
            if value is _MISSING:
                return False
            equal = _kind(value) == literal_kind and value == literal
            return equal != negate

        return equality

    compare: Callable[[Any, Any], bool] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }[op]

    def ordering(record: Mapping[str, Any]) -> bool:
        value = _lookup(record, path)
        if _kind(value) != literal_kind or literal_kind not in ("number", "string"):
            return False
        return compare(value, literal)

    return ordering


class _Parser:
    """Recursive descent over the token list; one method per grammar rule."""

    def __init__(self, tokens: list[_Token], text: str, fields: Collection[str] | None) -> None:
        self._tokens = tokens
        self._pos = 0
        self._text = text
        self._fields = fields
        self._depth = 0

    def parse(self) -> Filter:
        tree = self._or()
        token = self._peek()
        if token.kind != "end":
            raise FilterError(
                f"unexpected {_describe(token)} at column {token.column}; "
                "expected 'and', 'or' or the end of the filter"
            )
        return tree

    def _peek(self) -> _Token:
        return self._tokens[self._pos]

    def _take(self) -> _Token:
        token = self._tokens[self._pos]
        self._pos += 1
        return token

    def _is_keyword(self, word: str) -> bool:
        token = self._peek()
        return token.kind == "keyword" and token.value == word

    def _or(self) -> Filter:
        parts = [self._and()]
        while self._is_keyword("or"):
            self._take()
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def _and(self) -> Filter:
        parts = [self._not()]
        while self._is_keyword("and"):
            self._take()
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def _not(self) -> Filter:
        if self._is_keyword("not"):
            self._take()
            return Not(self._nested(self._not))
        return self._primary()

    def _nested(self, rule: Callable[[], Filter]) -> Filter:
        # Bound the recursion: a filter of 3000 "not"s must be an error, not
        # a RecursionError in the handler.
        self._depth += 1
        if self._depth > _MAX_DEPTH:
            raise FilterError(f"filter nests more than {_MAX_DEPTH} levels deep")
        try:
            return rule()
        finally:
            self._depth -= 1

    def _primary(self) -> Filter:
        token = self._peek()
        if token.kind == "(":
            self._take()
            inner = self._nested(self._or)
            closing = self._take()
            if closing.kind != ")":
                raise FilterError(
                    f"expected ')' at column {closing.column} to close the '(' at column "
                    f"{token.column}, found {_describe(closing)}"
                )
            return inner
        return self._comparison()

    def _comparison(self) -> Comparison:
        field = self._take()
        if field.kind != "name":
            raise FilterError(
                f"expected a field name at column {field.column}, found {_describe(field)}"
            )
        path = tuple(field.value.split("."))
        if self._fields is not None and path[0] not in self._fields:
            allowed = ", ".join(sorted(self._fields))
            raise FilterError(
                f"unknown field {field.value!r} at column {field.column}; the fields are {allowed}"
            )
        op = self._take()
        if op.kind != "op":
            raise FilterError(
                f"expected a comparison (= != < <= > >= ~ !~) after {field.value!r} at column "
                f"{op.column}, found {_describe(op)}"
            )
        literal_token = self._take()
        literal = _literal(literal_token, op.value)
        return Comparison(path, "=" if op.value == "==" else op.value, literal)


def _literal(token: _Token, op: str) -> Any:
    if token.kind in ("string", "number"):
        value = token.value
    elif token.kind == "keyword" and token.value in ("true", "false", "null"):
        value = {"true": True, "false": False, "null": None}[token.value]
    else:
        raise FilterError(
            f"expected a value (a string, number, true, false or null) after {op!r} at column "
            f"{token.column}, found {_describe(token)}"
        )
    if op in ("~", "!~") and not isinstance(value, str):
        raise FilterError(f"the pattern after {op!r} at column {token.column} must be a string")
    return value


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the filter"
    if token.kind == "string":
        return f"string {token.value!r}"
    return repr(str(token.value))
