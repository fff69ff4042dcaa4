"""Operations: every serve setting from a flag, ``PUREGRPC_STREAMING_*`` or a TOML file.

Before issue #14 limits were flags only (some not even that: the shutdown
grace, upload session expiry, a watcher's queue), and each call logged two
or three lines, a client's cancel at WARNING.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from service_support import running, upload

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel
from puregrpc_streaming.cli import UsageError, amain, parse_serve
from puregrpc_streaming.logs import JsonLinesFormatter, configure_logging
from puregrpc_streaming.memory import DEFAULT_ARENAS
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub
from puregrpc_streaming.server import ServeConfig, serve


def test_a_flag_wins_over_the_environment_which_wins_over_the_file(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(
        'data-dir = "/srv/data"\n'
        'max-upload-bytes = "1M"\n'
        "chat_rate = 5\n"  # underscores read the same
        "shutdown-grace = 0.5\n"
        'admin = ["root", "ops"]\n'
        "retain-events = 100\n"
    )
    env = {
        "PUREGRPC_STREAMING_CONFIG": str(config),
        "PUREGRPC_STREAMING_MAX_UPLOAD_BYTES": "2M",
        "PUREGRPC_STREAMING_RETAIN_EVENTS": "200",
        "PUREGRPC_STREAMING_TOKEN": "a client's token, not serve's",
    }
    command = parse_serve(["--retain-events", "300", "--log-format", "json"], env)
    settings = command.config
    assert settings.data_dir == Path("/srv/data")  # file
    assert settings.max_upload_bytes == 2 << 20  # environment over file
    assert settings.retention.max_events == 300  # flag over both
    assert settings.chat_rate == 5.0 and settings.shutdown_grace == 0.5
    assert settings.admins == frozenset({"root", "ops"})
    assert settings.tokens == {}
    assert command.log_format == "json" and command.log_level == "INFO"
    # The defaults where nobody says: the same as the bare flags'.
    assert settings.sql_threads == parse_serve(["--data-dir", "d"], {}).config.sql_threads


def test_every_limit_has_a_flag_a_variable_and_a_key(tmp_path: Path) -> None:
    values = {
        "max-upload-bytes": ("3M", "max_upload_bytes", 3 << 20),
        "query-row-limit": ("64K", "max_query_row_bytes", 64 << 10),
        "chat-burst": ("7", "chat_burst", 7),
        "sql-threads": ("3", "sql_threads", 3),
        "query-threads": ("2", "query_threads", 2),
        "file-threads": ("5", "file_threads", 5),
        "watch-queue-bytes": ("1M", "watch_queue_bytes", 1 << 20),
        "shutdown-grace": ("9", "shutdown_grace", 9.0),
        "query-timeout": ("2.5", "query_timeout", 2.5),
        "sql-busy-timeout": ("0.5", "sql_busy_timeout", 0.5),
        "sql-cache-size": ("64K", "sql_cache_kib", 64),
    }
    for flag, (text, attribute, expected) in values.items():
        variable = "PUREGRPC_STREAMING_" + flag.upper().replace("-", "_")
        config = tmp_path / f"{flag}.toml"
        config.write_text(f'{flag} = "{text}"\n')
        for command in (
            parse_serve(["--data-dir", "d", f"--{flag}", text], {}),
            parse_serve(["--data-dir", "d"], {variable: text}),
            parse_serve(["--data-dir", "d", "--config", str(config)], {}),
        ):
            assert getattr(command.config, attribute) == expected, (flag, command)
    sessions = parse_serve(
        ["--data-dir", "d", "--upload-session-ttl", "60"],
        {"PUREGRPC_STREAMING_MAX_UPLOAD_SESSIONS": "9"},
    ).config.upload_sessions
    assert (sessions.ttl, sessions.max_sessions) == (60.0, 9)
    retention = parse_serve(
        ["--data-dir", "d"],
        {"PUREGRPC_STREAMING_RETAIN_BYTES": "1M", "PUREGRPC_STREAMING_RETAIN_SECONDS": "60"},
    ).config.retention
    assert (retention.max_bytes, retention.max_age) == (1 << 20, 60.0)


def test_malloc_arenas_come_from_a_flag_a_variable_or_a_key(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text("malloc-arenas = 4\n")
    assert parse_serve(["--data-dir", "d"], {}).malloc_arenas == DEFAULT_ARENAS
    assert parse_serve(["--data-dir", "d", "--malloc-arenas", "0"], {}).malloc_arenas == 0
    variable = {"PUREGRPC_STREAMING_MALLOC_ARENAS": "3"}
    assert parse_serve(["--data-dir", "d"], variable).malloc_arenas == 3
    assert parse_serve(["--data-dir", "d", "--config", str(config)], {}).malloc_arenas == 4


async def _served_a_call(stub: StreamingServiceStub) -> None:
    with pytest.raises(RpcError) as caught:
        await stub.GetData(pb.GetDataRequest(key="nothing"), timeout=10)
    assert caught.value.code is StatusCode.NOT_FOUND


def test_the_heap_freeze_is_on_for_serve_and_switched_off_three_ways(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text('freeze-heap = "no"\n')
    assert parse_serve(["--data-dir", "d"], {}).config.freeze_heap is True
    assert parse_serve(["--data-dir", "d", "--freeze-heap", "no"], {}).config.freeze_heap is False
    variable = {"PUREGRPC_STREAMING_FREEZE_HEAP": "off"}
    assert parse_serve(["--data-dir", "d"], variable).config.freeze_heap is False
    assert parse_serve(["--data-dir", "d", "--config", str(config)], {}).config.freeze_heap is False
    config.write_text("freeze-heap = false\n")  # a TOML boolean says the same
    assert parse_serve(["--data-dir", "d", "--config", str(config)], {}).config.freeze_heap is False
    # In-process servers (tests, embedding) leave the process's collector alone.
    assert ServeConfig(data_dir=tmp_path).freeze_heap is False


async def test_a_server_with_the_freeze_serves_with_its_startup_heap_frozen(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gc.unfreeze()
    async with running(tmp_path / "open") as served:
        assert gc.get_freeze_count() == 0
        await _served_a_call(served.stub)
    caplog.set_level(logging.INFO, logger="puregrpc_streaming")
    async with running(tmp_path / "frozen", freeze_heap=True) as served:
        frozen = gc.get_freeze_count()
        # Every module, class and function of the service is in there.
        assert frozen > 10_000
        tracked = len(gc.get_objects())
        await _served_a_call(served.stub)
        assert tracked < frozen // 2  # what a full pass walks now
    said = [r.getMessage() for r in caplog.records if "froze the startup heap" in r.getMessage()]
    assert len(said) == 1, said
    # Frozen objects freed since (by reference counting) have left the count.
    logged = int(said[0].split(": ")[1].split()[0])
    assert logged >= frozen


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_tune_malloc_takes_effect_on_glibc_and_zero_keeps_the_defaults() -> None:
    # In a process of its own: the settings are the whole process's.
    code = (
        "from puregrpc_streaming.memory import tune_malloc\nprint(tune_malloc(0), tune_malloc(2))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["False", "True"]


@pytest.mark.parametrize(
    ("argv", "env", "toml", "needle"),
    [
        (
            [],
            {"PUREGRPC_STREAMING_CHAT_BURST": "many"},
            None,
            "$PUREGRPC_STREAMING_CHAT_BURST: not an integer",
        ),
        ([], {"PUREGRPC_STREAMING_LOG_FORMAT": "xml"}, None, "'xml' is not one of text, json"),
        ([], {}, "chat-burst = -1\n", "config file {toml}: chat-burst: must not be negative"),
        ([], {}, "colour = 'red'\n", "unknown setting 'colour'"),
        ([], {}, "chat-burst = true\n", "expected a string or a number"),
        ([], {}, "admin = 5\n", "admin: expected a list"),
        ([], {}, "this is = not toml\n", "is not valid TOML"),
        (["--config", "missing.toml"], {}, None, "config file missing.toml does not exist"),
        ([], {"PUREGRPC_STREAMING_CHUNK_SIZE": "1M"}, None, "chunk_size must be 16 KiB..64 KiB"),
        ([], {"PUREGRPC_STREAMING_WATCH_QUEUE_BYTES": "1K"}, None, "watch_queue_bytes must be"),
    ],
)
def test_bad_settings_name_their_source(
    tmp_path: Path, argv: list[str], env: dict[str, str], toml: str | None, needle: str
) -> None:
    config = tmp_path / "serve.toml"
    if toml is not None:
        config.write_text(toml)
        argv = [*argv, "--config", str(config)]
    with pytest.raises(UsageError) as raised:
        parse_serve(["--data-dir", "d", *argv], env)
    assert needle.format(toml=config) in str(raised.value)


def test_serve_without_a_data_dir_anywhere_says_where_one_may_come_from() -> None:
    stderr = io.StringIO()
    status = trio.run(lambda: amain(["serve", "--port", "0"], stderr=stderr))
    assert status == 2
    assert "serve needs --data-dir (or $PUREGRPC_STREAMING_DATA_DIR" in stderr.getvalue()


async def test_one_json_line_per_call_and_cancels_below_warning(tmp_path: Path) -> None:
    out = io.StringIO()
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    configure_logging(out, level="INFO", json_lines=True)
    configure_logging(out, level="INFO", json_lines=True)  # again: still one handler
    try:
        async with running(tmp_path) as served:
            stub = served.stub
            start = out.tell()
            await stub.BatchProcess([pb.ProcessRequest(operation="reverse")])
            chunks = [pb.FileChunk(content=b"hello", filename="a.txt", total_size=5)]
            uploaded = await stub.UploadFile(chunks)
            async for _ in stub.DownloadFile(pb.DownloadRequest(file_id=uploaded.file_id)):
                pass
            with pytest.raises(RpcError) as missing:
                await stub.GetData(pb.GetDataRequest(key="nothing"))
            assert missing.value.code is StatusCode.NOT_FOUND
            # A client that stops listing halfway cancels its call.
            async with stub.ListLargeDataset(pb.ListRequest(page_size=10)) as listing:
                await listing.receive()
            with trio.fail_after(5):
                while out.getvalue()[start:].count("ListLargeDataset") < 1:  # noqa: ASYNC110
                    await trio.sleep(0.01)
            lines = [json.loads(line) for line in out.getvalue()[start:].splitlines()]
    finally:
        for handler in list(root.handlers):
            if handler not in before[1]:
                root.removeHandler(handler)
        root.setLevel(before[0])
    calls = [line for line in lines if "method" in line]
    assert len(calls) == len(lines) == 5, "\n".join(line["message"] for line in lines)
    by_method = {line["method"].rsplit("/", 1)[1]: line for line in calls}
    assert by_method["BatchProcess"]["code"] == "OK" and by_method["BatchProcess"]["sent"] == 1
    assert by_method["UploadFile"]["received"] == 1
    assert by_method["GetData"] | {"level": "INFO", "code": "NOT_FOUND"} == by_method["GetData"]
    assert by_method["ListLargeDataset"]["code"] == "CANCELLED"
    assert by_method["ListLargeDataset"]["level"] == "INFO"
    for line in calls:
        assert {"time", "level", "logger", "message", "peer", "duration"} <= set(line)
        assert line["logger"] == "puregrpc_streaming"


def test_json_lines_carry_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("here",), exc_info=sys.exc_info()
        )
    line = json.loads(JsonLinesFormatter().format(record))
    assert line["message"] == "failed here" and "ValueError: boom" in line["exception"]


async def test_the_shutdown_grace_is_what_the_setting_says(tmp_path: Path) -> None:
    # A download whose client stopped reading holds the server's stop for
    # the grace period, then is cut: with 0.2 s it is over well before the
    # 3 s default would be.
    config = ServeConfig(data_dir=tmp_path, dataset_rows=10, shutdown_grace=0.2)
    server_scope = trio.CancelScope()

    async def run_server(*, task_status: trio.TaskStatus[str]) -> None:
        with server_scope:
            await serve(config, task_status=task_status)

    async with trio.open_nursery() as nursery:
        address = await nursery.start(run_server)
        async with Channel(address) as channel:
            stub = StreamingServiceStub(channel)
            file_id = await upload(stub, os.urandom(4 << 20), "big.bin")
            with trio.fail_after(10):
                request = pb.DownloadRequest(file_id=file_id)
                async with stub.DownloadFile(request, timeout=30) as call:
                    await call.receive()  # then read no more: the server is stuck sending
                    server_scope.cancel()  # stop, as on SIGTERM
                    # Past 0.2 s (but not 3 s) the server has given up on the
                    # call: reading on, the client finds it cut, not complete.
                    await trio.sleep(1.0)
                    with pytest.raises(RpcError) as cut:
                        while await call.receive() is not None:
                            pass
    assert cut.value.code in (StatusCode.UNAVAILABLE, StatusCode.CANCELLED)
