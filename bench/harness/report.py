"""The report: medians over the repeats, the tables, and the targets of issue #6."""

from __future__ import annotations

import statistics

from .workloads import EXTRA, HEADLINE, TARGET_WORKLOADS


def median_results(runs: list[dict[str, dict]]) -> dict[str, dict]:
    """Per workload, the median of each numeric figure over the runs that succeeded."""
    out: dict[str, dict] = {}
    names = {name for run in runs for name in run}
    for name in names:
        good = [run[name] for run in runs if name in run and "error" not in run[name]]
        errors = [run[name]["error"] for run in runs if name in run and "error" in run[name]]
        if not good:
            out[name] = {"error": errors[0] if errors else "no result", "runs": 0}
            continue
        merged: dict[str, object] = {"runs": len(good)}
        for key, value in good[0].items():
            if isinstance(value, int | float):
                merged[key] = statistics.median(float(g[key]) for g in good if key in g)
            else:
                merged[key] = value
        if errors:
            merged["failed_runs"] = len(errors)
            merged["last_error"] = errors[-1]
        out[name] = merged
    return out


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100_000:
        return f"{value / 1000:,.0f}k"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def table(
    title: str, results: dict[str, dict[str, dict]], names: list[str], workloads: list[str]
) -> list[str]:
    lines = [f"## {title}", ""]
    header = "| workload | metric | " + " | ".join(names) + " |"
    lines += [header, "|" + "---|" * (len(names) + 2)]

    def value(impl: str, workload: str, key: str) -> float | None:
        record = results.get(impl, {}).get(workload, {})
        got = record.get(key)
        return float(got) if isinstance(got, int | float) else None

    for workload in workloads:
        key, unit, higher = HEADLINE[workload]
        cells = []
        for impl in names:
            v = value(impl, workload, key)
            if v is None:
                error = results.get(impl, {}).get(workload, {}).get("error")
                cells.append("FAIL" if error else "-")
            else:
                cells.append(fmt(v))
        lines.append(f"| {workload} | {unit} | " + " | ".join(cells) + " |")
        base = value("puregrpc", workload, key)
        ratio_cells = []
        for impl in names:
            v = value(impl, workload, key)
            ratio_cells.append(f"{v / base:.2f}x" if v and base else "-")
        better = "higher" if higher else "lower"
        lines.append(f"| | vs puregrpc ({better} is better) | " + " | ".join(ratio_cells) + " |")
        for extra_key, extra_unit in EXTRA.get(workload, []):
            extra = [fmt(value(impl, workload, extra_key)) for impl in names]
            if any(e != "-" for e in extra):
                lines.append(f"| | {extra_unit} | " + " | ".join(extra) + " |")
    lines.append("")
    return lines


#: A row whose change is below this (percent, positive = better) is flagged.


def check_targets(
    server: dict[str, dict[str, dict]], client: dict[str, dict[str, dict]], slow: dict[str, dict]
) -> list[tuple[str, bool | None, str]]:
    checks: list[tuple[str, bool | None, str]] = []

    def headline(results: dict, impl: str, workload: str) -> float | None:
        got = results.get(impl, {}).get(workload, {}).get(HEADLINE[workload][0])
        return float(got) if isinstance(got, int | float) else None

    for side, results in (("server", server), ("client", client)):
        for workload in TARGET_WORKLOADS:
            _, unit, higher = HEADLINE[workload]
            ours = headline(results, "puregrpc", workload)
            rivals = {
                impl: headline(results, impl, workload)
                for impl in ("grpclib", "grpclib-uvloop", "purerpc")
            }
            rivals = {k: v for k, v in rivals.items() if v is not None}
            if ours is None or not rivals:
                if workload in results.get("puregrpc", {}):
                    checks.append((f"{side} {workload}: 1.5x grpclib/purerpc", None, "no figure"))
                continue
            best_name, best = (max if higher else min)(rivals.items(), key=lambda kv: kv[1])
            ratio = ours / best if higher else best / ours
            checks.append(
                (
                    f"{side} {workload}: >= 1.5x the better of grpclib and purerpc",
                    ratio >= 1.5,
                    f"puregrpc {fmt(ours)} vs {best_name} {fmt(best)} {unit}: {ratio:.2f}x",
                )
            )
            raw = headline(results, "h2+trio", workload)
            if raw is not None:
                cost = raw / ours if higher else ours / raw
                checks.append(
                    (
                        f"{side} {workload}: within 1.25x of the h2 + trio baseline",
                        cost <= 1.25,
                        f"h2+trio {fmt(raw)} vs puregrpc {fmt(ours)} {unit}: "
                        f"baseline is {cost:.2f}x",
                    )
                )
    record = slow.get("puregrpc", {})
    if "rss_growth_mb" in record:
        checks.append(
            (
                "server RSS flat while a slow reader takes a long 64 KiB stream",
                record["rss_growth_mb"] < 16,
                f"RSS {record['rss_start_mb']:.1f} -> peak {record['rss_peak_mb']:.1f} MB "
                f"(+{record['rss_growth_mb']:.1f} MB) while {record['read_mb']:.1f} of "
                f"{record['stream_requested_mb']:.0f} MB were read in {record['seconds']:.0f} s",
            )
        )
    else:
        checks.append(("server RSS flat under a slow reader", None, str(record.get("error"))))
    return checks
