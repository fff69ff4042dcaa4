"""What the ``puregrpc-streaming`` commands share: streams, errors, argument types."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TextIO

import trio
from google.protobuf.timestamp_pb2 import Timestamp

from puregrpc import RpcError, StatusCode

#: The environment variable client commands read their bearer token from.
TOKEN_VARIABLE = "PUREGRPC_STREAMING_TOKEN"
DEFAULT_PORT = 50051
DEFAULT_TARGET = f"127.0.0.1:{DEFAULT_PORT}"
#: Deadline of a unary call when --timeout does not say.
DEFAULT_UNARY_TIMEOUT = 10.0

EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input to a subcommand (a malformed line, conflicting options): exit 2."""


@dataclass(frozen=True, slots=True)
class Streams:
    """Where a command reads its input and writes its output."""

    stdin: TextIO
    stdout: TextIO
    stderr: TextIO

    def out(self, text: str) -> None:
        """One line of results on stdout."""
        print(text, file=self.stdout, flush=True)

    def note(self, text: str) -> None:
        """One line of commentary (progress, reconnections) on stderr."""
        print(text, file=self.stderr, flush=True)


# ----------------------------------------------------------------- parsing


def size_arg(text: str) -> int:
    """A byte count: ``1048576``, ``64K``, ``100M``, ``1G`` (binary units)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, multiplier = text, 1
    if text[-1:].upper() in units:
        number, multiplier = text[:-1], units[text[-1].upper()]
    try:
        value = int(number) * multiplier
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a byte count: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def positive_float_arg(text: str) -> float:
    """An argparse type: a number greater than zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def nonnegative_float_arg(text: str) -> float:
    """An argparse type: a number, zero or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def count_arg(text: str) -> int:
    """An argparse type: a non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


class LineReader:
    """The lines of a text stream without newlines, each read in a worker thread.

    A class rather than an async generator: nothing to close when a loop
    over it stops early.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __aiter__(self) -> LineReader:
        return self

    async def __anext__(self) -> str:
        line = await trio.to_thread.run_sync(self._stream.readline, abandon_on_cancel=True)
        if not line:
            raise StopAsyncIteration
        return line.rstrip("\r\n")


def when(timestamp: Timestamp) -> str:
    """A timestamp as ISO 8601 in UTC, to the millisecond (``-`` when unset)."""
    if not timestamp.seconds and not timestamp.nanos:
        return "-"
    return timestamp.ToDatetime(tzinfo=UTC).isoformat(timespec="milliseconds")


def as_text(data: bytes) -> str:
    """Bytes as text, undecodable bytes escaped."""
    return data.decode("utf-8", errors="backslashreplace")


async def file_size(path: Path) -> int:
    """The size of ``path``, 0 if it does not exist."""
    try:
        return (await trio.Path(path).stat()).st_size
    except FileNotFoundError:
        return 0


def describe(exc: RpcError) -> str:
    """The one-line description of a failed call the commands print."""
    if exc.code is StatusCode.UNAVAILABLE and exc.details.startswith("cannot connect"):
        return exc.details
    return str(exc)
