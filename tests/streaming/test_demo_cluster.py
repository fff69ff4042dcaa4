"""``make demo-cluster`` runs end to end: ``python -m puregrpc_streaming.demo_cluster``."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pytest

from puregrpc_streaming.cluster import missing_packages

ROOT = Path(__file__).resolve().parent.parent.parent


def _why_not() -> str | None:
    missing = missing_packages()
    if missing:
        return f"the cluster demo needs Debian packages {', '.join(missing)}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run PostgreSQL as"
    return None


def test_the_cluster_demo_survives_a_killed_instance_and_stops_everything() -> None:
    reason = _why_not()
    if reason is not None:
        pytest.skip(reason)
    pytest.importorskip("redis", reason="the redis client is not installed (extra: redis)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (extra: postgres)")
    result = subprocess.run(
        [sys.executable, "-m", "puregrpc_streaming.demo_cluster", "--size-mib", "8"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert re.search(r"^nginx on 127\.0\.0\.1:\d+: grpc_pass over A and B", out, re.MULTILINE)
    assert re.search(r"^  \[watch on A\] \S+ file\.uploaded .*\"user_id\":\"alice\"", out, re.M)
    assert "  [ann on A] bob: hello from B" in out and "  [bob on B] ann: hi bob" in out
    assert "-> CONFLICT: color is 'blue' at version 1" in out
    served = re.findall(r"^  GetData color -> .* served by ([AB])$", out, re.MULTILINE)
    assert sorted(served) == ["A", "A", "B", "B"]
    (killed,) = re.findall(r"^  kill -9 instance ([AB]) ", out, re.MULTILINE)
    other = "B" if killed == "A" else "A"
    assert "the stream failed: INTERNAL" in out
    attempts = re.findall(r"^  attempt \d: from offset ([\d,]+), .*served by ([AB])$", out, re.M)
    assert [name for _, name in attempts] == [killed, other]
    assert attempts[0][0] == "0" and int(attempts[1][0].replace(",", "")) > 0
    assert re.search(r"1 reconnect, sha256 [0-9a-f]{16}\.\.\. verified", out)
    assert re.search(r"replayed by [AB] after .*sync\.changed x1", out)
    assert f"instance {other} stopped (SIGTERM, status 0)" in out
    assert "-> UNAVAILABLE: nginx: no upstream instance answered the call" in out
    assert re.search(r"^all stopped; \S+ removed$", out, re.MULTILINE)
    assert "Traceback" not in result.stderr
