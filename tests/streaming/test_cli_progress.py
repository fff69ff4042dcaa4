"""The progress display: a redrawn bar on a terminal, plain quarter lines elsewhere."""

from __future__ import annotations

import io

from puregrpc_streaming.progress import Progress, format_bytes


def test_plain_lines_at_each_quarter_then_done() -> None:
    out = io.StringIO()
    progress = Progress("upload x", 1000, stream=out, tty=False)

    for _ in range(10):
        progress.advance(100)
    progress.finish("(sha256 verified)")

    lines = out.getvalue().splitlines()
    assert [line.split(" ")[2] for line in lines] == ["25%", "50%", "75%", "done"]
    assert lines[-1].startswith("upload x: done 1,000 B/1,000 B at ")
    assert lines[-1].endswith("MB/s (sha256 verified)")
    assert "\r" not in out.getvalue()


def test_a_resumed_transfer_does_not_repeat_the_quarters_it_had() -> None:
    out = io.StringIO()
    progress = Progress("download", stream=out, tty=False)
    progress.resume_at(600)
    progress.total = 1000  # learnt from the first chunk

    progress.advance(200)
    progress.advance(200)
    progress.finish()

    lines = out.getvalue().splitlines()
    assert [line.split(" ")[1] for line in lines] == ["75%", "done"]


def test_a_terminal_gets_one_redrawn_bar() -> None:
    out = io.StringIO()
    progress = Progress("download", 4096, stream=out, tty=True)

    for _ in range(4):
        progress.advance(1024)  # redrawn at most every 0.1 s: the first one draws
    progress.finish()
    progress.finish()  # once only

    text = out.getvalue()
    assert text.count("\n") == 1
    assert text.startswith("\rdownload [#######-")
    assert "[" + "#" * 30 + "] 100% 4.0 KiB/4.0 KiB" in text.rsplit("\r", 1)[1]


def test_counting_rows_instead_of_bytes() -> None:
    out = io.StringIO()
    progress = Progress("list", 4, stream=out, tty=False, unit="rows")

    for _ in range(4):
        progress.advance(1)
    progress.finish()

    assert out.getvalue().splitlines()[-1].startswith("list: done 4/4 rows at ")


def test_format_bytes() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(64 * 1024) == "64.0 KiB"
    assert format_bytes(3 << 30) == "3.0 GiB"
