"""docs/testing.md's example project runs, file for file, and its tests pass."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"

#: A fenced block whose first line names the file it is: ```python\n# tests/x.py\n...```
FILE_BLOCK = re.compile(r"```(?:python|toml)\n# (?P<path>[\w/.]+)\n(?P<body>.*?)```", re.DOTALL)


def _example_files() -> dict[str, str]:
    files = {m["path"]: m["body"] for m in FILE_BLOCK.finditer(DOC.read_text(encoding="utf-8"))}
    assert "pyproject.toml" in files and "tests/conftest.py" in files, sorted(files)
    return files


def test_the_example_project_in_docs_testing_md_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    files = _example_files()
    for path, body in files.items():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
    tests = sum(len(re.findall(r"^async def test_", body, re.M)) for body in files.values())
    assert tests >= 4, "the example should keep its tests"
    # Stricter than the doc's configuration: a warning fails the run.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error", timeout=120)
    result.assert_outcomes(passed=tests)
