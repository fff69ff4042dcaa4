"""The ``puregrpc-streaming`` client subcommands against a real server, in-process.

The server is :func:`puregrpc_streaming.server.serve` in the test's nursery
(temporary data dir, a small dataset, a free loopback port); each command
runs through :func:`puregrpc_streaming.cli.amain` in the same trio loop, with
stdin/stdout/stderr as in-memory text streams.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trustme

from puregrpc_streaming.cli import amain
from puregrpc_streaming.client_helpers import open_channel, part_path
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub
from puregrpc_streaming.server import ServeConfig, serve

ROWS = 2000


@dataclass
class Result:
    """What one command did."""

    code: int
    out: str
    err: str


async def run_cli(*argv: str, stdin: str = "") -> Result:
    """Run one ``puregrpc-streaming`` command in this trio loop (bounded in time)."""
    out, err = io.StringIO(), io.StringIO()
    with trio.fail_after(20):
        code = await amain(list(argv), stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
async def target(nursery: trio.Nursery, tmp_path: Path) -> str:
    """``HOST:PORT`` of a fresh server on a temporary data dir."""
    config = ServeConfig(data_dir=tmp_path / "data", dataset_rows=ROWS, heartbeat_interval=0.5)
    address: str = await nursery.start(serve, config)
    return address


def make_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their sha256."""
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def field(output: str, name: str) -> str:
    match = re.search(rf"^{name}: (\S+)$", output, re.MULTILINE)
    assert match, f"no {name!r} line in:\n{output}"
    return match.group(1)


# ------------------------------------------------------------- upload/download


async def test_upload_prints_file_id_and_checksum_and_download_verifies(
    target: str, tmp_path: Path
) -> None:
    source = tmp_path / "report.csv"
    sha256 = make_file(source, 300_000)

    up = await run_cli("upload", str(source), "--target", target, "--chunk-size", "16K")

    assert up.code == 0, up.err
    assert field(up.out, "sha256") == sha256
    assert field(up.out, "size") == "300000"
    assert "upload report.csv: done" in up.err  # plain progress lines: not a tty
    file_id = field(up.out, "file_id")

    dest = tmp_path / "copy.csv"
    down = await run_cli(
        "download", file_id, "-o", str(dest), "--sha256", sha256, "--target", target
    )

    assert down.code == 0, down.err
    assert f"sha256 {sha256} (verified)" in down.out
    assert dest.read_bytes() == source.read_bytes()
    assert not part_path(dest).exists()


async def test_download_without_expected_checksum_says_it_is_not_verified(
    target: str, tmp_path: Path
) -> None:
    source = tmp_path / "a.bin"
    sha256 = make_file(source, 70_000)
    file_id = field((await run_cli("upload", str(source), "--target", target)).out, "file_id")

    down = await run_cli("download", file_id, "-o", str(tmp_path / "b.bin"), "--target", target)

    assert down.code == 0, down.err
    assert f"sha256 {sha256} (verified against the server's record)" in down.out


async def test_download_of_an_unknown_file_is_not_found(target: str, tmp_path: Path) -> None:
    result = await run_cli("download", "abc", "-o", str(tmp_path / "x"), "--target", target)

    assert result.code == 1
    assert result.err.startswith("error: NOT_FOUND: "), result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "x").exists()


async def test_download_resumes_from_an_existing_part_file(target: str, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    sha256 = make_file(source, 1_000_000)
    file_id = field((await run_cli("upload", str(source), "--target", target)).out, "file_id")
    dest = tmp_path / "big-copy.bin"
    # An earlier run was interrupted after 400,000 bytes.
    part_path(dest).write_bytes(source.read_bytes()[:400_000])

    result = await run_cli(
        "download", file_id, "-o", str(dest), "--sha256", sha256, "--target", target
    )

    assert result.code == 0, result.err
    assert "resuming from" in result.err
    assert "(verified)" in result.out
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha256


async def test_download_with_a_corrupt_part_file_fails_the_checksum(
    target: str, tmp_path: Path
) -> None:
    source = tmp_path / "c.bin"
    sha256 = make_file(source, 200_000)
    file_id = field((await run_cli("upload", str(source), "--target", target)).out, "file_id")
    dest = tmp_path / "c-copy.bin"
    part_path(dest).write_bytes(b"\0" * 1000)  # not the file's first bytes

    result = await run_cli(
        "download", file_id, "-o", str(dest), "--sha256", sha256, "--target", target
    )

    assert result.code == 1
    assert "error: checksum mismatch" in result.err
    assert not dest.exists() and not part_path(dest).exists()


async def test_upload_of_a_missing_file_is_a_usage_error(target: str, tmp_path: Path) -> None:
    result = await run_cli("upload", str(tmp_path / "nope.txt"), "--target", target)

    assert result.code == 2
    assert result.err == f"error: {tmp_path / 'nope.txt'}: no such file\n"


# --------------------------------------------------------------- key-value


async def test_sync_applies_changes_reports_conflicts_and_get_reads_them(target: str) -> None:
    script = "set color blue\nset color green 1\nset color red 1\nset size 'extra large'\n"

    sync = await run_cli("sync", "--target", target, stdin=script)

    assert sync.code == 0, sync.err
    lines = sync.out.splitlines()
    assert "ack color version 1 (c1)" in lines
    assert "ack color version 2 (c2)" in lines
    assert any(line.startswith("conflict color (c3): server has version 2") for line in lines)
    assert "ack size version 1 (c4)" in lines

    get = await run_cli("get", "color", "--target", target)

    assert get.code == 0, get.err
    assert get.out.splitlines()[0] == "color = green"
    assert get.out.splitlines()[1].startswith("version 2, updated 20")
    assert (await run_cli("get", "size", "--target", target)).out.startswith("size = extra large")


async def test_sync_delete_then_get_is_not_found(target: str) -> None:
    sync = await run_cli("sync", "--target", target, stdin="set k v\ndel k 1\n")
    assert sync.code == 0, sync.err
    assert "ack k version 2 (c2)" in sync.out

    get = await run_cli("get", "k", "--target", target)

    assert get.code == 1
    assert get.err.startswith("error: NOT_FOUND: ")


async def test_sync_reports_a_malformed_line_and_goes_on(target: str) -> None:
    result = await run_cli("sync", "--target", target, stdin="put a b\nset a b\n")

    assert result.code == 2
    assert "error: line 1: expected 'set KEY VALUE [BASE_VERSION]'" in result.err
    assert "ack a version 1 (c2)" in result.out


async def test_get_of_an_unknown_key_is_not_found(target: str) -> None:
    result = await run_cli("get", "missing", "--target", target)

    assert result.code == 1
    assert result.err.startswith("error: NOT_FOUND: ")
    assert result.out == ""


# ------------------------------------------------------------------- list


async def test_list_limit_then_resume_from_the_printed_cursor(target: str) -> None:
    first = await run_cli("list", "--limit", "5", "--target", target)

    assert first.code == 0, first.err
    ids = [int(line.split("\t")[0]) for line in first.out.splitlines()]
    assert ids == [1, 2, 3, 4, 5]
    cursor = re.search(r"continue with --cursor (\S+)", first.err)
    assert cursor, first.err

    second = await run_cli("list", "--cursor", cursor.group(1), "--limit", "3", "--target", target)

    assert [int(line.split("\t")[0]) for line in second.out.splitlines()] == [6, 7, 8]


async def test_list_streams_the_whole_table_with_a_filter(target: str) -> None:
    result = await run_cli(
        "list", "--filter", 'category = "red"', "--page-size", "50", "--target", target
    )

    assert result.code == 0, result.err
    rows = [line.split("\t") for line in result.out.splitlines()]
    assert 0 < len(rows) < ROWS
    assert {row[1] for row in rows} == {"red"}
    assert f"{len(rows)} rows" in result.err


async def test_list_with_a_malformed_filter_is_invalid_argument(target: str) -> None:
    result = await run_cli("list", "--filter", "value >>> 3", "--target", target)

    assert result.code == 1
    assert result.err.startswith("error: INVALID_ARGUMENT: ")


# ----------------------------------------------------------- metrics, batch


async def test_metrics_from_stdin_are_aggregated(target: str) -> None:
    lines = "cpu 0.5 host=a\ncpu 1.5 host=b\n# a comment\n\nmemory 300\n"

    result = await run_cli("metrics", "--target", target, stdin=lines)

    assert result.code == 0, result.err
    out = result.out.splitlines()
    assert out[0] == "total_count: 3"
    for expected in ("cpu: 2", "cpu#count: 2", "cpu#min: 0.5", "cpu#max: 1.5", "cpu#mean: 1"):
        assert expected in out
    assert "memory: 300" in out


async def test_metrics_from_arguments(target: str) -> None:
    result = await run_cli(
        "metrics", "--metric", "rps 10", "--metric", "rps 20", "--target", target
    )

    assert result.code == 0, result.err
    assert "rps#mean: 15" in result.out.splitlines()


async def test_a_malformed_metric_line_is_named(target: str) -> None:
    result = await run_cli("metrics", "--target", target, stdin="cpu 1\ncpu lots\n")

    assert result.code == 2
    assert result.err == "error: line 2: 'lots' is not a number\n"


async def test_batch_prints_the_summary_and_each_failure(target: str, tmp_path: Path) -> None:
    items = tmp_path / "items.txt"
    items.write_text(
        'a uppercase hello world\nb sha256 abc\nc json_validate {"x": 1}\n'
        "d json_validate {broken\ne teleport now\n",
        encoding="utf-8",
    )

    result = await run_cli("batch", str(items), "--target", target)

    assert result.code == 1  # some items failed
    out = result.out.splitlines()
    assert out[0] == "total 5, succeeded 3, failed 2"
    assert any(line.startswith("failed d (#3): ") for line in out)
    assert any(line.startswith("failed e (#4): ") for line in out)
    assert "a: HELLO WORLD" in out
    assert f"b: {hashlib.sha256(b'abc').hexdigest()}" in out


async def test_batch_from_stdin_all_good_exits_zero(target: str) -> None:
    result = await run_cli("batch", "--target", target, stdin="x reverse abc\ny word_count a b c\n")

    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == "total 2, succeeded 2, failed 0"
    assert "x: cba" in result.out.splitlines()


# ------------------------------------------------------- chat, query, watch


async def test_chat_sends_stdin_lines_and_prints_the_room(target: str) -> None:
    result = await run_cli(
        "chat", "--user", "ann", "--room", "lobby", "--target", target, stdin="hello\nhow are you\n"
    )

    assert result.code == 0, result.err
    messages = re.findall(r"^\[[\d:]+\] #(\S+) (\S+): (.*)$", result.out, re.MULTILINE)
    assert ("lobby", "ann", "hello") in messages
    assert ("lobby", "ann", "how are you") in messages


async def test_chat_room_command_switches_rooms(target: str) -> None:
    result = await run_cli(
        "chat", "--user", "bob", "--room", "a", "--target", target, stdin="one\n/room b\ntwo\n"
    )

    assert result.code == 0, result.err
    assert re.search(r"#a bob: one$", result.out, re.MULTILINE)
    assert re.search(r"#b bob: two$", result.out, re.MULTILINE)


async def test_query_prints_rows_errors_and_markers(target: str) -> None:
    queries = "SELECT count(*) AS n FROM dataset\nDELETE FROM dataset\nSELECT 1 AS one\n"

    result = await run_cli("query", "--target", target, stdin=queries)

    assert result.code == 1  # one query failed
    out = result.out.splitlines()
    assert json.loads(out[0]) == {"n": ROWS}
    assert out[1] == "-- 1 row"
    assert out[2].startswith("error: ")
    assert json.loads(out[3]) == {"one": 1}
    assert out[4] == "-- 1 row"
    # The refused DELETE changed nothing.
    again = await run_cli("query", "--target", target, stdin="SELECT count(*) AS n FROM dataset\n")
    assert json.loads(again.out.splitlines()[0]) == {"n": ROWS}


async def test_query_max_rows(target: str) -> None:
    result = await run_cli(
        "query", "--max-rows", "3", "--target", target, stdin="SELECT id FROM dataset\n"
    )

    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == "-- 3 rows"


async def test_watch_prints_events_as_they_happen(target: str) -> None:
    # sync.changed is everyone's to see (in open mode a file upload is its
    # connection's only, and the watcher has a connection of its own).
    done = trio.Event()
    result: list[Result] = []

    async def watch() -> None:
        result.append(
            await run_cli("watch", "--type", "sync.changed", "--limit", "1", "--target", target)
        )
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        # Change keys until the watcher (subscribing concurrently) has seen one.
        async with (
            open_channel(target) as channel,
            StreamingServiceStub(channel).SyncData() as sync,
        ):
            with trio.fail_after(10):
                for n in range(1000):
                    await sync.send(pb.SyncRequest(key=f"watched-{os.getpid()}-{n}", value=b"v"))
                    assert (await sync.receive()) is not None  # the ACK
                    with trio.move_on_after(0.2):
                        await done.wait()
                    if done.is_set():
                        break

    watched = result[0]
    assert watched.code == 0, watched.err
    event_id, timestamp, kind, payload = watched.out.strip().split(" ", 3)
    assert kind == "sync.changed"
    assert timestamp.startswith("20")
    assert json.loads(payload)["key"].startswith(f"watched-{os.getpid()}-")
    assert event_id


async def test_watch_with_a_malformed_filter_is_invalid_argument(target: str) -> None:
    result = await run_cli("watch", "--filter", "size >", "--target", target)

    assert result.code == 1
    assert result.err.startswith("error: INVALID_ARGUMENT: ")


async def test_watch_timeout_ends_quietly(target: str) -> None:
    result = await run_cli(
        "watch", "--type", "chat.message", "--timeout", "0.3", "--target", target
    )

    assert result.code == 0, result.err
    assert result.out == ""


# -------------------------------------------------------------- connection


async def test_a_bad_target_is_a_clear_error() -> None:
    result = await run_cli("get", "k", "--target", "127.0.0.1:1")

    assert result.code == 1
    assert result.err.startswith("error: cannot connect to 127.0.0.1:1: "), result.err
    assert "Traceback" not in result.err


async def test_a_refused_connection_says_connection_refused() -> None:
    result = await run_cli("get", "k", "--target", "127.0.0.1:1")

    assert "Connection refused" in result.err


async def test_a_malformed_target_is_a_clear_error() -> None:
    result = await run_cli("get", "k", "--target", "localhost")

    assert result.code == 1
    assert result.err == "error: target 'localhost' has no port (expected host:port)\n"


async def test_tls_with_the_server_ca(nursery: trio.Nursery, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    config = ServeConfig(
        data_dir=tmp_path / "data", dataset_rows=10, tls_cert=cert_file, tls_key=key_file
    )
    address: str = await nursery.start(serve, config)

    trusted = await run_cli("get", "nothing", "--target", address, "--tls-ca", str(ca_file))
    plain_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(plain_ca))
    untrusted = await run_cli("get", "nothing", "--target", address, "--tls-ca", str(plain_ca))

    assert trusted.code == 1
    assert trusted.err.startswith("error: NOT_FOUND: ")  # the call went through, over TLS
    assert untrusted.code == 1
    assert "TLS handshake failed" in untrusted.err


async def test_serve_with_a_bad_chunk_size_is_a_clear_error(tmp_path: Path) -> None:
    result = await run_cli("serve", "--data-dir", str(tmp_path), "--chunk-size", "1K")

    assert result.code == 2  # bad input: a usage error
    assert result.err.startswith("error: ") and "chunk" in result.err, result.err
    assert result.out == ""
