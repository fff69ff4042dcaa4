"""The browser console: the shipped bundle is current, and ``serve --web`` serves it.

web/console/ holds the page's sources and its exact npm versions; the built
files ship in puregrpc_streaming/web_console/static/. The currency tests
regenerate the clients and rebuild the bundle into temporary directories and
compare bytes (``npm ci`` runs first when node_modules is missing); they
skip only where node or npm is absent (``.ci/run`` installs them).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h11
import pytest
import trio
from node_support import needs_node, npm_ci
from service_support import running

from puregrpc_streaming.cli import UsageError, parse_serve
from puregrpc_streaming.web_console import STATIC_DIR, console_site

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "web" / "console"
GENERATED = CONSOLE / "src" / "gen"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    return npm_ci(CONSOLE, "esbuild", "@connectrpc/connect-web")


def _files(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@needs_node
def test_generated_clients_are_current(node_modules: Path, tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"--plugin=protoc-gen-es={node_modules / '.bin' / 'protoc-gen-es'}",
            f"--es_out={tmp_path}",
            "--es_opt=target=ts",
            "streaming/v1/streaming.proto",
            "grpc/health/v1/health.proto",
        ],
        check=True,
        timeout=120,
    )
    fresh = _files(tmp_path)
    assert sorted(fresh) == ["grpc/health/v1/health_pb.ts", "streaming/v1/streaming_pb.ts"]
    assert fresh == _files(GENERATED), "regenerate with `make web`"


@needs_node
def test_shipped_bundle_is_current(node_modules: Path, tmp_path: Path) -> None:
    built = subprocess.run(
        ["node", "build.mjs", str(tmp_path)],
        cwd=CONSOLE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    fresh = _files(tmp_path)
    assert sorted(fresh) == ["console.css", "console.js", "favicon.svg", "index.html"]
    shipped = _files(STATIC_DIR)
    assert sorted(shipped) == sorted(fresh)
    for name, data in fresh.items():
        assert data == shipped[name], f"{name} is stale: rebuild with `make web`"


def test_the_console_site_holds_the_page() -> None:
    site = console_site()
    assert site.paths == ["/console.css", "/console.js", "/favicon.svg", "/index.html"]
    index = site.answer(b"/")
    assert index.status == 200
    assert b'<script type="module" src="console.js">' in index.body
    # The page names the native commands of what a browser cannot call.
    for command in ("upload FILE", "chat --room ROOM", "sync", "metrics", "batch", "query"):
        assert f"puregrpc-streaming {command}".encode() in index.body


def test_the_web_switch() -> None:
    on = parse_serve(["--data-dir", "d", "--web"], {})
    assert on.config.web_console is True
    assert on.config.console_url("127.0.0.1:9") == "http://127.0.0.1:9/"
    off = parse_serve(["--data-dir", "d"], {})
    assert off.config.web_console is False and off.config.console_url("h:1") is None
    assert parse_serve(["--data-dir", "d", "--web", "no"], {}).config.web_console is False
    from_env = parse_serve(["--data-dir", "d"], {"PUREGRPC_STREAMING_WEB": "YES"})
    assert from_env.config.web_console is True
    with pytest.raises(UsageError, match="expected yes or no, got 'maybe'"):
        parse_serve(["--data-dir", "d"], {"PUREGRPC_STREAMING_WEB": "maybe"})


async def _get(address: str, path: str) -> tuple[int, bytes]:
    host, _, port = address.rpartition(":")
    stream = await trio.open_tcp_stream(host, int(port))
    conn = h11.Connection(h11.CLIENT)
    try:
        request = h11.Request(method="GET", target=path, headers=[("host", address)])
        await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
        status, body = 0, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return status, body
    finally:
        await stream.aclose()


async def test_serve_with_the_console_serves_it(tmp_path: Path) -> None:
    async with running(tmp_path / "data", web_console=True) as served:
        with trio.fail_after(10):
            status, body = await _get(served.address, "/")
            js_status, js = await _get(served.address, "/console.js")
    assert status == 200 and body == (STATIC_DIR / "index.html").read_bytes()
    assert js_status == 200 and js == (STATIC_DIR / "console.js").read_bytes()


async def test_serve_without_the_console_answers_404(tmp_path: Path) -> None:
    async with running(tmp_path / "data") as served:
        with trio.fail_after(10):
            status, body = await _get(served.address, "/")
    assert status == 404 and b"serves gRPC" in body
