"""The console in a real browser: Debian's chromium, driven by Playwright.

The test starts ``puregrpc-streaming serve --web`` (a bearer token, a free
loopback port, a temporary data directory), opens the console, enters the
token, watches events while it uploads a file with the CLI (the upload's
``file.uploaded`` event appears on the page), lists the dataset and pages
through it, downloads the uploaded file (the page's sha256 of the bytes it
received equals the file's), checks that health shows SERVING, and takes a
screenshot (into the temporary directory; ``make web-screenshot`` sets
PUREGRPC_CONSOLE_SCREENSHOT to save it as docs/web-console.png).

Playwright's Python package drives the system chromium
(``executable_path``); no browser is ever downloaded. Skipped, saying why,
where chromium or the package is absent (``.ci/run`` installs chromium).
Every wait is bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install playwright)"
)
expect = sync_api.expect

COMMAND = [sys.executable, "-m", "puregrpc_streaming"]
TOKEN = "console-test-token-0123456789"
#: Flags chromium needs as root in a container, and to stay off the network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Milliseconds any one page wait may take.
WAIT_MS = 15_000
#: Rows of the test dataset, and rows a page.
ROWS = 300
PAGE = 25


def _first_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line ``process`` prints, within ``timeout`` seconds."""
    assert process.stdout is not None
    line = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise AssertionError(f"serve printed no line in {timeout} s (so far {line!r})")
            chunk = os.read(process.stdout.fileno(), 1)
            if not chunk:
                break
            line += chunk
    return line.decode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``serve --web`` with one bearer token; yields ``HOST:PORT``."""
    process = subprocess.Popen(
        [
            *COMMAND,
            *("serve", "--port", "0", "--data-dir", str(tmp_path / "data"), "--web"),
            *("--dataset-rows", str(ROWS), "--token", f"{TOKEN}:alice", "--log-level", "WARNING"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        first = _first_line(process, 60)
        match = re.fullmatch(r"listening on (127\.0\.0\.1:\d+)\n", first)
        assert match, f"first line was {first!r}"
        yield match.group(1)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)


def _upload(address: str, path: Path) -> str:
    """Upload ``path`` with the CLI; what it printed (file_id and sha256)."""
    done = subprocess.run(
        [*COMMAND, "upload", str(path), "--target", address, "--token", TOKEN],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_console_in_chromium(server: str, tmp_path: Path) -> None:
    source = tmp_path / "report.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # 49 chunks of 64 KiB and a bit
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    screenshot = Path(os.environ.get("PUREGRPC_CONSOLE_SCREENSHOT", tmp_path / "console.png"))
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            timeout=60_000,
            viewport={"width": 1180, "height": 900},
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            expect.set_options(timeout=WAIT_MS)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"http://{server}/")
            # The page runs under its own CSP (no eval): the checks below use
            # Playwright's locators, which need none either.

            # The server's health, over gRPC-Web (Health/Watch), needs no token.
            expect(page.locator("#health")).to_have_text("SERVING")
            expect(page.locator("#health")).to_have_class(re.compile("SERVING"))

            # Without a token the service refuses the call, with its reason.
            page.fill("#get-key", "nothing")
            page.click("#get-run")
            expect(page.locator("#get-result")).to_have_text(re.compile("^UNAUTHENTICATED: "))

            # The token is kept for the tab's session (a reload keeps it).
            page.fill("#token", TOKEN)
            page.click("#token-save")
            page.reload()
            expect(page.locator("#token")).to_have_value(TOKEN)
            expect(page.locator("#token-state")).to_have_text("calls carry this token")
            page.fill("#get-key", "nothing")
            page.click("#get-run")
            expect(page.locator("#get-result")).to_have_text(re.compile("^NOT_FOUND: "))

            # Live events: the CLI's upload shows up on the page.
            page.fill("#watch-types", "file.uploaded")
            page.fill("#watch-filter", 'filename ~ "*.bin"')
            page.click("#watch-start")
            expect(page.locator("#watch-status")).to_have_text("watching")
            uploaded = _upload(server, source)
            row = page.locator("#events tr[data-type='file.uploaded']")
            expect(row).to_have_count(1)
            payload = json.loads(row.locator("td").nth(3).inner_text())
            assert payload["filename"] == "report.bin" and payload["checksum"] == digest
            assert payload["file_id"] in uploaded
            expect(page.locator("#watch-status")).to_have_text("watching: 1 events")

            # The dataset in pages: first, next, previous, and a resume from a cursor.
            first_cells = page.locator("#rows tr td:first-child")
            page.fill("#list-size", str(PAGE))
            page.click("#list-run")
            expect(page.locator("#list-status")).to_have_text(
                re.compile(f"^page 1: {PAGE} rows, id 1 to {PAGE} ")
            )
            expect(first_cells).to_have_text([str(i) for i in range(1, PAGE + 1)])
            page.click("#list-next")
            expect(page.locator("#list-status")).to_have_text(re.compile("^page 2: "))
            expect(first_cells.first).to_have_text(str(PAGE + 1))
            cursor = page.input_value("#list-cursor")
            assert cursor, "the page shows the cursor to resume after"
            page.click("#list-prev")
            expect(page.locator("#list-status")).to_have_text(re.compile("^page 1: "))
            expect(first_cells.first).to_have_text("1")
            page.fill("#list-cursor", cursor)
            page.click("#list-run")
            expect(first_cells.first).to_have_text(str(2 * PAGE + 1))
            resumed = f"^page 1 \\(resumed after {cursor}\\): {PAGE} rows, id {2 * PAGE + 1} to "
            expect(page.locator("#list-status")).to_have_text(re.compile(resumed))

            # The download: progress to the end, and the bytes' sha256 is the file's.
            page.fill("#download-id", payload["file_id"])
            page.click("#download-start")
            expect(page.locator("#download-status")).to_have_text(re.compile("sha256 verified"))
            expect(page.locator("#download-sha256")).to_have_text(digest)
            expect(page.locator("#download-expected")).to_have_text(digest)
            bar = page.locator("#download-progress")
            size = str(source.stat().st_size)
            assert (bar.get_attribute("value"), bar.get_attribute("max")) == (size, size)
            expect(page.locator("#download-save")).to_have_attribute("download", "report.bin")

            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert errors == [], errors
    assert screenshot.stat().st_size > 10_000
