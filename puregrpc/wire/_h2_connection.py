"""puregrpc's subclass of h2's connection, and the h2 internals it relies on.

h2 is the HTTP/2 state machine of record: stream states, flow-control
windows, HPACK, frame parsing. Three things gRPC needs differ from what h2
does, and changing them means overriding private methods of
``h2.connection.H2Connection``:

* GOAWAY does not end the connection (RFC 9113 §6.8 only stops *new*
  streams; gRPC's two-step graceful shutdown keeps frames flowing after it).
* No ``repr()`` of every received frame for a trace log that is discarded.
* A cheap "is anything queued?" test, so a driver skips waking its writer.
* HPACK that codes each repeated header block once (``_hpack_cache.py``):
  h2's ``encoder`` and ``decoder`` are replaced by caching subclasses.

Every private name used is listed in :data:`H2_INTERNALS`, and pyproject.toml
pins h2 to :data:`SUPPORTED_H2`, the releases these were checked against.
:func:`check_h2_compatibility` reports an installed h2 outside that range, or
one that lacks an internal, naming what to re-check; the test suite runs it.
"""

from __future__ import annotations

import collections

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
import hpack.table
from hyperframe.frame import Frame, GoAwayFrame, RstStreamFrame, SettingsFrame

from ._hpack_cache import CachingDecoder, CachingEncoder

#: The h2 releases this module was checked against (pyproject.toml pins the same).
SUPPORTED_H2 = ">=4.1,<4.5"
_SUPPORTED_RANGE = ((4, 1), (4, 5))

#: The private parts of h2 this module uses: re-check each against a new h2
#: release before widening :data:`SUPPORTED_H2`.
H2_INTERNALS: tuple[tuple[str, str], ...] = (
    ("H2Connection._receive_frame", "overridden: dispatch without repr(frame); error handling"),
    ("H2Connection._receive_goaway_frame", "overridden: GOAWAY leaves the state machine open"),
    ("H2Connection._frame_dispatch_table", "frame class -> handler, used by _receive_frame"),
    ("H2Connection._prepare_for_sending", "queues serialized frames (GOAWAY, RST_STREAM)"),
    ("H2Connection._stream_is_closed_by_reset", "a frame for a stream we reset: RST_STREAM"),
    ("H2Connection._stream_is_closed_by_end", "a frame for a stream ended cleanly: error"),
    ("H2Connection._data_to_send", "the outbound buffer, peeked by has_data_to_send()"),
    ("StreamClosedError._events", "events h2 still reports for a late frame"),
    ("Settings._settings", "setting -> queue of values (popleft, append, [0], len)"),
    ("H2Connection.encoder", "replaced by _hpack_cache.CachingEncoder"),
    ("H2Connection.decoder", "replaced by _hpack_cache.CachingDecoder"),
    ("HeaderTable.resized", "hpack: a table size change is pending (the encoder's cache waits)"),
    ("HeaderTable.dynamic_entries", "hpack: its length and front entry tell a block changed it"),
    ("Decoder._assert_valid_table_size", "hpack: checked again on a decoder cache hit"),
)


class _SettingValues(list[int]):
    """A setting's current value and any not yet acknowledged, in a list.

    h2 keeps each one in a ``collections.deque``, whose first block costs
    about 600 bytes: some 10 KB for the two ``Settings`` of every connection,
    a quarter of an idle connection's memory. A setting rarely holds more
    than two values, so a list with ``popleft`` does the same job in ~70.
    """

    __slots__ = ()

    def popleft(self) -> int:
        """Remove and return the oldest value (what ``deque.popleft`` does)."""
        return self.pop(0)


def _compact_settings(settings: h2.settings.Settings) -> None:
    """Swap h2's per-setting deques for :class:`_SettingValues` lists.

    Done when the connection is made and after each SETTINGS frame: h2 makes
    a deque for every setting first set in between (MAX_CONCURRENT_STREAMS,
    MAX_HEADER_LIST_SIZE...), and only appends to it until then.
    """
    values: dict[object, object] = settings._settings  # type: ignore[assignment]
    for key, queue in values.items():
        if isinstance(queue, collections.deque):
            values[key] = _SettingValues(queue)


def _rst_stream(stream_id: int, error_code: int) -> RstStreamFrame:
    frame = RstStreamFrame(stream_id)
    frame.error_code = error_code
    return frame


def error_code(code: int) -> h2.errors.ErrorCodes | int:
    """An HTTP/2 error code as h2's enum when it is a known one, else the int."""
    try:
        return h2.errors.ErrorCodes(code)
    except ValueError:
        return code


class H2Connection(h2.connection.H2Connection):
    """h2's connection, with GOAWAY handled the way gRPC needs it.

    h2 treats a GOAWAY, sent or received, as the end of the connection: it
    moves to CLOSED, drops what it had queued to send, and refuses every frame
    after it. But a GOAWAY only says "no *new* streams above this id"
    (RFC 9113 §6.8): calls already running must be able to finish, and the
    two-step graceful shutdown of gRPC servers (GOAWAY, PING, GOAWAY) needs
    frames to keep flowing. So GOAWAY frames bypass h2's connection state
    machine here, in both directions; the gRPC layer refuses new calls itself.
    """

    def __init__(self, config: h2.config.H2Configuration | None = None) -> None:
        super().__init__(config)
        _compact_settings(self.local_settings)
        _compact_settings(self.remote_settings)
        self.encoder = CachingEncoder()
        self.decoder = CachingDecoder(self.DEFAULT_MAX_HEADER_LIST_SIZE)

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[object], list[object]]:  # type: ignore[override]
        event = h2.events.ConnectionTerminated()
        event.error_code = error_code(frame.error_code)
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    def _receive_frame(self, frame: Frame) -> list[h2.events.Event]:
        """Dispatch one received frame, as h2 does, minus its trace formatting.

        h2's own version starts with ``logger.trace("...", repr(frame))``: the
        repr is built for every frame received even though the default logger
        discards it, a measurable cost per frame. The error handling is h2's:
        a frame for a stream we reset earns a RST_STREAM, and a frame for a
        stream closed by END_STREAM, or closed implicitly, is a connection error.
        """
        events: list[h2.events.Event]
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except h2.exceptions.StreamClosedError as exc:
            if not self._stream_is_closed_by_reset(exc.stream_id):
                raise
            self._prepare_for_sending([_rst_stream(exc.stream_id, exc.error_code)])
            late_events: list[h2.events.Event] = exc._events
            return late_events
        except h2.exceptions.StreamIDTooLowError as exc:
            if self._stream_is_closed_by_reset(exc.stream_id):
                closed = h2.errors.ErrorCodes.STREAM_CLOSED
                self._prepare_for_sending([_rst_stream(exc.stream_id, closed)])
                return []
            if self._stream_is_closed_by_end(exc.stream_id):
                raise h2.exceptions.StreamClosedError(exc.stream_id) from exc
            raise
        self._prepare_for_sending(frames)
        if frame.__class__ is SettingsFrame:
            # Settings first set since the last exchange got fresh deques.
            _compact_settings(self.local_settings)
            _compact_settings(self.remote_settings)
        return events

    def send_goaway(self, error_code: int, last_stream_id: int, debug_data: bytes) -> None:
        """Queue a GOAWAY frame without closing h2's state machine."""
        frame = GoAwayFrame(0)
        frame.error_code = error_code
        frame.last_stream_id = last_stream_id
        frame.additional_data = debug_data
        self._prepare_for_sending([frame])

    def has_data_to_send(self) -> bool:
        """True when :meth:`data_to_send` would return bytes (h2 has no public peek)."""
        return bool(self._data_to_send)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_h2_compatibility(version: str | None = None) -> list[str]:
    """Problems with the installed h2 (or ``version``), or an empty list.

    A release outside :data:`SUPPORTED_H2` may have changed any of
    :data:`H2_INTERNALS`; each problem names what to re-check before widening
    the pin in pyproject.toml.
    """
    installed = h2.__version__ if version is None else version
    problems: list[str] = []
    low, high = _SUPPORTED_RANGE
    if not low <= _version_tuple(installed)[:2] < high:
        internals = "; ".join(f"{name} ({why})" for name, why in H2_INTERNALS)
        problems.append(
            f"h2 {installed} is installed but puregrpc.wire was checked against "
            f"h2{SUPPORTED_H2}: re-check these h2 internals in its source, then widen "
            f"SUPPORTED_H2 and the pin in pyproject.toml: {internals}"
        )
    for name, why in H2_INTERNALS:
        owner_name, _, attribute = name.partition(".")
        owners: dict[str, object] = {
            "StreamClosedError": h2.exceptions.StreamClosedError(0),
            "Settings": h2.settings.Settings(),
            "HeaderTable": hpack.table.HeaderTable(),
            "Decoder": hpack.Decoder(),
        }
        owner = owners.get(owner_name) or H2Connection()
        if not hasattr(owner, attribute):
            problems.append(f"h2 {installed} has no {name}, which puregrpc.wire uses: {why}")
    return problems
