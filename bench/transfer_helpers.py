"""The client helpers against a minimal client, paired, on one server (issue #14).

    python3 bench/streaming_transfer.py --helpers [--pairs N] [--sizes 64,256]
    python3 bench/transfer_helpers.py [--pairs N] [--sizes 64,256]   # the same

"Client helpers at wire speed": the demo's upload and download through the
service's client helpers (``upload_file`` / ``download_file``) within 20% of
the same transfers by a minimal client, on the same server in the same run.
Both clients are ``impls/puregrpc_helpers_client.py`` (read it for what each
side does): the helpers read, hash, write, fsync and verify; the minimal
client only sends chunks from memory or receives and drops them.

Per size (64 and 256 MiB by default): one puregrpc_streaming server (core
0, a fresh data directory), one warm-up upload (its file is what every
download fetches, so it is in the page cache), then ``--pairs`` pairs of
each direction, every transfer a fresh client process on core 1. The two
sides of a pair run back to back, and which goes first alternates from pair
to pair (helpers, minimal; minimal, helpers; ...): the disk's writeback
after one transfer must not always fall on the same side.

Reported per transfer, medians over the pairs: MB/s (10^6 bytes / the
call's wall time: the whole helper call, fsync included), the client's CPU
seconds over the call (all its threads), the median of each pair's own rate
ratio helpers / minimal (with its min and max: the target is >= 0.80) and
of its CPU ratio, the server's CPU seconds, and the client's minor page
faults and context switches (``getrusage`` counts, steadier than time on a
shared machine). Writes ``results/streaming-helpers-latest.{md,json}``.
Standard library only: it runs under the system ``python3``; the processes
use the project's ``.venv``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run as bench  # noqa: E402  (run.py: pinned processes, logging)
from harness.env import git  # noqa: E402
from streaming_transfer import MIB, ServerSampler, make_source  # noqa: E402

log = bench.log
CLIENT = bench.IMPLS / "puregrpc_helpers_client.py"
SERVER = bench.IMPLS / "puregrpc_streaming_server.py"
SIDES = ("helpers", "minimal")
DIRECTIONS = ("upload", "download")
#: Seconds one client process may take.
CLIENT_TIMEOUT = 300.0

Record = dict[str, Any]


def python() -> Path:
    """The project's interpreter (``make`` creates ``.venv`` with puregrpc installed)."""
    candidate = bench.REPO / ".venv" / "bin" / "python"
    if not candidate.exists():
        sys.exit("no .venv: run `make .venv/.installed` first")
    return candidate


def run_client(server: bench.Server, args: list[str], cores: str) -> Record:
    """One client process on ``cores``; its RESULT plus the server's CPU over it."""
    with ServerSampler(server.pid) as sampler:
        code, output, wall, cpu = bench.run_pinned(
            ["taskset", "-c", cores, str(python()), str(CLIENT), *args], timeout=CLIENT_TIMEOUT
        )
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    if code != 0 or not lines:
        raise RuntimeError(f"client {args[0]} exited {code}: {output.strip()[-600:]}")
    result: Record = json.loads(lines[-1][7:])
    main, other = sampler.cpu_split()
    result.update(
        mb_per_s=result["bytes"] / 1e6 / result["seconds"],
        process_wall_s=wall,
        process_cpu_s=cpu,
        server_cpu_s=main + other,
    )
    return result


def measure_size(py: Path, workdir: Path, size: int, pairs: int, cores: str) -> dict[str, Any]:
    """Every pair of one size on a fresh server: {direction: [{side: record}]}."""
    source = workdir / f"source-{size // MIB}.bin"
    sha, *_ = make_source(source, size)
    data_dir = workdir / f"data-{size // MIB}"
    dest = workdir / "download.bin"
    out: dict[str, Any] = {d: [] for d in DIRECTIONS}
    server = bench.Server([str(py), str(SERVER), "--data-dir", str(data_dir)])
    host = ["127.0.0.1", str(server.port)]
    try:
        warm = run_client(server, ["helpers-upload", *host, str(source)], cores)
        if warm["sha256"] != sha:
            raise RuntimeError("the warm-up upload's sha256 differs from the source's")
        file_id = warm["file_id"]
        argv = {
            ("helpers", "upload"): ["helpers-upload", *host, str(source)],
            ("minimal", "upload"): ["minimal-upload", *host, str(size)],
            ("helpers", "download"): ["helpers-download", *host, file_id, str(dest)],
            ("minimal", "download"): ["minimal-download", *host, file_id],
        }
        for number in range(pairs):
            order = SIDES if number % 2 == 0 else SIDES[::-1]
            for direction in DIRECTIONS:
                pair: Record = {"first": order[0]}
                for side in order:
                    record = run_client(server, argv[(side, direction)], cores)
                    if record["bytes"] != size:
                        raise RuntimeError(f"{side} {direction}: {record['bytes']} bytes")
                    if side == "helpers" and record["sha256"] != sha:
                        raise RuntimeError(f"helpers {direction}: wrong sha256")
                    dest.unlink(missing_ok=True)
                    pair[side] = record
                ratio = pair["helpers"]["mb_per_s"] / pair["minimal"]["mb_per_s"]
                log(
                    f"{size // MIB} MiB {direction} pair {number + 1}/{pairs}: helpers "
                    f"{pair['helpers']['mb_per_s']:.0f} MB/s ({pair['helpers']['cpu_seconds']:.2f}"
                    f" s CPU), minimal {pair['minimal']['mb_per_s']:.0f} MB/s "
                    f"({pair['minimal']['cpu_seconds']:.2f} s CPU), ratio {ratio:.2f}"
                )
                out[direction].append(pair)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        source.unlink(missing_ok=True)
        dest.unlink(missing_ok=True)
    return out


def summarise(pairs: list[Record]) -> Record:
    """Medians of each side's figures and of the pairs' own ratios (with min and max)."""

    def median(side: str, key: str) -> float:
        return statistics.median(float(pair[side][key]) for pair in pairs)

    rate = [pair["helpers"]["mb_per_s"] / pair["minimal"]["mb_per_s"] for pair in pairs]
    cpu = [pair["helpers"]["cpu_seconds"] / pair["minimal"]["cpu_seconds"] for pair in pairs]
    keys = (
        "mb_per_s",
        "seconds",
        "cpu_seconds",
        "server_cpu_s",
        "minor_faults",
        "voluntary_switches",
        "involuntary_switches",
    )
    return {
        "pairs": len(pairs),
        **{f"{side}_{key}": median(side, key) for side in SIDES for key in keys},
        "ratio": statistics.median(rate),
        "ratio_min": min(rate),
        "ratio_max": max(rate),
        "cpu_ratio": statistics.median(cpu),
    }


def report(summaries: dict[str, Record], meta: Record) -> list[str]:
    """The markdown table and the target lines."""
    lines = [
        f"# Client helpers vs a minimal client, {meta['date']}, paired runs "
        f"({meta['pairs']} pairs per transfer, medians)",
        "",
        f"puregrpc_streaming server on core {bench.SERVER_CORE}, each transfer a fresh client "
        f"process on core(s) {meta['client_cores']}. MB/s = 10^6 bytes / the call's wall "
        "time; CPU s: the client process over the call (all threads); ratio: median of the "
        "pairs' own helpers/minimal ratios [min, max]. Faults and switches: the client's "
        "(getrusage).",
        "",
        f"Load average before / after: {meta['loadavg_before']:.2f} / {meta['loadavg_after']:.2f}.",
        "",
        "| transfer | minimal MB/s | helpers MB/s | ratio [min, max] | minimal CPU s "
        "| helpers CPU s | CPU ratio | server CPU s min / hlp | faults min / hlp "
        "| vol. switches min / hlp |",
        "|---|---:|---:|---|---:|---:|---:|---|---|---|",
    ]
    for name, s in summaries.items():
        lines.append(
            f"| {name} | {s['minimal_mb_per_s']:.0f} | {s['helpers_mb_per_s']:.0f} "
            f"| {s['ratio']:.2f} [{s['ratio_min']:.2f}, {s['ratio_max']:.2f}] "
            f"| {s['minimal_cpu_seconds']:.2f} | {s['helpers_cpu_seconds']:.2f} "
            f"| {s['cpu_ratio']:.2f} "
            f"| {s['minimal_server_cpu_s']:.2f} / {s['helpers_server_cpu_s']:.2f} "
            f"| {s['minimal_minor_faults']:,.0f} / {s['helpers_minor_faults']:,.0f} "
            f"| {s['minimal_voluntary_switches']:,.0f} / {s['helpers_voluntary_switches']:,.0f} |"
        )
    lines += ["", "Target (issue #14): helpers >= 0.80 of the minimal client's MB/s.", ""]
    for name, s in summaries.items():
        mark = "MET " if s["ratio"] >= 0.8 else "MISS"
        lines.append(f"  [{mark}] {name}: {s['ratio']:.2f}")
    lines += ["", f"took {meta['took_s']:.0f} s"]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, measure every size, write and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pairs", type=int, default=5, help="pairs per transfer (5)")
    parser.add_argument("--sizes", default="64,256", help="MiB, comma-separated (64,256)")
    parser.add_argument(
        "--client-cores",
        default=bench.LOAD_CORE,
        help="taskset list for the clients (default: the load core alone; 0,1: the "
        "helpers' worker thread may run beside their receive loop, on the server's core)",
    )
    args = parser.parse_args(argv)
    sizes = [int(text) * MIB for text in args.sizes.split(",")]
    if args.pairs < 1 or any(size <= 0 for size in sizes):
        parser.error("--pairs and --sizes must be positive")
    started = time.time()
    load_before = os.getloadavg()[0]
    py = python()
    bench.RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="puregrpc-helpers-bench-"))
    runs: dict[str, list[Record]] = {}
    try:
        for size in sizes:
            measured = measure_size(py, workdir, size, args.pairs, args.client_cores)
            for direction, pairs in measured.items():
                runs[f"{direction} {size // MIB} MiB"] = pairs
    finally:
        bench._kill_all()
        shutil.rmtree(workdir, ignore_errors=True)
    summaries = {name: summarise(pairs) for name, pairs in sorted(runs.items(), reverse=True)}
    meta = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "pairs": args.pairs,
        "client_cores": args.client_cores,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg()[0],
        "took_s": time.time() - started,
        "commit": git("rev-parse", "--short", "HEAD"),
    }
    text = "\n".join(report(summaries, meta))
    print("\n" + text)
    payload = {**meta, "summaries": summaries, "runs": runs}
    (bench.RESULTS / "streaming-helpers-latest.json").write_text(json.dumps(payload, indent=1))
    (bench.RESULTS / "streaming-helpers-latest.md").write_text(text + "\n")
    return 0 if all(s["ratio"] >= 0.8 for s in summaries.values()) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        bench._kill_all()
