"""puregrpc's benchmark: one command, every implementation, one interleaved run.

    python3 bench/run.py [--quick] [--repeats N] [--only a,b] [--baseline REF]
                         [--no-clients] [--no-servers] [--no-profile] [--no-go] [--no-streaming]

(``make bench``; ``BENCH_QUICK=1 make bench`` for a short development run;
``--baseline HEAD~3 --only puregrpc --repeats 5`` adds the puregrpc of that
commit as a row of its own, measured in pairs with the working tree's, and a
before/after section: see bench/README.md.)

What it does, in order:

1. Installs what it needs: ``h2load`` (Debian nghttp2-client), one venv per
   implementation under ``bench/venvs/`` (purerpc pins h2 < 4, so nothing
   shares), and, when Debian's Go packages can be had, a grpc-go yardstick server.
2. Server side: every server runs pinned to core 0; h2load (C) or, for the
   ping-pong, a grpc-go client, pinned to core 1, sends every server the same
   request bytes. Before the load, a real client calls every method once and
   checks grpc-status 0 and the responses (h2load does not read trailers);
   after it, h2load's ``N 2xx`` must equal the requests it made.
3. Client side: every implementation's client, pinned to core 1, drives the
   same reference server (grpc-go when built, else grpcio sync) on core 0.
4. Repeats 2-3 (implementations in a rotated order each time) and reports
   medians: a table of absolute figures, each implementation's ratio to
   puregrpc, the targets of issue #6, and a JSON file in ``bench/results/``.
   With ``--baseline REF``, the working tree's puregrpc and REF's are measured
   in pairs instead (per workload, back to back, the order alternating per
   repeat; ``harness/paired.py``), and a before/after section reports, per row,
   the median and spread of the pairs' ratios of CPU per unit (primary) and
   throughput (secondary), rows worse by over 5% flagged.
5. A slow-reader test (server RSS while a client reads a long 64 KiB stream
   slowly) and cProfile profiles of the puregrpc server under h2load.

Standard library only: it runs under the system ``python3``. The pieces live in
``bench/harness/`` (setup, processes, workloads, the paired comparison,
profiles, the report); this file parses the options and runs them in order.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

# The harness package sits next to this file (sys.path[0] when run as a script, not
# always when imported, as streaming_transfer.py does); impls/ holds common.py.
sys.path.insert(0, str(Path(__file__).resolve().parent / "impls"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as c
from harness import paired
from harness.env import (
    BENCH,
    IMPLS,
    LOAD_CORE,
    REPO,
    RESULTS,
    SERVER_CORE,
    VENVS,
    Impl,
    ensure_baseline,
    ensure_go,
    ensure_h2load,
    ensure_venvs,
    implementations,
    log,
    working_tree_state,
)
from harness.procs import Server, _kill_all, run_pinned
from harness.profiles import profile_lines, run_profiles
from harness.report import check_targets, median_results, table
from harness.workloads import HEADLINE, Runner

#: What streaming_transfer.py uses of this module (``import run as bench``).
__all__ = [
    "BENCH",
    "IMPLS",
    "LOAD_CORE",
    "REPO",
    "RESULTS",
    "SERVER_CORE",
    "VENVS",
    "Server",
    "_kill_all",
    "ensure_venvs",
    "log",
    "main",
    "run_pinned",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", default=bool(os.environ.get("BENCH_QUICK")))
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated implementations to run (puregrpc and the baseline always run)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also measure the puregrpc of git REF (a row puregrpc@SHA, from its own\n"
        "tree and venv under bench/venvs/), in pairs with the working tree's: per\n"
        "workload back to back, the order alternating per repeat; report a\n"
        "before/after section (CPU per unit primary, throughput secondary)",
    )
    parser.add_argument(
        "--pair-slices",
        type=int,
        default=0,
        metavar="N",
        help="with --baseline: interleaved slices per side, workload and repeat\n"
        "(default: the h2load duration / 0.25 s: 4 quick, 8 full)",
    )
    parser.add_argument(
        "--freeze-heap",
        action="store_true",
        help="every Python server of the per-call workloads collects once and freezes its heap\n"
        "(gc.freeze) when it listens, as puregrpc.server.freeze_heap does: full GC passes\n"
        "then skip the startup objects (their stalls are the unary c=64 p99); peers get the\n"
        "same (not the streaming-transfer servers)",
    )
    parser.add_argument("--no-clients", action="store_true")
    parser.add_argument("--no-servers", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-go", action="store_true", help="skip the grpc-go yardstick")
    parser.add_argument(
        "--no-streaming", action="store_true", help="skip streaming_transfer.py (256 MiB files)"
    )
    args = parser.parse_args()
    if args.freeze_heap:
        os.environ["BENCH_FREEZE_HEAP"] = "1"  # read by impls/common.py:ready in each server
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.duration = 1 if args.quick else 2  # h2load seconds per workload (plus 1 s warm-up)
    args.scale = 0.3 if args.quick else 1.0  # client workload counts
    args.client_seconds = 3 if args.quick else 6
    args.slow_seconds = 3 if args.quick else 6
    return args


def cpu_steal() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs so far, from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal guest guest_nice: guest is in user.
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def main() -> int:
    args = parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    h2load = ensure_h2load()
    ensure_venvs()
    baseline = ensure_baseline(args.baseline) if args.baseline else None
    state = working_tree_state() if baseline else None
    go = None if args.no_go else ensure_go()
    uvloop = (
        subprocess.run(
            [str(VENVS / "grpclib" / "bin" / "python"), "-c", "import uvloop"], capture_output=True
        ).returncode
        == 0
    )
    every = implementations(go, uvloop, baseline)
    impls = every
    if args.only:
        wanted = set(args.only.split(",")) | {"puregrpc"}
        impls = [
            impl for impl in impls if impl.name in wanted or impl.name == "grpc-go" or impl.baseline
        ]
    # The paired rows (--baseline): measured by harness/paired.py, not in the rotation.
    pair: tuple[Impl, Impl] | None = None
    if baseline is not None:
        pair = (
            next(i for i in impls if i.name == "puregrpc"),
            next(i for i in impls if i.baseline),
        )
    rotated = [impl for impl in impls if pair is None or impl not in pair]
    if os.cpu_count() and os.cpu_count() < 2:
        log("warning: fewer than 2 cores, server and load generator share one")
    runner = Runner(args, h2load, go)
    started = time.time()
    load_before = os.getloadavg()
    steal_before = cpu_steal()
    server_runs: dict[str, list[dict]] = {impl.name: [] for impl in impls if impl.server}
    client_runs: dict[str, list[dict]] = {impl.name: [] for impl in impls if impl.client}
    firsts: dict[str, list[dict[str, str]]] = {"server": [], "client": []}
    reference = next((impl for impl in every if impl.name == "grpc-go"), None) or next(
        impl for impl in every if impl.name == "grpcio-sync"
    )
    slow: dict[str, dict] = {}
    profiles: dict[str, dict] = {}
    try:
        for repeat in range(args.repeats):
            step = f"repeat {repeat + 1}/{args.repeats}"
            shift = repeat % max(1, len(rotated))
            order = rotated[shift:] + rotated[:shift]
            if not args.no_servers:
                if pair is not None:
                    log(f"{step}: server side, {pair[0].name} / {pair[1].name} in pairs")
                    results, first = paired.server_side(runner, *pair, repeat)
                    for name, result in results.items():
                        server_runs[name].append(result)
                    firsts["server"].append(first)
                for impl in order:
                    if impl.server is None:
                        continue
                    log(f"{step}: server side, {impl.name}")
                    server_runs[impl.name].append(runner.server_side(impl))
            if not args.no_clients:
                ref = Server(reference.server)  # type: ignore[arg-type]
                try:
                    if pair is not None:
                        log(
                            f"{step}: client side, {pair[0].name} / {pair[1].name} in pairs "
                            f"-> {reference.name}"
                        )
                        results, first = paired.client_side(runner, *pair, ref.port, repeat)
                        for name, result in results.items():
                            client_runs[name].append(result)
                        firsts["client"].append(first)
                    for impl in order:
                        if impl.client is None:
                            continue
                        log(f"{step}: client side, {impl.name} -> {reference.name}")
                        client_runs[impl.name].append(runner.client_side(impl, ref.port))
                finally:
                    ref.stop()
        if not args.no_servers:
            for impl in impls:
                if impl.server is None or impl.baseline:
                    continue
                log(f"slow reader against {impl.name}")
                try:
                    slow[impl.name] = runner.slow_reader(impl)
                except Exception as exc:
                    slow[impl.name] = {"error": str(exc)[:300]}
        if not args.no_profile:
            log("profiling the puregrpc server (cProfile) under h2load")
            profiles = run_profiles(runner)
    finally:
        _kill_all()
        shutil.rmtree(runner.workdir, ignore_errors=True)
    steal_after = cpu_steal()
    steal_total = steal_after[1] - steal_before[1]
    steal_pct = 100 * (steal_after[0] - steal_before[0]) / steal_total if steal_total else 0.0

    server = {name: median_results(runs) for name, runs in server_runs.items() if runs}
    client = {name: median_results(runs) for name, runs in client_runs.items() if runs}
    names = [impl.name for impl in impls]
    lines = [
        f"# puregrpc benchmark, {datetime.datetime.now():%Y-%m-%d %H:%M}, "
        f"{'quick, ' if args.quick else ''}median of {args.repeats}",
        "",
        f"server on core {SERVER_CORE}, load (h2load / clients) on core {LOAD_CORE}; "
        f"h2load {args.duration} s per workload after 1 s warm-up (streams_100: 100 calls "
        f"at once); ping-pong driven by a grpcio-sync client (pingpong_go: by a grpc-go "
        f"client); client side against {reference.name}",
        "",
    ]
    if args.freeze_heap:
        lines += [
            "--freeze-heap: every Python server of the per-call workloads froze its heap "
            "(gc.collect + gc.freeze) when it listened",
            "",
        ]
    if pair is not None:
        lines += [
            f"{pair[0].name} and {pair[1].name}: measured in pairs, "
            f"{paired.slices_of(runner)} interleaved slices per side and workload (h2load: "
            f"{paired.WARM_UP_S:g} s warm-up, then counted runs of about {paired.SLICE_S:g} s); "
            "see the Before/after section",
            "",
        ]
    lines += [
        # Other work on the machine shows here and as server CPU well under 100%.
        f"load average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
        f"(the bench itself accounts for about 1-2; more means something else competed); "
        f"CPU steal (the hypervisor's share, /proc/stat) over the run: {steal_pct:.1f}%",
        "",
    ]
    if server:
        lines += table(
            "Server side (h2load drives each server)",
            server,
            [n for n in names if n in server],
            list(HEADLINE),
        )
        lines.append("load generator CPU (h2load % of its core, median) / server CPU %:")
        for name in server:
            cells = []
            for workload, record in server[name].items():
                if "h2load_cpu_pct" in record:
                    cells.append(
                        f"{workload} {record['h2load_cpu_pct']:.0f}/{record['server_cpu_pct']:.0f}"
                    )
            lines.append(f"  {name}: " + ", ".join(cells))
        lines.append("")
    if client:
        lines += table(
            f"Client side (each client drives {reference.name})",
            client,
            [n for n in names if n in client],
            [w for w in HEADLINE if w in c.CLIENT_WORKLOADS],
        )
    if slow:
        lines += ["## Slow reader: server RSS while a client reads a long 64 KiB stream slowly", ""]
        for name, record in slow.items():
            if "error" in record:
                lines.append(f"  {name}: FAIL {record['error']}")
            else:
                lines.append(
                    f"  {name}: RSS {record['rss_start_mb']:.1f} -> "
                    f"peak {record['rss_peak_mb']:.1f} MB "
                    f"(+{record['rss_growth_mb']:.1f} MB), read {record['read_mb']:.1f} of "
                    f"{record['stream_requested_mb']:.0f} MB in {record['seconds']:.0f} s"
                )
        lines.append("")
    comparison: dict[str, object] | None = None
    if baseline is not None and state is not None and pair is not None:
        runs = {"server": server_runs, "client": client_runs}
        rows = paired.comparison_rows(pair[0].name, pair[1].name, runs, firsts)
        lines += paired.comparison_lines(
            baseline, state, rows, args.repeats, reference.name, paired.slices_of(runner)
        )
        comparison = {
            "baseline": baseline.name,
            "ref": baseline.ref,
            "commit": baseline.sha,
            "subject": baseline.subject,
            "puregrpc": state,
            "method": "paired: per workload, interleaved slices (A B B A ...), the first "
            "alternating per repeat; a pair's figure sums its slices",
            "slices": paired.slices_of(runner),
            "malloc_tunables": paired.MALLOC_TUNABLES,
            "primary": "cpu_ratio (new / old CPU per unit; below 1 is better)",
            "secondary": "throughput_ratio (new / old throughput, old / new latency; above 1 "
            "is better)",
            "regression_pct": paired.REGRESSION_PCT,
            "first_of_pair": firsts,
            "rows": rows,
        }
    checks = check_targets(server, client, slow)
    lines += ["## Targets (issue #6)", ""]
    for what, ok, detail in checks:
        mark = "MET " if ok else ("MISS" if ok is False else "N/A ")
        lines.append(f"  [{mark}] {what}: {detail}")
    lines.append("")
    if profiles:
        lines += profile_lines(profiles)
        (RESULTS / "profiles.md").write_text("\n".join(profile_lines(profiles)) + "\n")
    errors = [
        f"  {side} {impl} {workload}: {record.get('error') or record.get('last_error')}"
        for side, results in (("server", server), ("client", client))
        for impl, per in results.items()
        for workload, record in per.items()
        if "error" in record or "last_error" in record
    ]
    if errors:
        lines += ["## Failures (reported, not hidden)", "", *errors, ""]
    lines.append(f"took {time.time() - started:.0f} s")
    report = "\n".join(lines)
    print("\n" + report)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    payload = {
        "date": stamp,
        "quick": args.quick,
        "repeats": args.repeats,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "cpu_steal_pct": steal_pct,
        },
        "reference_server": reference.name,
        "puregrpc": state,
        "baseline_comparison": comparison,
        "server_side": server,
        "client_side": client,
        "server_side_runs": server_runs,
        "client_side_runs": client_runs,
        "slow_reader": slow,
        "profiles": profiles,
        "targets": [{"target": w, "met": ok, "detail": d} for w, ok, d in checks],
    }
    if server or client:
        for name in (f"bench-{stamp}.json", "latest.json"):
            (RESULTS / name).write_text(json.dumps(payload, indent=1))
        (RESULTS / "latest.md").write_text(report + "\n")
    if server or client:
        log(f"results: {RESULTS.relative_to(REPO)}/bench-{stamp}.json and latest.md")
    if not args.no_streaming:
        # Its own process and report (results/streaming-latest.*): issue #8's file transfers.
        streaming = [sys.executable, str(BENCH / "streaming_transfer.py")]
        subprocess.run([*streaming, *(["--quick"] if args.quick else [])], check=False)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        _kill_all()
