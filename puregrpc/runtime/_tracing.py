"""Tracing asked for by the environment, without the trace package's import cost.

``Server`` and ``Channel`` trace when their options carry an enabled tracer,
or when ``PUREGRPC_TRACE`` names a destination. Only in that second case is
:mod:`puregrpc.trace` imported: it decodes protobuf messages (protobuf's
descriptor pool) and draws timelines, none of which a program that does not
trace should pay for at import time.
"""

from __future__ import annotations

import importlib
import os

from ..wire import Tracer

#: The environment variable that turns tracing on (see ``puregrpc.trace``).
TRACE_ENV_VAR = "PUREGRPC_TRACE"
_OFF = ("", "0")


def tracer_or_environment(tracer: Tracer) -> Tracer:
    """``tracer`` if it is enabled, else whatever ``PUREGRPC_TRACE`` asks for.

    Raises :class:`ValueError` for a value that names no usable destination.
    """
    if tracer.enabled or os.environ.get(TRACE_ENV_VAR, "").strip() in _OFF:
        return tracer
    trace = importlib.import_module("puregrpc.trace")
    resolved: Tracer = trace.tracer_from_environment()
    return resolved
