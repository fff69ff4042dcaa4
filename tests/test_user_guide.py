"""docs/guide.md runs: every file written, every script and shell block run, outputs compared.

Blocks are fenced code with an info string: ``proto file=NAME`` and ``python
file=NAME`` are written into a fresh directory; ``python run`` (with or
without ``file=``) is run as a script there and ``sh`` blocks with bash; a
``text`` block right after a run is what it must print. Then ``mypy
--strict`` checks the guide's Python files.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "guide.md"
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass
class Block:
    """One fenced block of the guide."""

    language: str
    attributes: dict[str, str]
    code: str
    line: int


def _blocks() -> list[Block]:
    text = GUIDE.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        attributes = {}
        for word in match.group(2).split():
            key, _, value = word.partition("=")
            attributes[key] = value
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(match.group(1), attributes, match.group(3), line))
    return blocks


@dataclass
class Ran:
    """A block that was run, what it printed, and what the guide says it prints."""

    block: Block
    stdout: str
    stderr: str
    returncode: int
    expected: str | None


@pytest.fixture(scope="module")
def guide_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Ran]]:
    """Write and run the guide's blocks in order, in a fresh directory."""
    work = tmp_path_factory.mktemp("guide")
    environment = dict(os.environ)
    environment.pop("PUREGRPC_TRACE", None)
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    blocks = _blocks()
    ran: list[Ran] = []
    for index, block in enumerate(blocks):
        name = block.attributes.get("file")
        if name:
            (work / name).write_text(block.code, encoding="utf-8")
        if block.language == "sh":
            command = ["bash", "-euo", "pipefail", "-c", block.code]
        elif block.language == "python" and "run" in block.attributes:
            script = work / (name or f"_guide_block_{block.line}.py")
            script.write_text(block.code, encoding="utf-8")
            command = [sys.executable, script.name]
        else:
            continue
        result = subprocess.run(
            command, cwd=work, env=environment, capture_output=True, text=True, timeout=120
        )
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        expected = following.code if following and following.language == "text" else None
        ran.append(Ran(block, result.stdout, result.stderr, result.returncode, expected))
    return work, ran


def test_the_guide_has_its_sections_and_runs_something_for_each() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    for heading in (
        "Define a service",
        "Generate the code",
        "A server",
        "A client: the four call types",
        "Metadata and trailing metadata",
        "Deadlines and cancellation",
        "Errors and rich details",
        "Compression",
        "TLS and mutual TLS",
        "Health and reflection",
        "Interceptors",
        "The blocking client",
        "Testing",
        "Tracing",
        "Coming from grpcio or grpclib",
    ):
        assert f"\n## {heading}\n" in text, heading


def test_every_block_runs_and_prints_what_the_guide_says(
    guide_run: tuple[Path, list[Ran]],
) -> None:
    _, ran = guide_run
    assert len(ran) >= 12
    for each in ran:
        where = f"docs/guide.md:{each.block.line}"
        assert each.returncode == 0, f"{where} failed:\n{each.stderr}"
        if each.expected is not None:
            assert each.stdout == each.expected, f"{where} printed:\n{each.stdout}"


def test_the_guide_code_passes_mypy_strict(guide_run: tuple[Path, list[Ran]]) -> None:
    work, _ = guide_run
    sources = sorted(p.name for p in work.glob("*.py") if not p.name.endswith("_pb2.py"))
    assert "greeter_service.py" in sources and "greeter_puregrpc.py" in sources
    config = ["--config-file", str(ROOT / "pyproject.toml"), "--strict"]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", *config, "--cache-dir", str(ROOT / ".mypy_cache"), *sources],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        # An editable install is an import hook mypy does not follow: point it at the source.
        env=dict(os.environ, MYPYPATH=str(ROOT)),
    )
    assert result.returncode == 0, result.stdout
