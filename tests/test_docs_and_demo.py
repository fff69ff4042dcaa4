"""The README's example and the `make demo` tour run and say what they should."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    examples = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(examples) == 2, "README.md should have its two python examples"
    return examples


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_example_runs_and_prints_the_stream() -> None:
    out = _run(_readme_examples()[0])
    assert out.splitlines() == ["0 HELLO", "1 GRPC", "2 ON", "3 TRIO"]


def test_readme_example_without_sockets_runs() -> None:
    assert _run(_readme_examples()[1]).strip() == "NO SOCKETS"


def test_demo_tours_every_call_type_and_stops_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "puregrpc.demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"listening on 127\.0\.0\.1:\d+", out)
    for expected in (
        "calls/s",
        "server stream, 64 KiB messages",
        "sha256 verified",
        "bidi ping-pong: p50",
        "send() waited",
        "DEADLINE_EXCEEDED after",
        "server stopped gracefully",
    ):
        assert expected in out, f"{expected!r} missing from the demo output:\n{out}"
