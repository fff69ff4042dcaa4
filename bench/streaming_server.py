"""A ``puregrpc-streaming serve`` subprocess for the streaming bench scripts."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Served:
    """A running server: its address, process and data directory."""

    address: str
    process: subprocess.Popen[str]
    data_dir: Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (from /proc)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def served(*args: str, rows: int = 1000, profile: bool = False) -> Iterator[Served]:
    """Run the server (open mode, a fresh temporary data directory, ``rows`` rows, ``args``).

    ``profile``: under cProfile, its top functions printed when it stops.
    """
    work = Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    prefix = ["-m", "cProfile", "-s", "tottime"] if profile else []
    command = [sys.executable, *prefix, "-m", "puregrpc_streaming", "serve", "--port", "0"]
    command += ["--data-dir", str(work), "--dataset-rows", str(rows), "--log-level", "ERROR"]
    process = subprocess.Popen([*command, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        if not first.startswith("listening on "):
            raise SystemExit(f"the server did not start: {first!r}")
        yield Served(first.removeprefix("listening on ").strip(), process, work)
    finally:
        process.send_signal(signal.SIGINT if profile else signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
        if profile:
            print("\n".join(out.splitlines()[:40]))
        shutil.rmtree(work, ignore_errors=True)
