"""Render the tour's timeline (HTML) to a PNG with headless Chromium.

    python docs/tour/screenshot.py [docs/wire-tour-timeline.html [out.png]]

Needs Debian's ``chromium`` package (``apt-get install -y chromium``). The
window is sized to the picture, read from the SVG's ``width``/``height``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent


def find_chromium() -> str:
    """The path of a Chromium binary; raises :class:`SystemExit` naming the fix."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no chromium found: apt-get install -y chromium")


def screenshot(html: Path, png: Path) -> None:
    """Write ``png``, a screenshot of ``html`` the size of its SVG."""
    text = html.read_text(encoding="utf-8")
    size = re.search(r'<svg[^>]*\bwidth="(\d+)" height="(\d+)"', text)
    if size is None:
        raise SystemExit(f"{html}: no <svg width height> found")
    width, height = int(size.group(1)) + 24, int(size.group(2)) + 70
    subprocess.run(
        [
            find_chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            html.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    if not png.exists() or png.stat().st_size == 0:
        raise SystemExit(f"chromium wrote no screenshot to {png}")


def main(argv: list[str]) -> int:
    """Render the timeline; returns the exit status."""
    html = Path(argv[0]) if argv else DOCS / "wire-tour-timeline.html"
    png = Path(argv[1]) if len(argv) > 1 else html.with_suffix(".png")
    screenshot(html, png)
    print(f"wrote {png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
