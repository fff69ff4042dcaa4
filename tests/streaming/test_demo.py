"""The main job runs end to end: ``python -m puregrpc_streaming.demo``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_demo_calls_all_ten_rpcs_and_stops_cleanly() -> None:
    # A smaller dataset and file than `make demo` uses, to keep the suite quick.
    result = subprocess.run(
        [sys.executable, "-m", "puregrpc_streaming.demo", "--rows", "20000", "--size-mib", "8"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )

    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert re.search(r"^\$ puregrpc-streaming serve --port 0 .* --tokens \S+", out, re.MULTILINE)
    # The authenticated way: a call without a token is refused, and cat's
    # replay of the chat holds only cat's room.
    assert "a call without a token -> UNAUTHENTICATED" in out
    replay = re.search(r"^  cat replays every chat message .*$", out, re.MULTILINE)
    assert replay and "#ops cat: quiet in here" in replay[0] and "#lobby" not in replay[0]
    assert "error (PERMISSION_DENIED): reading table 'kv' is not allowed" in out
    assert re.search(r"^127\.0\.0\.1:\d+: listening after", out, re.MULTILINE)
    assert re.search(
        r"^browser console: http://127\.0\.0\.1:\d+/ \(token for ops: \w+\)$", out, re.M
    )
    assert "--web" in out.splitlines()[2]
    assert "(dataset of 20,000 rows instead of the default 1,000,000" in out
    for step in range(1, 11):
        assert re.search(rf"^{step}/10 ", out, re.MULTILINE) or f"and {step}/10" in out, step
    summary = out[out.index("\nsummary\n") :]
    for expected in (
        "UploadFile: 8.0 MiB",
        "DownloadFile: 8.0 MiB, interrupted at",
        "resumed",
        "ListLargeDataset: 20,000 rows",
        "CollectMetrics:",
        "BatchProcess:",
        "Chat: 3 users in 2 rooms",
        "Identity: bearer tokens",
        "SyncData:",
        "GetData:",
        "InteractiveQuery:",
        "WatchEvents:",
        "checksums verified: 3",
        "RPCs exercised: 10/10",
    ):
        assert expected in summary, f"{expected!r} missing from the summary:\n{summary}"
    assert re.search(r"UploadFile: .* [\d,]+ MB/s, sha256 verified", summary)
    assert re.search(r"messages: [\d,]+ over all RPCs .*\([\d,]+ messages/s\)", summary)
    assert "server stopped cleanly (SIGTERM, exit status 0)" in out
    assert "temporary data dir removed" in out
    assert "Traceback" not in result.stderr
