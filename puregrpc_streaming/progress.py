"""A small transfer progress display: a redrawn bar on a terminal, plain lines elsewhere.

On a tty the bar is redrawn in place (at most ten times a second) and ends
with a newline. Anywhere else (a pipe, a log file, a test) redrawing would
only litter the output, so a plain line is written at each quarter of the
total instead, plus one at the end.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "format_bytes"]

_BAR_WIDTH = 30
#: Seconds between two redraws of the bar on a terminal.
_REDRAW_INTERVAL = 0.1


def format_bytes(count: float) -> str:
    """``count`` bytes in binary units, e.g. ``"12.5 MiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


class Progress:
    """Progress of one transfer of ``total`` bytes (``None``: unknown yet).

    Call :meth:`advance` as bytes move and :meth:`finish` at the end
    (``unit="rows"`` counts something else than bytes). The
    total may be learnt late (a download learns it from its first chunk):
    set :attr:`total`. ``start`` is where a resumed transfer begins, so the
    rate counts only the bytes moved now.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        start: int = 0,
        stream: TextIO | None = None,
        tty: bool | None = None,
        unit: str = "bytes",
    ) -> None:
        self.label = label
        #: What is counted: ``"bytes"`` (shown in KiB/MiB, rate in MB/s) or a noun.
        self.unit = unit
        #: The size of the whole transfer, when known.
        self.total = total
        #: Bytes done so far (including ``start``).
        self.done = start
        self._start = start
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._began = time.perf_counter()
        self._last_draw = 0.0
        self._next_quarter = 1
        self._finished = False

    @property
    def elapsed(self) -> float:
        """Seconds since the transfer began."""
        return time.perf_counter() - self._began

    @property
    def rate(self) -> float:
        """Bytes per second moved by this run (resumed bytes not counted)."""
        elapsed = self.elapsed
        return (self.done - self._start) / elapsed if elapsed > 0 else 0.0

    def resume_at(self, offset: int) -> None:
        """The transfer continues from ``offset`` (bytes already done earlier)."""
        self.done = self._start = offset

    def advance(self, count: int) -> None:
        """``count`` more bytes have moved."""
        self.done += count
        if self._tty:
            now = time.perf_counter()
            if now - self._last_draw >= _REDRAW_INTERVAL:
                self._last_draw = now
                self._draw_bar(end="")
            return
        total = self.total
        if not total:
            return
        while self._next_quarter < 4 and self.done * 4 >= total * self._next_quarter:
            # Quarters already passed before a resume are not reported.
            if self._start * 4 < total * self._next_quarter:
                self._write(f"{self.label}: {self._next_quarter * 25}% {self._figures()}\n")
            self._next_quarter += 1

    def finish(self, note: str = "") -> None:
        """The transfer ended: draw the final state (once)."""
        if self._finished:
            return
        self._finished = True
        suffix = f" {note}" if note else ""
        if self._tty:
            self._draw_bar(end=f"{suffix}\n")
        else:
            self._write(f"{self.label}: done {self._figures()}{suffix}\n")

    def _figures(self) -> str:
        if self.unit != "bytes":
            done = f"{self.done:,}" + (f"/{self.total:,}" if self.total is not None else "")
            return f"{done} {self.unit} at {self.rate:,.0f}/s"
        size = format_bytes(self.done)
        if self.total is not None:
            size += f"/{format_bytes(self.total)}"
        return f"{size} at {self.rate / 1e6:,.1f} MB/s"

    def _draw_bar(self, *, end: str) -> None:
        total = self.total
        if total:
            fraction = min(self.done / total, 1.0)
            filled = int(fraction * _BAR_WIDTH)
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            text = f"\r{self.label} [{bar}] {fraction:4.0%} {self._figures()}"
        else:
            text = f"\r{self.label} {self._figures()}"
        # Pad so a shorter redraw fully covers the previous one.
        self._write(f"{text:<90}{end}")

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
