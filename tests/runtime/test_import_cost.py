"""Importing the server or the client loads neither the trace package nor protobuf."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
from pathlib import Path
import puregrpc.client, puregrpc.server
from puregrpc.client import Channel
from puregrpc.server import Server
Server()
Channel("127.0.0.1:1")
print(sorted(m for m in ("puregrpc.trace", "google.protobuf") if m in sys.modules))
"""


def _loaded(environment: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=True,
    )
    return result.stdout.strip()


def test_no_trace_package_or_protobuf_unless_tracing() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "PUREGRPC_TRACE"}
    assert _loaded(environment) == "[]"


def test_tracing_from_the_environment_loads_it(tmp_path: Path) -> None:
    environment = dict(os.environ, PUREGRPC_TRACE=f"{tmp_path}/trace.jsonl")
    assert _loaded(environment) == "['google.protobuf', 'puregrpc.trace']"
