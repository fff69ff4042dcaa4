"""The CLI points of issue #14, one test each.

Before: a missing ``--tls-ca`` file was ``[Errno 2] No such file or
directory``; ``serve`` seeded a million rows before finding its port taken;
a refused query listed authorizer codes; ``watch --timeout`` was documented
as each call's deadline but ended the whole watch; ``--sha256`` was compared
only after the whole download; Ctrl-C in ``list`` lost the position; ``demo
--help`` said ``usage: demo.py``; a bare ``/room`` was sent as a message.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from puregrpc_streaming.cli import amain
from puregrpc_streaming.client_helpers import part_path
from puregrpc_streaming.demo import run as run_demo
from puregrpc_streaming.server import ServeConfig, serve

ROWS = 3000


@dataclass
class Result:
    """What one command did."""

    code: int
    out: str
    err: str


async def cli(*argv: str, stdin: str = "") -> Result:
    """Run one ``puregrpc-streaming`` command in this trio loop (bounded in time)."""
    out, err = io.StringIO(), io.StringIO()
    with trio.fail_after(20):
        code = await amain(list(argv), stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
async def target(nursery: trio.Nursery, tmp_path: Path) -> str:
    """``HOST:PORT`` of a fresh server."""
    config = ServeConfig(data_dir=tmp_path / "data", dataset_rows=ROWS, heartbeat_interval=0.2)
    address: str = await nursery.start(serve, config)
    return address


async def test_a_missing_tls_ca_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    result = await cli("get", "k", "--tls-ca", str(missing))
    assert result.code == 2
    assert result.err.strip() == f"error: --tls-ca {missing}: no such file"
    result = await cli("get", "k", "--tls-cert", str(missing), "--tls-key", str(missing))
    assert f"--tls-cert {missing}: no such file" in result.err


async def test_serve_names_a_busy_address_before_seeding(target: str, tmp_path: Path) -> None:
    port = target.rpartition(":")[2]
    fresh = tmp_path / "fresh"
    result = await cli("serve", "--port", port, "--data-dir", str(fresh))
    assert result.code == 1
    assert result.err.strip().splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port}: the address is already in use (another server?)"
    )
    # Bound first: the failed server never opened (let alone seeded) its database.
    assert not (fresh / "streaming.sqlite3").exists()


async def test_a_refused_query_names_the_statement_kind_written(target: str) -> None:
    queries = [
        "DELETE FROM dataset",
        "WITH doomed AS (SELECT id FROM dataset) DELETE FROM dataset",
        "-- a comment first\ncreate temp table t (a)",
        "PRAGMA table_info(dataset)",
    ]
    result = await cli("query", "--target", target, stdin="\n".join(queries) + "\n")
    assert result.code == 1
    text = result.out + result.err
    for kind in ("not DELETE", "not CREATE TABLE", "not PRAGMA"):
        assert f"only SELECT statements are allowed, {kind}" in text, text
    assert text.count("not DELETE") == 2


async def test_watch_timeout_ends_the_watch_as_its_help_says(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        await amain(["watch", "--help"])
    assert "stop watching after SECONDS in all" in " ".join(capsys.readouterr().out.split())
    # Heartbeats every 0.2 s: a watch that a per-call deadline of 0.5 s would
    # end (and reconnect) ends instead, once, with status 0.
    result = await cli("watch", "--target", target, "--timeout", "0.7")
    assert result.code == 0
    assert "heartbeat" in result.out and "interrupted" not in result.err


async def test_sha256_is_checked_before_downloading(target: str, tmp_path: Path) -> None:
    source = tmp_path / "f.bin"
    data = os.urandom(200_000)
    source.write_bytes(data)
    uploaded = await cli("upload", str(source), "--target", target)
    file_id = uploaded.out.split("file_id: ")[1].split()[0]
    dest = tmp_path / "copy.bin"
    wrong = "0" * 64
    result = await cli("download", file_id, "-o", str(dest), "--sha256", wrong, "--target", target)
    assert result.code == 1
    assert f"not the expected {wrong}: nothing downloaded" in result.err
    assert not dest.exists() and not part_path(dest).exists()
    right = hashlib.sha256(data).hexdigest()
    result = await cli("download", file_id, "-o", str(dest), "--sha256", right, "--target", target)
    assert result.code == 0 and dest.read_bytes() == data


async def test_ctrl_c_during_list_prints_the_resume_cursor(target: str) -> None:
    command = [sys.executable, "-m", "puregrpc_streaming", "list", "--target", target]
    command += ["--page-size", "1"]
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    out = bytearray()
    err = bytearray()
    try:
        with trio.fail_after(20):
            while out.count(b"\n") < 10:
                out += await process.stdout.receive_some()
            process.send_signal(signal.SIGINT)
            async with trio.open_nursery() as nursery:

                async def drain(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
                    while chunk := await stream.receive_some():
                        into += chunk

                nursery.start_soon(drain, process.stdout, out)
                nursery.start_soon(drain, process.stderr, err)
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 130, err.decode()
    last_id = out.decode().splitlines()[-1].split("\t")[0]
    text = err.decode()
    assert "continue with --cursor ds1-" in text, text
    cursor = text.split("--cursor ")[1].split()[0]
    assert cursor == f"ds1-{last_id}"
    # And the cursor goes on right after the last row printed.
    result = await cli("list", "--target", target, "--cursor", cursor, "--limit", "1")
    assert result.out.split("\t")[0] == str(int(last_id) + 1)


def test_demo_help_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run_demo(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m puregrpc_streaming.demo")


async def test_a_bare_room_command_is_an_error_not_a_message(target: str) -> None:
    result = await cli(
        "chat", "--target", target, "--user", "ann", "--linger", "1", stdin="/room\n/room  \nhi\n"
    )
    assert result.code == 2
    assert result.err.count("error: /room needs a room name") == 2
    assert "ann: hi" in result.out and "/room" not in result.out


async def test_serve_help_says_what_each_limit_is_and_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before, twelve options (--max-upload-bytes, --query-timeout, --chat-burst,
    # --retain-events, --log-level...) had no help or only "event log", and
    # did not say their default.
    with pytest.raises(SystemExit):
        await amain(["serve", "--help"])
    text = capsys.readouterr().out.split("Every option may also come")[0]
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("  --"):
            flag = line.split()[0]
            entries[flag] = line
        elif line.startswith("    ") and entries:
            entries[flag] += line
    without_default = {
        "--config", "--data-dir", "--tls-cert", "--tls-key", "--client-ca",
        "--tokens", "--token", "--admin",
    }  # fmt: skip
    assert len(entries) > 30
    missing = [
        flag
        for flag, entry in entries.items()
        if flag not in without_default and "default" not in " ".join(entry.split()[1:])
    ]
    assert missing == []
    assert "largest file an upload may store (default 1G)" in " ".join(
        entries["--max-upload-bytes"].split()
    )
