"""puregrpc.wire uses h2 internals: the installed h2 must be one they were checked against."""

from __future__ import annotations

import tomllib
from pathlib import Path

import h2

from puregrpc.wire import H2_INTERNALS, SUPPORTED_H2, check_h2_compatibility

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_installed_h2_is_supported() -> None:
    problems = check_h2_compatibility()
    # A failure here names every internal to re-check in the new h2's source.
    assert problems == [], "\n".join(problems)


def test_pyproject_pins_the_checked_range() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (pin,) = [d for d in dependencies if d.split(">")[0].split("<")[0].strip() == "h2"]
    assert pin == f"h2{SUPPORTED_H2}"
    assert "<" in SUPPORTED_H2, "h2 needs an upper bound: puregrpc uses its internals"


def test_another_minor_release_names_what_to_recheck() -> None:
    (problem,) = check_h2_compatibility("4.9.0")
    assert "h2 4.9.0" in problem and SUPPORTED_H2 in problem
    for name, _ in H2_INTERNALS:
        assert name in problem
    assert check_h2_compatibility("4.0.3") != []
    assert check_h2_compatibility(h2.__version__) == []
