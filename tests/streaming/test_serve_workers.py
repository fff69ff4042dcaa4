"""``puregrpc-streaming serve --workers 2``: two real server processes on one port and data dir."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from puregrpc.server import reuse_port_supported

pytestmark = pytest.mark.skipif(not reuse_port_supported(), reason="needs SO_REUSEPORT (Linux)")

COMMAND = [sys.executable, "-m", "puregrpc_streaming"]


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *argv], capture_output=True, text=True, timeout=60, check=False
    )


def test_two_workers_share_the_port_and_the_data_directory(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            *COMMAND,
            *("serve", "--workers", "2", "--port", "0", "--data-dir", str(tmp_path / "data")),
            *("--dataset-rows", "500"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.fullmatch(r"listening on (127\.0\.0\.1:\d+) \(2 workers\)\n", first)
        assert match, f"first line was {first!r}"
        address = match.group(1)
        source = tmp_path / "hello.txt"
        source.write_bytes(b"served by either worker\n" * 1000)
        upload = cli("upload", str(source), "--target", address)
        assert upload.returncode == 0, upload.stderr
        file_id = re.search(r"^file_id: (\S+)$", upload.stdout, re.MULTILINE)
        assert file_id
        # Each command is a new connection: the kernel spreads them over the
        # workers, and each worker finds the file the other stored.
        for attempt in range(4):
            copy = tmp_path / f"copy{attempt}"
            download = cli("download", file_id.group(1), "-o", str(copy), "--target", address)
            assert download.returncode == 0, download.stderr
            assert copy.read_bytes() == source.read_bytes()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert out == "server stopped\n"
    for worker in (0, 1):
        assert re.search(rf"worker {worker} \(pid \d+\) listening", err), err
    assert err.count("serving streaming.v1.StreamingService on") == 2
    assert "Traceback" not in err
