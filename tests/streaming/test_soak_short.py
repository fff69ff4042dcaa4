"""The soak (bench/soak.py) for one minute: every RPC from 50 tasks, data verified, resources flat.

The full run is ten minutes (``bench/soak.py --minutes 10``, growth under 5%);
in one minute the warm-up has barely ended, so resource growth is held to a
loose 50% here (a gross-leak guard), while lost or corrupted data and unexplained errors fail it
exactly as in the long run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_a_one_minute_soak_loses_nothing_and_stays_flat() -> None:
    arguments = ["--minutes", "1", "--tasks", "50", "--report-every", "30", "--max-growth", "0.5"]
    result = subprocess.run(
        [sys.executable, str(SOAK), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert out.rstrip().endswith("PASS")
    assert "LOST OR CORRUPT" not in out and "UNEXPECTED" not in out
    verified = next(line for line in out.splitlines() if line.startswith("verified: "))
    uploads = int(verified.split()[1])
    writes = int(verified.split("(sha256), ")[1].split()[0])
    assert uploads > 100 and writes > 100
