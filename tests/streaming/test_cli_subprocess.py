"""The real ``python -m puregrpc_streaming`` processes: serve's first line, errors, SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

COMMAND = [sys.executable, "-m", "puregrpc_streaming"]


def cli(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *argv], input=stdin, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A ``serve --port 0`` process and the address its first line names."""
    process = subprocess.Popen(
        [
            *COMMAND,
            *("serve", "--port", "0", "--data-dir", str(tmp_path / "data")),
            *("--dataset-rows", "500", "--log-level", "WARNING"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.fullmatch(r"listening on (127\.0\.0\.1:\d+)\n", first)
        assert match, f"first line was {first!r}"
        yield process, match.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_serve_prints_its_address_first_and_stops_cleanly_on_sigterm(
    server: tuple[subprocess.Popen[str], str],
) -> None:
    process, address = server
    assert cli("get", "nothing", "--target", address).returncode == 1  # it answers

    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=15)

    assert process.returncode == 0, err
    assert out == "server stopped\n"
    assert "SIGTERM received, stopping" in err
    assert "Traceback" not in err


def test_an_unknown_file_id_is_not_found_without_a_traceback(
    server: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    _, address = server

    result = cli("download", "abc", "-o", str(tmp_path / "out"), "--target", address)

    assert result.returncode == 1
    assert result.stderr.startswith("error: NOT_FOUND: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_upload_then_list_through_the_console_script(
    server: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    _, address = server
    source = tmp_path / "hello.txt"
    source.write_text("hello, streaming\n", encoding="utf-8")
    script = Path(sys.executable).with_name("puregrpc-streaming")

    upload = subprocess.run(
        [str(script), "upload", str(source), "--target", address],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    listing = cli("list", "--limit", "2", "--target", address)

    assert upload.returncode == 0, upload.stderr
    assert re.search(r"^file_id: \S+$", upload.stdout, re.MULTILINE)
    assert "sha256: " in upload.stdout
    assert listing.returncode == 0, listing.stderr
    assert [line.split("\t")[0] for line in listing.stdout.splitlines()] == ["1", "2"]


def test_a_bad_target_is_a_clear_error_with_exit_status_1() -> None:
    result = cli("get", "key", "--target", "127.0.0.1:1")

    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot connect to 127.0.0.1:1: "), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_bad_usage_exits_2_with_argparse_usage() -> None:
    result = cli("download", "abc")  # -o is required

    assert result.returncode == 2
    assert "the following arguments are required: -o/--output" in result.stderr


def test_serve_refuses_a_lone_tls_cert(tmp_path: Path) -> None:
    result = cli("serve", "--data-dir", str(tmp_path), "--tls-cert", str(tmp_path / "c.pem"))

    assert result.returncode == 2
    assert result.stderr.strip().endswith("error: --tls-cert and --tls-key go together")
