"""node and npm for the tests that run JavaScript (the gRPC-Web interop client, the console).

Both keep their packages in a folder of their own with a package-lock.json;
``npm ci`` installs them there once, when a package the test needs is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

#: Skips a test where node or npm is not installed, saying how to get them.
needs_node = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are not installed (Debian: apt-get install nodejs npm)",
)


def npm_ci(folder: Path, *packages: str) -> Path:
    """``folder``'s node_modules, after ``npm ci`` there if any of ``packages`` is missing."""
    modules = folder / "node_modules"
    if not all((modules / package).is_dir() for package in packages):
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, check=True, timeout=600
        )
    return modules
