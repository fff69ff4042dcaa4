"""The server's log output: text lines, or JSON lines for log collectors.

:func:`configure_logging` sends the root logger's records to a stream, as
text (``time level logger: message``) or, with ``json_lines``, one JSON
object a line (:class:`JsonLinesFormatter`): ``time`` (ISO 8601, UTC),
``level``, ``logger``, ``message``, the call log's fields without their
``grpc_`` prefix (``method``, ``peer``, ``code``, ``duration``,
``received``, ``sent``, ``details``) when the record has them, and
``exception`` (the formatted traceback) when it carries one.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["JsonLinesFormatter", "configure_logging"]

#: The call log's record attributes (puregrpc.interceptors.CallLogInterceptor).
_CALL_FIELDS = (
    "grpc_method",
    "grpc_peer",
    "grpc_code",
    "grpc_duration",
    "grpc_received",
    "grpc_sent",
    "grpc_details",
)


_HANDLER_NAME = "puregrpc_streaming.configure_logging"


class JsonLinesFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line."""
        fields: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _CALL_FIELDS:
            if hasattr(record, name):
                value = getattr(record, name)
                fields[name.removeprefix("grpc_")] = (
                    round(value, 6) if isinstance(value, float) else value
                )
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json.dumps(fields, ensure_ascii=False, default=str)


def configure_logging(
    stream: TextIO, *, level: str | int = "INFO", json_lines: bool = False
) -> None:
    """Log records at ``level`` and above to ``stream``, as text or JSON lines.

    Replaces the handler an earlier call installed on the root logger (and
    only that one), so calling it again (a second server in one process,
    tests) does not log each line twice.
    """
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        JsonLinesFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
