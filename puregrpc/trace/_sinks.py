"""Sinks: aligned text for people, JSON Lines for tools, a list for tests.

Text lines read left to right as *when, who, which stream, which way, what*::

     12.418 ms  server#1  s1   → DATA          len=16384 msg#2[0..16384/65541] win=0 conn=16645149
     12.431 ms  server#1  s1   · stall         send_window=0 queued=49162 conn_send_window=16645149

``→`` is sent by the side named, ``←`` received by it, ``·`` happened inside
it. On a terminal, kinds are coloured (stalls red, resumes green, grants
yellow, messages bold) unless ``NO_COLOR`` is set.
"""

from __future__ import annotations

import os
from typing import Any, TextIO

from ._decoder import error_name
from ._event import TraceEvent

_RESET = "\x1b[0m"
_COLORS = {
    "frame_out": "\x1b[36m",  # cyan
    "frame_in": "\x1b[34m",  # blue
    "message_out": "\x1b[1;32m",  # bold green
    "message_in": "\x1b[1;32m",
    "stall": "\x1b[1;31m",  # bold red
    "resume": "\x1b[32m",  # green
    "window_grant": "\x1b[33m",  # yellow
    "window_update": "\x1b[33m",
    "call_start": "\x1b[1;35m",  # bold magenta
    "call_end": "\x1b[1;35m",
    "decode_error": "\x1b[31m",
}
_ARROWS = {"frame_out": "→", "message_out": "→", "frame_in": "←", "message_in": "←"}


def _ms(seconds: object) -> str:
    return f"{seconds * 1000:.3f} ms" if isinstance(seconds, int | float) else "?"


def _frame_details(f: dict[str, Any]) -> str:
    """The type-specific part of a frame line."""
    frame_type = f.get("type")
    flags = [flag for flag in f.get("flags", []) if flag not in ("END_HEADERS", "ACK")]
    out = []
    if frame_type == "DATA":
        out.append(f"len={f.get('length')}")
        for seq, offset, size, total in f.get("parts", []):
            whole = "?" if total is None else total
            out.append(f"msg#{seq}[{offset}..{offset + size}/{whole}]")
        out.append(f"win={f.get('window')} conn={f.get('conn_window')}")
    elif frame_type in ("HEADERS", "CONTINUATION"):
        if "block" in f:
            out.append(str(f["block"]))
        out.extend(f"{name}={value}" for name, value in f.get("headers", []))
    elif frame_type == "SETTINGS":
        if f.get("ack"):
            out.append("ACK")
        out.extend(f"{name}={value}" for name, value in f.get("settings", {}).items())
    elif frame_type == "WINDOW_UPDATE":
        out.append(f"+{f.get('increment')} -> window {f.get('window')} ({f.get('flow_dir')} data)")
    elif frame_type == "PING":
        out.append(("ACK " if f.get("ack") else "") + f"data={f.get('data')}")
        if "rtt" in f:
            out.append(f"rtt={_ms(f['rtt'])}")
    elif frame_type == "GOAWAY":
        out.append(f"last_stream={f.get('last_stream_id')} {f.get('error')}")
        if f.get("debug"):
            out.append(repr(f["debug"]))
    elif frame_type == "RST_STREAM":
        out.append(str(f.get("error")))
    else:
        out.append(f"len={f.get('length')}")
    out.extend(flags)
    return " ".join(out)


def _flow(f: dict[str, Any], *, sending: bool) -> str:
    """The flow-control state that matters to one side of a record, compactly."""
    keys: tuple[tuple[str, str], ...]
    if sending:
        keys = (("send_window", "win"), ("conn_send_window", "conn"), ("queued", "queued"))
    else:
        keys = (
            ("receive_window", "recv_win"),
            ("conn_receive_window", "conn"),
            ("unconsumed", "unconsumed"),
            ("ungranted", "ungranted"),
        )
    return " ".join(f"{short}={f[key]}" for key, short in keys if key in f)


def _details(event: TraceEvent) -> tuple[str, str]:
    """(label, details) of one event."""
    f = event.fields
    kind = event.kind
    if kind in ("frame_in", "frame_out"):
        return str(f.get("type")), _frame_details(f)
    if kind in ("message_in", "message_out"):
        text = f"len={f.get('length')}" + (" compressed" if f.get("compressed") else "")
        if "window" in f:
            text += f" win={f['window']} conn={f.get('conn_window')}"
        flow = _flow(f, sending=kind == "message_out")
        value = f.get("value")
        return f"message #{f.get('seq')}", " ".join(
            part for part in (text, flow, str(value) if value else "") if part
        )
    if kind == "call_start":
        timeout = f.get("timeout")
        shown = f" timeout={timeout:.3f}s" if isinstance(timeout, int | float) else ""
        return "call", f"{f.get('path')}{shown}"
    if kind == "call_end":
        if "reset" in f:
            code = f" ({f['code']})" if "code" in f else ""
            return "end", f"RST_STREAM {error_name(int(f['reset']))}{code}"
        message = f" {f['message']!r}" if f.get("message") else ""
        return "end", f"{f.get('code')}{message}"
    if kind == "consume":
        return "consume", f"len={f.get('length')} {_flow(f, sending=False)}"
    if kind == "window_grant":
        return "grant", f"+{f.get('increment')} (we send WINDOW_UPDATE)"
    if kind == "window_update":
        return "granted", f"+{f.get('increment')} (peer's WINDOW_UPDATE)"
    if kind == "stall":
        inferred = " (inferred: window exhausted)" if f.get("inferred") else ""
        return "STALL", _flow(f, sending=True) + inferred
    if kind == "resume":
        after = f" after {_ms(f['stalled_for'])}" if "stalled_for" in f else ""
        return "resume", f"sending again{after}"
    rest = " ".join(f"{k}={v}" for k, v in f.items())
    return kind, rest


def format_text(event: TraceEvent, *, color: bool = False) -> str:
    """One aligned line for ``event`` (no newline)."""
    label, details = _details(event)
    arrow = _ARROWS.get(event.kind, "·")
    who = f"{event.role}#{event.conn}"
    line = f"{event.t * 1000:10.3f} ms  {who:<9} s{event.stream:<4} {arrow} {label:<13} {details}"
    if color:
        start = _COLORS.get(event.kind)
        if start:
            return f"{start}{line}{_RESET}"
    return line.rstrip()


class TextSink:
    """Writes one aligned line per event; coloured when ``color`` (default: a tty)."""

    def __init__(self, file: TextIO, *, color: bool | None = None, close_file: bool = False):
        self._file = file
        if color is None:
            color = file.isatty() and not os.environ.get("NO_COLOR")
        self._color = color
        self._close_file = close_file

    def write(self, event: TraceEvent) -> None:
        """Write the event's line and flush, so a crash loses nothing."""
        self._file.write(format_text(event, color=self._color) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Flush; close the file if this sink opened it. Closing twice is harmless."""
        if self._file.closed:
            return
        self._file.flush()
        if self._close_file:
            self._file.close()


class JsonLinesSink:
    """Writes one JSON object per line (schema in :mod:`puregrpc.trace._event`)."""

    def __init__(self, file: TextIO, *, close_file: bool = False):
        self._file = file
        self._close_file = close_file

    def write(self, event: TraceEvent) -> None:
        """Write the event's JSON line and flush."""
        self._file.write(event.to_json() + "\n")
        self._file.flush()

    def close(self) -> None:
        """Flush; close the file if this sink opened it. Closing twice is harmless."""
        if self._file.closed:
            return
        self._file.flush()
        if self._close_file:
            self._file.close()


class ListSink:
    """Keeps every event in :attr:`events`; for tests and tools."""

    def __init__(self) -> None:
        #: The events received, in order.
        self.events: list[TraceEvent] = []

    def write(self, event: TraceEvent) -> None:
        """Append the event."""
        self.events.append(event)

    def close(self) -> None:
        """Nothing to release."""

    def of(self, kind: str, stream: int | None = None) -> list[TraceEvent]:
        """The events of one kind, optionally on one stream."""
        return [e for e in self.events if e.kind == kind and (stream is None or e.stream == stream)]
