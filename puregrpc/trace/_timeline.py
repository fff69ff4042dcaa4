"""The timeline picture: a trace drawn as lanes over time, as SVG or HTML.

One lane per stream as each side saw it (``server#1 s1`` and ``client#2 s1``
are the two ends of one HTTP/2 stream), and one lane per connection for the
connection-level windows. In each lane:

* messages are marks: filled circles for messages sent, rings for messages
  received (hover for sequence number, size and decoded value);
* the windows are step curves: the stream window (or the connection window,
  in a connection lane) of the data flowing each way, ``c2s`` orange,
  ``s2c`` blue, falling with each DATA frame and rising with each grant;
* WINDOW_UPDATE grants are yellow triangles on the time axis of the lane;
* stalls (a sender blocked on a closed window) are shaded red, from the
  stall to the resume; consumption by the application is a grey tick.

The picture is self-contained (inline SVG, native tooltips, no script) and
carries its data in ``data-*`` attributes, so tests can check it against the
trace it came from.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from ._event import TraceEvent

_LEFT = 230
_PLOT_WIDTH = 1100
_RIGHT = 40
_TOP = 70
_LANE_HEIGHT = 110
_FLOW_COLORS = {"c2s": "#e67e22", "s2c": "#2e86de"}


@dataclass
class Lane:
    """Everything drawn in one lane."""

    conn: int
    role: str
    stream: int
    title: str = ""
    #: (t, kind, seq, length, value) of each message sent or received.
    messages: list[tuple[float, str, int, int, str]] = field(default_factory=list)
    #: Window curve points (t, window) per data direction.
    windows: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    #: (start, end) of each stall.
    stalls: list[tuple[float, float]] = field(default_factory=list)
    #: (t, increment, flow direction) of each WINDOW_UPDATE.
    grants: list[tuple[float, int, str]] = field(default_factory=list)
    #: Times the application consumed a message.
    consumes: list[float] = field(default_factory=list)

    @property
    def key(self) -> tuple[int, int]:
        """(connection, stream)."""
        return self.conn, self.stream


def build_lanes(events: Sequence[TraceEvent]) -> list[Lane]:
    """Sort a trace into lanes: per connection, its own lane first, then its streams."""
    lanes: dict[tuple[int, int], Lane] = {}
    open_stalls: dict[tuple[int, int], float] = {}
    end = max((e.t for e in events), default=0.0)

    def lane(event: TraceEvent, stream: int) -> Lane:
        key = (event.conn, stream)
        found = lanes.get(key)
        if found is None:
            found = lanes[key] = Lane(conn=event.conn, role=event.role, stream=stream)
        return found

    for event in events:
        f = event.fields
        kind = event.kind
        if kind in ("frame_in", "frame_out"):
            frame_type = f.get("type")
            if frame_type == "DATA" and event.stream:
                flow = str(f.get("flow_dir"))
                length = int(f.get("length", 0))
                for target, key in (
                    (lane(event, event.stream), "window"),
                    (lane(event, 0), "conn_window"),
                ):
                    value = f.get(key)
                    if value is None:
                        continue
                    points = target.windows.setdefault(flow, [])
                    if not points:
                        # The curve starts at the window the frame found.
                        points.append((event.t, int(value) + length))
                    points.append((event.t, int(value)))
            elif frame_type == "WINDOW_UPDATE":
                target = lane(event, event.stream)
                flow = str(f.get("flow_dir"))
                target.grants.append((event.t, int(f.get("increment", 0)), flow))
                if f.get("window") is not None:
                    target.windows.setdefault(flow, []).append((event.t, int(f["window"])))
            elif frame_type == "HEADERS" and event.stream:
                lane(event, event.stream)
        elif kind == "call_start" and event.stream:
            lane(event, event.stream).title = str(f.get("path", ""))
        elif kind in ("message_in", "message_out"):
            lane(event, event.stream).messages.append(
                (
                    event.t,
                    kind,
                    int(f.get("seq", 0)),
                    int(f.get("length", 0)),
                    str(f.get("value", "")),
                )
            )
        elif kind == "consume":
            lane(event, event.stream).consumes.append(event.t)
        elif kind == "stall":
            open_stalls.setdefault((event.conn, event.stream), event.t)
            lane(event, event.stream)
        elif kind in ("resume", "call_end"):
            since = open_stalls.pop((event.conn, event.stream), None)
            if since is not None:
                lane(event, event.stream).stalls.append((since, event.t))
    for (conn, stream), since in open_stalls.items():
        lanes[(conn, stream)].stalls.append((since, end))
    return [lanes[key] for key in sorted(lanes)]


class _Scale:
    def __init__(self, t0: float, t1: float) -> None:
        self.t0 = t0
        self.span = max(t1 - t0, 1e-6)

    def x(self, t: float) -> float:
        return round(_LEFT + (t - self.t0) / self.span * _PLOT_WIDTH, 2)


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def _axis(scale: _Scale, y: float, height: float) -> list[str]:
    """Time ticks (milliseconds since the first event) with grid lines."""
    out = []
    step = _nice_step(scale.span * 1000 / 8)
    tick = 0.0
    for _ in range(64):
        if tick > scale.span * 1000 + 1e-9:
            break
        x = scale.x(scale.t0 + tick / 1000)
        out.append(
            f'<line x1="{x}" y1="{y}" x2="{x}" y2="{y + height}" stroke="#eee"/>'
            f'<text x="{x}" y="{y - 6}" font-size="11" text-anchor="middle" fill="#555">'
            f"{tick:g} ms</text>"
        )
        tick += step
    return out


def _nice_step(raw: float) -> float:
    """A round step (1, 2, 5 x 10^n) no smaller than ``raw``."""
    magnitude = 10 ** int(f"{max(raw, 1e-6):e}".split("e")[1])
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return float(factor * magnitude)
    return float(10 * magnitude)  # pragma: no cover - the loop always returns


def _lane_svg(lane: Lane, scale: _Scale, y0: float) -> list[str]:
    """The SVG of one lane whose top is at ``y0``."""
    name = f"{lane.role}#{lane.conn} " + ("connection" if lane.stream == 0 else f"s{lane.stream}")
    out = [
        f'<g class="lane" data-conn="{lane.conn}" data-stream="{lane.stream}" '
        f"data-role={quoteattr(lane.role)}>",
        f'<rect x="{_LEFT}" y="{y0}" width="{_PLOT_WIDTH}" height="{_LANE_HEIGHT - 10}" '
        f'fill="{"#f4f6f8" if lane.stream == 0 else "#fbfbfb"}" stroke="#ddd"/>',
        f'<text x="10" y="{y0 + 18}" font-size="13" font-weight="bold">{escape(name)}</text>',
    ]
    if lane.title:
        out.append(
            f'<text x="10" y="{y0 + 34}" font-size="11" fill="#444">{escape(lane.title)}</text>'
        )
    bottom = y0 + _LANE_HEIGHT - 16
    curve_top = y0 + 34
    # Each curve has its own scale (a connection window is often 256 times a
    # stream's): what matters is each falling to zero and coming back.
    peaks = {flow: max(1, *(v for _, v in pts)) for flow, pts in lane.windows.items()}
    for row, (flow, peak) in enumerate(sorted(peaks.items())):
        out.append(
            f'<text x="10" y="{y0 + 52 + 13 * row}" font-size="10" '
            f'fill="{_FLOW_COLORS.get(flow, "#333")}">{flow} window, top = {peak}</text>'
        )
    for start, stop in lane.stalls:
        x0, x1 = scale.x(start), scale.x(stop)
        out.append(
            f'<rect class="stall" x="{x0}" y="{y0}" width="{max(x1 - x0, 1.5)}" '
            f'height="{_LANE_HEIGHT - 10}" fill="#e74c3c" fill-opacity="0.18" '
            f'data-t0="{start}" data-t1="{stop}">'
            + _title(f"stalled {(stop - start) * 1000:.3f} ms")
            + "</rect>"
        )
    for flow, points in sorted(lane.windows.items()):
        peak = peaks[flow]

        def y_of(value: int, peak: int = peak) -> float:
            return round(bottom - max(value, 0) / peak * (bottom - curve_top), 2)

        coords: list[str] = []
        last_y: float | None = None
        for t, value in points:
            x, y = scale.x(t), y_of(value)
            if last_y is not None:
                coords.append(f"{x},{last_y}")
            coords.append(f"{x},{y}")
            last_y = y
        if last_y is not None:
            coords.append(f"{_LEFT + _PLOT_WIDTH},{last_y}")
        data = json.dumps([[t, v] for t, v in points], separators=(",", ":"))
        out.append(
            f'<polyline class="window" data-flow="{flow}" data-points={quoteattr(data)} '
            f'points="{" ".join(coords)}" fill="none" stroke="{_FLOW_COLORS.get(flow, "#333")}" '
            f'stroke-width="1.6">'
            + _title(f"{flow} window ({len(points)} points, lowest {min(v for _, v in points)})")
            + "</polyline>"
        )
    for t in lane.consumes:
        x = scale.x(t)
        out.append(
            f'<line class="consume" x1="{x}" y1="{bottom - 6}" x2="{x}" y2="{bottom + 4}" '
            f'stroke="#888" data-t="{t}"/>'
        )
    for t, increment, flow in lane.grants:
        x = scale.x(t)
        out.append(
            f'<path class="grant" d="M{x},{bottom + 6} l-5,8 h10 z" fill="#f1c40f" '
            f'stroke="#b7950b" data-t="{t}" data-increment="{increment}" data-flow="{flow}">'
            + _title(f"WINDOW_UPDATE +{increment} ({flow} data) at {t * 1000:.3f} ms")
            + "</path>"
        )
    for t, kind, seq, length, text in lane.messages:
        x = scale.x(t)
        sent = kind == "message_out"
        y = y0 + (12 if sent else 24)
        fill = "#27ae60" if sent else "white"
        out.append(
            f'<circle class="msg" cx="{x}" cy="{y}" r="4.5" fill="{fill}" stroke="#1e8449" '
            f'stroke-width="1.5" data-kind="{kind}" data-seq="{seq}" data-t="{t}" '
            f'data-length="{length}">'
            + _title(
                f"{'sent' if sent else 'received'} message #{seq}, {length} bytes, "
                f"at {t * 1000:.3f} ms\n{text}"
            )
            + "</circle>"
        )
    out.append("</g>")
    return out


def _legend(y: float) -> str:
    items = [
        '<circle cx="0" cy="-4" r="4.5" fill="#27ae60" stroke="#1e8449"/>'
        '<text x="10" y="0">message sent</text>',
        '<circle cx="0" cy="-4" r="4.5" fill="white" stroke="#1e8449"/>'
        '<text x="10" y="0">message received</text>',
        '<line x1="-6" y1="-4" x2="14" y2="-4" stroke="#e67e22" stroke-width="2"/>'
        '<text x="20" y="0">window, client-to-server data</text>',
        '<line x1="-6" y1="-4" x2="14" y2="-4" stroke="#2e86de" stroke-width="2"/>'
        '<text x="20" y="0">window, server-to-client data</text>',
        '<path d="M0,-10 l-5,8 h10 z" fill="#f1c40f" stroke="#b7950b"/>'
        '<text x="10" y="0">WINDOW_UPDATE</text>',
        '<rect x="-5" y="-12" width="12" height="12" fill="#e74c3c" fill-opacity="0.3"/>'
        '<text x="12" y="0">sender stalled</text>',
        '<line x1="0" y1="-10" x2="0" y2="0" stroke="#888"/><text x="6" y="0">consumed</text>',
    ]
    widths = [130, 150, 230, 230, 150, 140, 100]
    out = [f'<g class="legend" font-size="12" transform="translate({_LEFT},{y})">']
    x = 0
    for item, width in zip(items, widths, strict=True):
        out.append(f'<g transform="translate({x},0)">{item}</g>')
        x += width
    out.append("</g>")
    return "".join(out)


def render_svg(events: Iterable[TraceEvent], *, title: str = "gRPC on the wire") -> str:
    """The timeline of ``events`` as a standalone SVG document."""
    events = sorted(events, key=lambda e: e.t)
    lanes = build_lanes(events)
    t0 = events[0].t if events else 0.0
    t1 = events[-1].t if events else 1.0
    scale = _Scale(t0, t1)
    height = _TOP + len(lanes) * _LANE_HEIGHT + 20
    width = _LEFT + _PLOT_WIDTH + _RIGHT
    body = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" '
        f'data-t0="{t0}" data-t1="{t1}">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="16" font-weight="bold">{escape(title)}</text>',
        _legend(46),
        *_axis(scale, _TOP, len(lanes) * _LANE_HEIGHT),
    ]
    for index, lane in enumerate(lanes):
        body.extend(_lane_svg(lane, scale, _TOP + 6 + index * _LANE_HEIGHT))
    body.append("</svg>")
    return "\n".join(body)


def render_html(events: Iterable[TraceEvent], *, title: str = "gRPC on the wire") -> str:
    """The timeline as a self-contained HTML page (the SVG inline)."""
    svg = render_svg(events, title=title)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        "<style>body{margin:12px;font-family:sans-serif}"
        "p{max-width:70em;color:#333}</style>\n</head>\n<body>\n"
        f"{svg}\n"
        "<p>One lane per stream as each side saw it, one per connection. Hover a mark "
        "for its details. Curves are flow-control windows, falling with each DATA frame "
        "and rising with each WINDOW_UPDATE; red bands are senders blocked on a closed "
        "window.</p>\n</body>\n</html>\n"
    )
