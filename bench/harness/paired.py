"""``--baseline``: the working tree's puregrpc against an older commit's, measured in pairs.

Two whole suites run a few seconds apart differ by up to 30% per repeat on a shared
2-core VM, which hides a 5% regression. Measured causes: the core's own speed wanders
(a fixed piece of Python code takes 11% (sd) more or less CPU time from one 0.1 s to
the next, 4% over 2 s, steal or not: the host's other tenants), and two processes of
identical code differ for their whole life, by 20-30% on 64 KiB messages, through
glibc's malloc (its mmap threshold adapts to the process's history: one server took
55 page faults per MB, its twin 36). So with ``--baseline`` the two puregrpc rows are
not measured in the rotation of the others but in pairs:

- per workload, the two sides take turns in short slices (about ``SLICE_S`` each),
  A B B A A B B A..., the first alternating per repeat (and per workload), and each
  side's slices are summed: the core's wandering speed falls on both alike;
- server side: both servers run for the whole server side of a repeat and h2load
  drives one and then the other, a counted run (``-n``) per slice; client side: both
  clients run at once against the same reference server, but only one is ever
  running: each is stopped (SIGSTOP) as soon as it reports a run and resumed for its
  next one (``procs.SteppedProcess``), its stopped time taken off its own timing when
  that took it in (``procs.running_seconds``);
- both sides run with the same fixed malloc thresholds (``MALLOC_TUNABLES``) and the
  same hash seed (a new one each repeat), so that twin processes behave alike.

A pair is the unit of comparison: per row, the median over the repeats of the pair's
ratio, and the min / max of those ratios. Each side records the CPU time of the
process measured (the server's over its h2load runs; the client's over its runs) per
call, message or MB: it does not depend on how long a run took, nor on time the
hypervisor stole, so it is the primary signal; throughput (latency for ping-pong) is
secondary.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
from collections.abc import Callable

import common as c

from .env import Baseline, Impl, log
from .procs import Server, SteppedProcess, running_seconds
from .report import fmt
from .workloads import CPU_UNIT, HEADLINE, LOAD_SPECS, LoadSpec, Runner

#: A row whose CPU per unit is more than this many percent higher (primary), or whose
#: throughput is more than this many percent lower (secondary), is flagged.
REGRESSION_PCT = 5.0
#: Seconds of h2load per slice (its call count is set from the warm-up's rate).
SLICE_S = 0.25
#: Seconds of h2load before a paired workload's slices, per side, not measured.
WARM_UP_S = 0.5
#: Client workload sizes (``--scale``) for a slice of about SLICE_S at the rates of
#: 2026-12-03 on the 2-core VM (full runs take more slices, not longer ones).
CLIENT_SLICE_SCALE = {
    "unary_c1": 0.25,  # 500 calls
    "unary_c64": 0.17,  # 1,088 calls
    "stream_64b": 0.67,  # 20 calls of 1,000 x 64 B
    "stream_64k": 0.6,  # 18 calls of 100 x 64 KiB
    "cstream_64k": 2.5,  # 100 calls of 16 x 64 KiB
    "pingpong": 0.5,  # 1,000 round trips
}
#: Round trips per server-side ping-pong slice (about SLICE_S).
PINGPONG_SLICE = 600
#: glibc malloc with fixed thresholds (mmap above 4 MiB only, heap never trimmed below
#: 1 GiB) instead of the adaptive ones, whose state differs from process to process.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=1073741824"


def pair_env(repeat: int) -> dict[str, str]:
    """The environment of both sides of a pair in REPEAT."""
    return dict(os.environ, GLIBC_TUNABLES=MALLOC_TUNABLES, PYTHONHASHSEED=str(repeat + 1))


def slices_of(runner: Runner) -> int:
    """Slices per side and workload: ``--pair-slices``, else ``--duration`` / SLICE_S."""
    return runner.args.pair_slices or max(2, round(runner.args.duration / SLICE_S))


def interleave(order: tuple[str, str], slices: int) -> list[str]:
    """A B B A A B B A ...: each side SLICES times, neither ahead by more than one."""
    turns: list[str] = []
    for i in range(slices):
        turns += order if i % 2 == 0 else order[::-1]
    return turns


def per_unit(result: dict, cpu: float, units: float) -> dict:
    if not units:
        raise RuntimeError("no calls completed: no CPU per unit")
    return {**result, "cpu_units": units, "cpu_us_per_unit": 1e6 * cpu / units}


def first_of(new: Impl, old: Impl, repeat: int, index: int) -> tuple[Impl, Impl]:
    """The order of a pair: new first on even (repeat + workload index), old first on odd."""
    return (new, old) if (repeat + index) % 2 == 0 else (old, new)


# ------------------------------------------------------------------ server side


def h2load_units(spec: LoadSpec, calls: float) -> float:
    unit = CPU_UNIT[spec.name]
    if unit == "call":
        return calls
    if unit == "msg":
        return calls * spec.messages
    return calls * spec.messages * spec.size / 1e6  # MB


def pair_h2load(
    runner: Runner, servers: dict[str, Server], spec: LoadSpec, order: tuple[str, str]
) -> dict[str, dict]:
    """One workload on both servers: a warm-up each, then interleaved counted slices."""
    counts = {}
    for name in order:
        if spec.count:
            runner.h2load_run(servers[name], spec)
            counts[name] = spec.count
        else:
            warm = runner.h2load_run(servers[name], spec, duration=WARM_UP_S, warm_up=0)
            floor = 4 * spec.clients * spec.streams
            counts[name] = max(floor, round(warm["calls_per_s"] * SLICE_S))
    runs: dict[str, list[dict]] = {name: [] for name in order}
    for name in interleave(order, slices_of(runner)):
        counted = dataclasses.replace(spec, count=counts[name])
        runs[name].append(runner.h2load_run(servers[name], counted, keep_latencies=spec.latency))
    out = {}
    for name, slices in runs.items():
        calls = sum(r["calls_measured"] for r in slices)
        seconds = sum(r["calls_measured"] / r["calls_per_s"] for r in slices)  # h2load's own
        wall = sum(r["wall_s"] for r in slices)
        cpu = sum(r["server_cpu_s"] for r in slices)
        rate = calls / seconds
        result = {
            "calls_per_s": rate,
            "messages_per_s": rate * spec.messages,
            "mb_per_s": rate * spec.messages * spec.size / 1e6,
            "calls_measured": calls,
            "h2load_cpu_pct": 100 * sum(r["h2load_cpu_s"] for r in slices) / wall,
            "server_cpu_pct": 100 * cpu / wall,
            "server_cpu_s": cpu,
            "server_rss_peak_mb": max(r["server_rss_peak_mb"] for r in slices),
            "slices": len(slices),
            "slice_cpu_us_per_unit": [
                1e6 * r["server_cpu_s"] / h2load_units(spec, r["calls_measured"]) for r in slices
            ],
        }
        if spec.latency:
            latencies = sorted(v for r in slices for v in r.pop("latencies_s"))
            result["p50_us"] = c.percentile(latencies, 0.5) * 1e6
            result["p99_us"] = c.percentile(latencies, 0.99) * 1e6
        out[name] = per_unit(result, cpu, h2load_units(spec, calls))
    return out


def pair_pingpong(
    runner: Runner, servers: dict[str, Server], go: bool, order: tuple[str, str]
) -> dict[str, dict]:
    """Ping-pong on both servers: a short warm-up each, then interleaved runs of the
    driving client (a process per run: the server is idle while it starts)."""
    slices, count = slices_of(runner), PINGPONG_SLICE
    for name in order:
        runner.pingpong_run(servers[name], go=go, count=100)
    runs: dict[str, list[dict]] = {name: [] for name in order}
    for name in interleave(order, slices):
        server = servers[name]
        before = server.cpu_seconds_precise()
        result = runner.pingpong_run(server, go=go, count=count)
        runs[name].append({**result, "server_cpu_s": server.cpu_seconds_precise() - before})
    out = {}
    for name, slices_run in runs.items():
        trips = sum(r["round_trips"] for r in slices_run)
        cpu = sum(r["server_cpu_s"] for r in slices_run)
        result = {
            "round_trips": trips,
            # The drivers report percentiles only: the median of the slices' own.
            "p50_us": statistics.median(r["p50_us"] for r in slices_run),
            "p99_us": statistics.median(r["p99_us"] for r in slices_run),
            "driver": slices_run[0]["driver"],
            "server_cpu_s": cpu,
            "slices": len(slices_run),
            "slice_cpu_us_per_unit": [
                1e6 * r["server_cpu_s"] / r["round_trips"] for r in slices_run
            ],
        }
        out[name] = per_unit(result, cpu, trips)
    return out


def server_side(
    runner: Runner, new: Impl, old: Impl, repeat: int
) -> tuple[dict[str, dict[str, dict]], dict[str, str]]:
    """Both servers up for the whole server side; per workload, interleaved slices.
    Returns (results by implementation, then workload; the first of each pair)."""
    results: dict[str, dict[str, dict]] = {new.name: {}, old.name: {}}
    firsts: dict[str, str] = {}
    servers: dict[str, Server] = {}

    def fail(name: str, error: str) -> None:
        for workload in HEADLINE:
            results[name].setdefault(workload, {"error": error[:400]})
        if name in servers:
            servers.pop(name).stop()

    try:
        for impl in (new, old):
            assert impl.server is not None
            try:
                servers[impl.name] = Server(impl.server, env=pair_env(repeat))
            except Exception as exc:
                fail(impl.name, str(exc))
        for name, server in list(servers.items()):
            problem = runner.verify(server.port)
            if problem is not None:
                log(f"  {name}: verification failed: {problem}")
                fail(name, f"verification: {problem}")
        steps: list[tuple[str, Callable[[tuple[str, str]], dict[str, dict]]]] = [
            (spec.name, lambda order, spec=spec: pair_h2load(runner, servers, spec, order))
            for spec in LOAD_SPECS
        ]
        steps.append(("pingpong", lambda order: pair_pingpong(runner, servers, False, order)))
        if runner.go is not None:
            steps.append(("pingpong_go", lambda order: pair_pingpong(runner, servers, True, order)))
        for index, (workload, step) in enumerate(steps):
            first, second = first_of(new, old, repeat, index)
            firsts[workload] = first.name
            if len(servers) < 2:
                continue  # one side failed: nothing to pair
            try:
                for name, result in step((first.name, second.name)).items():
                    results[name][workload] = result
            except Exception as exc:
                for name in results:
                    results[name][workload] = {"error": str(exc)[:400]}
            for name, server in list(servers.items()):
                if server.proc.poll() is not None:
                    fail(name, "server died: " + " | ".join(server.output[-5:]))
        # grpc-status 0 again after the load: the servers are still well.
        for name, server in servers.items():
            problem = runner.verify(server.port)
            if problem is not None:
                results[name]["after_load_check"] = {"error": problem}
    finally:
        for server in servers.values():
            server.stop()
    for name in results:
        for workload in HEADLINE:
            results[name].setdefault(workload, {"error": "the other side of the pair failed"})
    if runner.go is None:
        for name in results:
            results[name].pop("pingpong_go", None)
    return results, firsts


# ------------------------------------------------------------------ client side


def client_units(workload: str, result: dict) -> float:
    unit = CPU_UNIT[workload]
    if unit == "call":
        return result["calls"]
    if unit == "msg":
        return result["messages"]
    if unit == "MB":
        return result["mb_per_s"] * result["elapsed"]
    return result["round_trips"]


def pair_client(
    runner: Runner, impls: tuple[Impl, Impl], port: int, workload: str, repeat: int
) -> dict[str, dict]:
    """Both clients up at once, taking turns: each runs WORKLOAD once to warm up (imports,
    connection, first calls) and then once per slice, stopped between runs."""
    slices = slices_of(runner)
    procs: dict[str, SteppedProcess] = {}
    runs: dict[str, list[dict]] = {impl.name: [] for impl in impls}

    def result_of(line: str) -> dict:
        record = json.loads(line[len("RESULT ") :])
        if record["error"] or not record["result"]:
            raise RuntimeError(f"{workload}: {record['error'] or 'no result'}")
        return record["result"]

    try:
        for impl in impls:
            assert impl.client is not None
            argv = [
                *impl.client,
                "127.0.0.1",
                str(port),
                "--workloads",
                ",".join([workload] * (1 + slices)),
                "--scale",
                str(CLIENT_SLICE_SCALE.get(workload, runner.args.scale)),
                # Its own time limit counts the time it is stopped: let the counts rule.
                "--seconds",
                "3600",
            ]
            procs[impl.name] = SteppedProcess(argv, env=pair_env(repeat))
            result_of(procs[impl.name].step()[0])  # the warm-up
        for name in interleave((impls[0].name, impls[1].name), slices):
            line, cpu, stopped, since_resume = procs[name].step()
            result = result_of(line)
            running = running_seconds(result["elapsed"], stopped, since_resume)
            if running <= 0:
                raise RuntimeError(
                    f"{workload}: ran {result['elapsed']:.3f} s by its clock, stopped "
                    f"{stopped:.3f} s, {since_resume:.3f} s since resumed"
                )
            runs[name].append(
                {**result, "running_s": running, "stopped_s": stopped, "client_cpu_s": cpu}
            )
    finally:
        for proc in procs.values():
            proc.stop()
    out = {}
    for name, slices_run in runs.items():
        seconds = sum(r["running_s"] for r in slices_run)
        cpu = sum(r["client_cpu_s"] for r in slices_run)
        units = sum(client_units(workload, r) for r in slices_run)
        result: dict[str, object] = {"elapsed": seconds, "slices": len(slices_run)}
        for key in ("calls", "messages", "round_trips"):
            if key in slices_run[0]:
                result[key] = sum(r[key] for r in slices_run)
        for key in ("calls_per_s", "messages_per_s", "mb_per_s"):
            if key in slices_run[0]:
                result[key] = sum(r[key] * r["elapsed"] for r in slices_run) / seconds
        for key in ("p50_us", "p99_us"):
            if key in slices_run[0]:
                result[key] = statistics.median(r[key] for r in slices_run)
        result["client_cpu_s"] = cpu
        result["slice_cpu_us_per_unit"] = [
            1e6 * r["client_cpu_s"] / client_units(workload, r) for r in slices_run
        ]
        out[name] = per_unit(result, cpu, units)
    return out


def client_side(
    runner: Runner, new: Impl, old: Impl, port: int, repeat: int
) -> tuple[dict[str, dict[str, dict]], dict[str, str]]:
    """Per workload, the two clients in interleaved slices against the same server."""
    results: dict[str, dict[str, dict]] = {new.name: {}, old.name: {}}
    firsts: dict[str, str] = {}
    for index, workload in enumerate(c.CLIENT_WORKLOADS):
        order = first_of(new, old, repeat, index)
        firsts[workload] = order[0].name
        try:
            for name, result in pair_client(runner, order, port, workload, repeat).items():
                results[name][workload] = result
        except Exception as exc:
            for name in results:
                results[name][workload] = {"error": str(exc)[:400]}
    return results, firsts


# ------------------------------------------------------------------ comparison


def _number(record: dict | None, key: str) -> float | None:
    value = (record or {}).get(key)
    return float(value) if isinstance(value, int | float) and value else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def comparison_rows(
    new: str,
    old: str,
    runs: dict[str, dict[str, list[dict]]],
    firsts: dict[str, list[dict[str, str]]],
) -> list[dict]:
    """One row per (side, workload) either measured, from the pairs of each repeat.

    ``cpu_ratio`` = new / old CPU per unit (below 1: the new code uses less CPU);
    ``throughput_ratio`` = new / old throughput, or old / new latency (above 1: better)."""
    rows = []
    for side, side_runs in runs.items():
        ours, theirs = side_runs.get(new, []), side_runs.get(old, [])
        for workload, (key, unit, higher) in HEADLINE.items():
            pairs = []
            for repeat, (a_run, b_run) in enumerate(zip(ours, theirs, strict=False)):
                a, b = a_run.get(workload), b_run.get(workload)
                if a is None and b is None:
                    continue
                orders = firsts.get(side, [])
                pair: dict[str, object] = {
                    "repeat": repeat + 1,
                    "first": orders[repeat].get(workload) if repeat < len(orders) else None,
                    new: _number(a, key),
                    old: _number(b, key),
                    f"{new}_cpu_us": _number(a, "cpu_us_per_unit"),
                    f"{old}_cpu_us": _number(b, "cpu_us_per_unit"),
                }
                x, y = _number(a, key), _number(b, key)
                if x and y:
                    pair["throughput_ratio"] = x / y if higher else y / x
                x, y = _number(a, "cpu_us_per_unit"), _number(b, "cpu_us_per_unit")
                if x and y:
                    pair["cpu_ratio"] = x / y
                errors = [r["error"] for r in (a, b) if r and "error" in r]
                if errors:
                    pair["error"] = errors[0]
                pairs.append(pair)
            if not pairs:
                continue
            cpu = [p["cpu_ratio"] for p in pairs if "cpu_ratio" in p]
            speed = [p["throughput_ratio"] for p in pairs if "throughput_ratio" in p]
            cpu_median, speed_median = _median(cpu), _median(speed)  # type: ignore[arg-type]
            cpu_pct = None if cpu_median is None else 100 * cpu_median - 100
            speed_pct = None if speed_median is None else 100 * speed_median - 100
            row = {
                "side": side,
                "workload": workload,
                "metric": key,
                "unit": unit,
                "higher_is_better": higher,
                "cpu_unit": CPU_UNIT[workload],
                new: _median([p[new] for p in pairs if p[new]]),  # type: ignore[misc]
                old: _median([p[old] for p in pairs if p[old]]),  # type: ignore[misc]
                f"{new}_cpu_us": _median([p[f"{new}_cpu_us"] for p in pairs if p[f"{new}_cpu_us"]]),  # type: ignore[misc]
                f"{old}_cpu_us": _median([p[f"{old}_cpu_us"] for p in pairs if p[f"{old}_cpu_us"]]),  # type: ignore[misc]
                "pairs_compared": len(cpu),
                "cpu_ratio_median": cpu_median,
                "cpu_ratio_min": min(cpu, default=None),
                "cpu_ratio_max": max(cpu, default=None),
                "cpu_change_pct": cpu_pct,
                "throughput_ratio_median": speed_median,
                "throughput_ratio_min": min(speed, default=None),
                "throughput_ratio_max": max(speed, default=None),
                "throughput_change_pct": speed_pct,
                "cpu_regression": None if cpu_pct is None else cpu_pct > REGRESSION_PCT,
                "throughput_regression": None if speed_pct is None else speed_pct < -REGRESSION_PCT,
                "pairs": pairs,
            }
            rows.append(row)
    return rows


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{100 * ratio - 100:+.1f}%"


def _spread(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    return f" [{100 * low - 100:+.0f}, {100 * high - 100:+.0f}]"


def comparison_lines(
    baseline: Baseline,
    state: dict[str, object],
    rows: list[dict],
    repeats: int,
    reference: str,
    slices: int,
) -> list[str]:
    new, old = "puregrpc", baseline.name
    uncommitted = state["uncommitted"]
    assert isinstance(uncommitted, list)
    tree = f"the working tree at {state['head']}"
    if uncommitted:
        shown = ", ".join(uncommitted[:6]) + (", ..." if len(uncommitted) > 6 else "")
        tree += f" with {len(uncommitted)} uncommitted change(s): {shown}"
    else:
        tree += " (no uncommitted changes to the library)"
    limit = f"{REGRESSION_PCT:.0f}%"
    lines = [
        f"## Before/after: puregrpc vs {old} (paired runs, same run)",
        "",
        f"puregrpc = {tree}; {old} = {baseline.ref} = {baseline.sha[:12]} "
        f'"{baseline.subject}", run by its own bench/impls/puregrpc_impl.py.',
        "",
        f"Pairs: per workload the two sides take turns in {slices} slices each (A B B A ...; "
        f"about {SLICE_S:g} s each; server: both servers running, a counted h2load run per "
        f"slice; client: both clients connected to {reference}, one stopped while the other "
        "runs), "
        "the first alternating per repeat, both with the same malloc thresholds and hash "
        "seed. A pair's figure: its slices summed per side. Each change below: the median "
        f"over the {repeats} pair(s) of the pair's own ratio, [min, max] of those ratios.",
        "",
        "PRIMARY: CPU per unit (server: the server's CPU time over its h2load runs / the "
        "calls, messages or MB completed; client: the client's CPU over its runs / their "
        "units), new / old - 1, so + is MORE CPU (worse). Primary because it is the cost "
        "itself: it does not depend on how long a run took (waiting on the peer or the load "
        "generator) nor on time the hypervisor stole. It is not steadier than throughput "
        "where the server is CPU-bound: the noise left is the core's own speed, which moves "
        "both alike (noise floor: bench/README.md). Secondary: throughput (ping-pong: p50 "
        f"latency), + is better. Flagged: median CPU more than {limit} worse (primary); "
        f"median throughput more than {limit} worse (secondary); with how many pairs agree.",
        "",
        f"| side | workload | CPU per | {new} us | {old} us | CPU change [min, max] "
        f"| metric | {new} | {old} | throughput change [min, max] | |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        flags = []
        pairs = row["pairs"]
        if row["cpu_regression"]:
            agree = sum(1 for p in pairs if p.get("cpu_ratio", 0) > 1)
            flags.append(f"**CPU WORSE > {limit}** ({agree}/{row['pairs_compared']} pairs worse)")
        if row["throughput_regression"]:
            agree = sum(1 for p in pairs if p.get("throughput_ratio", 2) < 1)
            flags.append(f"slower > {limit} (secondary; {agree}/{len(pairs)} pairs slower)")
        if row["cpu_ratio_median"] is None or row["throughput_ratio_median"] is None:
            flags.append("FAIL")
        cpu = _pct(row["cpu_ratio_median"]) + _spread(row["cpu_ratio_min"], row["cpu_ratio_max"])
        speed = _pct(row["throughput_ratio_median"]) + _spread(
            row["throughput_ratio_min"], row["throughput_ratio_max"]
        )
        lines.append(
            f"| {row['side']} | {row['workload']} | {row['cpu_unit']} "
            f"| {fmt(row[f'{new}_cpu_us'])} | {fmt(row[f'{old}_cpu_us'])} | {cpu} "
            f"| {row['unit']} | {fmt(row[new])} | {fmt(row[old])} | {speed} "
            f"| {', '.join(flags)} |"
        )
    compared = [r for r in rows if r["cpu_ratio_median"] is not None]
    worse = [f"{r['side']} {r['workload']}" for r in rows if r["cpu_regression"]]
    slower = [f"{r['side']} {r['workload']}" for r in rows if r["throughput_regression"]]
    missing = [f"{r['side']} {r['workload']}" for r in rows if r["cpu_ratio_median"] is None]
    lines.append("")
    if worse:
        lines.append(
            f"PRIMARY: {len(worse)} of {len(compared)} rows use more than {limit} more CPU "
            "per unit: " + ", ".join(worse)
        )
    elif compared:
        lines.append(
            f"PRIMARY: no row uses more than {limit} more CPU per unit ({len(compared)} compared)"
        )
    if slower:
        lines.append(f"secondary: slower by more than {limit}: " + ", ".join(slower))
    if missing:
        lines.append(
            f"{len(missing)} rows without a CPU figure on one side (see Failures): "
            + ", ".join(missing)
        )
    lines.append("")
    return lines
