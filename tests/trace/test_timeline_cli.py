"""The timeline picture against its trace; the ``puregrpc`` command line; the tour script."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio
from test_tracer import slow_reader

from puregrpc.trace import ListSink, Trace, TraceEvent, build_lanes, render_html, render_svg
from puregrpc.trace.cli import main

SVG = "{http://www.w3.org/2000/svg}"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def slow_events() -> AsyncIterator[list[TraceEvent]]:
    sink = ListSink()
    await slow_reader(Trace([sink]))
    yield sink.events


def _svg_of(html: str) -> ET.Element:
    start, end = html.index("<svg"), html.index("</svg>") + len("</svg>")
    return ET.fromstring(html[start:end])


async def test_picture_matches_the_trace(slow_events: list[TraceEvent]) -> None:
    root = _svg_of(render_html(slow_events, title="slow"))
    lanes = {
        (int(g.get("data-conn", "")), int(g.get("data-stream", ""))): g
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "lane"
    }
    # One lane per (connection, stream) seen, each side's connection lane included.
    seen = {(e.conn, e.stream) for e in slow_events if e.stream and e.kind == "message_out"}
    conns = {e.conn for e in slow_events}
    assert seen | {(c, 0) for c in conns} == set(lanes)
    for (conn, stream), lane in lanes.items():
        mine = [e for e in slow_events if e.conn == conn and e.stream == stream]
        marks = [c for c in lane.iter(f"{SVG}circle") if c.get("class") == "msg"]
        expected = [
            (e.kind, e.fields["seq"]) for e in mine if e.kind in ("message_in", "message_out")
        ]
        assert [(m.get("data-kind"), int(m.get("data-seq", ""))) for m in marks] == expected
        grants = [p for p in lane.iter(f"{SVG}path") if p.get("class") == "grant"]
        updates = [e for e in mine if e.fields.get("type") == "WINDOW_UPDATE"]
        assert [int(g.get("data-increment", "")) for g in grants] == [
            u.fields["increment"] for u in updates
        ]
        stalls = [r for r in lane.iter(f"{SVG}rect") if r.get("class") == "stall"]
        assert len(stalls) == len([e for e in mine if e.kind == "stall"])
        curves = {
            p.get("data-flow"): json.loads(p.get("data-points", ""))
            for p in lane.iter(f"{SVG}polyline")
            if p.get("class") == "window"
        }
        for flow in ("c2s", "s2c"):
            # Every window the trace reports for this lane and direction is a
            # point of its curve, in order (after the curve's starting point).
            reported = []
            for e in slow_events:
                f = e.fields
                if e.conn != conn or f.get("flow_dir") != flow:
                    continue
                data = f.get("type") == "DATA" and e.stream and (not stream or e.stream == stream)
                if data:
                    reported.append(f["window"] if stream else f["conn_window"])
                elif (
                    f.get("type") == "WINDOW_UPDATE"
                    and e.stream == stream
                    and f.get("window") is not None
                ):
                    reported.append(f["window"])
            points = [v for _, v in curves.get(flow, [])]
            assert points[len(points) - len(reported) :] == reported
            assert len(points) - len(reported) in (0, 1)
    # Backpressure is visible: the server's stream lane has stalls and a window at 0.
    server_lane = next(
        lane for lane in build_lanes(slow_events) if lane.role == "server" and lane.stream
    )
    assert server_lane.stalls and all(t1 >= t0 for t0, t1 in server_lane.stalls)
    assert min(v for _, v in server_lane.windows["s2c"]) == 0


async def test_svg_output_is_standalone(slow_events: list[TraceEvent]) -> None:
    svg = render_svg(slow_events)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and "<script" not in svg


async def test_trace_view_command(tmp_path: Path, slow_events: list[TraceEvent]) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(e.to_json() + "\n" for e in slow_events), encoding="utf-8")
    assert main(["trace-view", str(trace), "-o", str(tmp_path / "t.html")]) == 0
    assert main(["trace-view", str(trace), "-o", str(tmp_path / "t.svg")]) == 0
    html = (tmp_path / "t.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and 'class="lane"' in html
    ET.fromstring((tmp_path / "t.svg").read_text(encoding="utf-8"))


def test_trace_view_errors_name_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{nope\n", encoding="utf-8")
    assert main(["trace-view", str(bad), "-o", str(tmp_path / "x.png")]) == 2
    assert "must end in .html or .svg" in capsys.readouterr().err
    assert main(["trace-view", str(bad), "-o", str(tmp_path / "x.html")]) == 1
    assert "line 1: not JSON" in capsys.readouterr().err
    assert main(["trace-view", str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "x.svg")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["trace-proxy", "--listen", "nowhere", "--upstream", "127.0.0.1:1"]) == 2
    assert "--listen must be HOST:PORT" in capsys.readouterr().err


async def test_trace_proxy_command_runs(tmp_path: Path) -> None:
    """``python -m puregrpc.trace trace-proxy`` listens and reports its port."""
    out = tmp_path / "proxy.jsonl"
    command = [
        sys.executable,
        "-m",
        "puregrpc.trace",
        "trace-proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "-o",
        str(out),
    ]
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            partial(trio.run_process, command, stderr=subprocess.PIPE, check=False)
        )
        try:
            with trio.fail_after(20):
                line = b""
                while not line.endswith(b"\n"):
                    chunk = await process.stderr.receive_some(1)
                    assert chunk, "proxy exited before listening"
                    line += chunk
            assert line.startswith(b"tracing 127.0.0.1:")
        finally:
            process.kill()
    assert process.returncode is not None


async def test_tour_script_runs(tmp_path: Path) -> None:
    """The docs' generator still runs and writes every section from real traces."""
    result = await trio.run_process(
        [sys.executable, str(REPO / "docs" / "tour" / "generate.py"), "--out", str(tmp_path)],
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    page = (tmp_path / "wire-tour.md").read_text(encoding="utf-8")
    for heading in (
        "## Unary",
        "## Server streaming",
        "## Client streaming",
        "## Bidirectional streaming",
        "## Flow control and backpressure",
        "## Cancellation and deadlines",
        "## Trailers-only errors",
        "## Compression",
    ):
        assert heading in page
    for sign in (
        "STALL",
        "resume",
        "RST_STREAM",
        "grpc-timeout=",
        "trailers-only",
        "grpc-encoding=gzip",
    ):
        assert sign in page
    assert 'class="lane"' in (tmp_path / "wire-tour-timeline.html").read_text(encoding="utf-8")
