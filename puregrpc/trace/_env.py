"""``PUREGRPC_TRACE``: turn tracing on from the environment.

==========================  ================================================
value                       trace goes to
==========================  ================================================
unset, empty, ``0``         nowhere (tracing off)
``1``, ``stderr``           standard error, as text
``stdout``                  standard output, as text
``PATH.jsonl``              a file, as JSON Lines (appended)
``PATH`` (anything else)    a file, as text (appended)
``text:PATH``/``json:PATH`` a file, in the format named
==========================  ================================================

``Server`` and ``Channel`` call :func:`tracer_from_environment` (through
``puregrpc.runtime``, which imports this package only when the variable is
set) when their options carry no tracer of their own, so every side of a process can be
traced without touching its code. One destination gets one :class:`Trace`
per process: a client and a server in the same process write to one file,
on one clock, with their records interleaved in order.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Mapping

from ..runtime import TRACE_ENV_VAR
from ..runtime import tracer_or_environment as tracer_or_environment
from ..wire import NULL_TRACER, Tracer
from ._sinks import JsonLinesSink, TextSink
from ._tracer import Sink, Trace

#: The environment variable read.
ENV_VAR = TRACE_ENV_VAR

_traces: dict[str, Trace] = {}


def sink_for_destination(destination: str) -> Sink:
    """Open the sink a ``PUREGRPC_TRACE``-style destination names.

    Raises :class:`ValueError` naming the problem (an unknown format, a file
    that cannot be opened).
    """
    if destination in ("1", "stderr"):
        return TextSink(sys.stderr)
    if destination == "stdout":
        return TextSink(sys.stdout)
    fmt, sep, path = destination.partition(":")
    if not sep or fmt not in ("text", "json", "jsonl"):
        fmt, path = ("json" if destination.endswith((".jsonl", ".json")) else "text"), destination
    if not path:
        raise ValueError(f"{ENV_VAR}={destination!r} names no file")
    try:
        file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - the sink owns and closes it
    except OSError as exc:
        raise ValueError(f"{ENV_VAR}={destination!r}: cannot open {path!r}: {exc}") from None
    if fmt == "text":
        return TextSink(file, color=False, close_file=True)
    return JsonLinesSink(file, close_file=True)


def tracer_from_environment(environ: Mapping[str, str] | None = None) -> Tracer:
    """The tracer ``PUREGRPC_TRACE`` asks for, or the disabled one.

    The same destination always yields the same :class:`Trace` in a process;
    its sink is closed at exit. Raises :class:`ValueError` for a value that
    names no usable destination, so a typo fails loudly at start-up.
    """
    env = os.environ if environ is None else environ
    destination = env.get(ENV_VAR, "").strip()
    if destination in ("", "0"):
        return NULL_TRACER
    trace = _traces.get(destination)
    if trace is None:
        trace = Trace([sink_for_destination(destination)])
        _traces[destination] = trace
        atexit.register(trace.close)
    return trace
