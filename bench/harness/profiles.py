"""cProfile profiles of the puregrpc server (and the h2 + trio baseline) under fixed h2load
runs, and their summary: own time by package, per call or message."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .env import REPO, RESULTS, py
from .procs import Server
from .workloads import LOAD_SPECS, Runner


def run_profiles(runner: Runner) -> dict[str, dict]:
    """cProfile puregrpc and the h2 + trio baseline under the same fixed h2load runs."""
    out: dict[str, dict] = {}
    servers = {
        "puregrpc": ("puregrpc_impl.py", "server"),
        "h2+trio": ("raw_h2trio.py", "server"),
    }
    # Fixed counts, so that the two profiles divide into a cost per call / message.
    counts = {"unary_c64": 10_000, "stream_64b": 60}
    for spec_name, calls in counts.items():
        spec = dataclasses.replace(next(s for s in LOAD_SPECS if s.name == spec_name), count=calls)
        units = calls * spec.messages
        for impl, (script, role) in servers.items():
            key = f"{impl}/{spec_name}"
            prof = RESULTS / f"profile-{impl.replace('+', '-')}-{spec_name}.prof"
            prof.unlink(missing_ok=True)
            server = Server(py("puregrpc", script, role, "--profile", str(prof)))
            try:
                runner.h2load_run(server, spec)
            except Exception as exc:
                out[key] = {"error": f"h2load under the profiler: {exc}"[:300]}
            finally:
                server.interrupt()
            if key in out:
                continue
            if prof.exists():
                out[key] = summarise_profile(prof, units)
                out[key]["file"] = str(prof.relative_to(REPO))
                out[key]["unit"] = "call" if spec.messages == 1 else "message"
            else:
                out[key] = {"error": "no profile written: " + " | ".join(server.output[-3:])}
    return out


PROFILE_GROUPS = [
    ("h2", "/h2/"),
    ("hpack", "/hpack/"),
    ("hyperframe", "/hyperframe/"),
    ("puregrpc.wire", "/puregrpc/wire/"),
    ("puregrpc.runtime", "/puregrpc/runtime/"),
    ("puregrpc.server", "/puregrpc/server/"),
    ("puregrpc.client", "/puregrpc/client/"),
    ("trio", "/trio/"),
    ("bench handlers", "/bench/impls/"),
]


def _group(filename: str) -> str:
    for name, marker in PROFILE_GROUPS:
        if marker in filename:
            return name
    if filename.startswith(("~", "<")):
        return "builtins (C: socket, select, bytes...)"
    return "other Python (stdlib: enum, logging, dataclasses...)"


def summarise_profile(path: Path, units: int) -> dict:
    """Own time by group (% and microseconds per call or message) and the top functions."""
    import pstats

    stats = pstats.Stats(str(path))
    total = stats.total_tt or 1e-9
    groups: dict[str, float] = {}
    rows = []
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        group = _group(filename)
        groups[group] = groups.get(group, 0.0) + tottime
        short = filename
        for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
            if marker in short:
                short = short.split(marker, 1)[1]
        rows.append(
            {
                "function": f"{short}:{line}({func})",
                "group": group,
                "calls": ncalls,
                "tottime_pct": 100 * tottime / total,
                "cumtime_pct": 100 * cumtime / total,
            }
        )
    rows.sort(key=lambda r: -r["tottime_pct"])
    puregrpc_rows = [r for r in rows if r["group"].startswith("puregrpc")]
    return {
        "total_seconds": total,
        "units": units,
        "us_per_unit": 1e6 * total / units,
        "groups_us_per_unit": {k: 1e6 * v / units for k, v in groups.items()},
        "groups_pct": {
            k: 100 * v / total for k, v in sorted(groups.items(), key=lambda kv: -kv[1])
        },
        "top": rows[:25],
        "top_puregrpc": puregrpc_rows[:15],
    }


def profile_lines(profiles: dict[str, dict]) -> list[str]:
    lines = ["## Server profiles (cProfile, own time, fixed h2load runs)", ""]
    for workload in ("unary_c64", "stream_64b"):
        ours = profiles.get(f"puregrpc/{workload}", {})
        base = profiles.get(f"h2+trio/{workload}", {})
        if "groups_us_per_unit" not in ours or "groups_us_per_unit" not in base:
            continue
        unit = ours["unit"]
        lines.append(f"{workload}: microseconds of CPU per {unit} under cProfile")
        lines.append(f"  {'group':<52} {'puregrpc':>9} {'h2+trio':>9}")
        names = sorted(
            set(ours["groups_us_per_unit"]) | set(base["groups_us_per_unit"]),
            key=lambda n: -ours["groups_us_per_unit"].get(n, 0.0),
        )
        for name in names:
            a = ours["groups_us_per_unit"].get(name, 0.0)
            b = base["groups_us_per_unit"].get(name, 0.0)
            lines.append(f"  {name:<52} {a:9.2f} {b:9.2f}")
        lines.append(f"  {'total':<52} {ours['us_per_unit']:9.2f} {base['us_per_unit']:9.2f}")
        lines.append("")
    for workload, summary in profiles.items():
        if "error" in summary:
            lines += [f"{workload}: {summary['error']}", ""]
            continue
        lines.append(f"### {workload} ({summary['file']})")
        lines.append("")
        lines.append(
            "groups: "
            + ", ".join(f"{name} {pct:.1f}%" for name, pct in summary["groups_pct"].items())
        )
        lines.append("")
        lines.append("top functions overall:")
        for row in summary["top"][:12]:
            lines.append(f"  {row['tottime_pct']:5.1f}%  {row['function']}  ({row['calls']} calls)")
        lines.append("top puregrpc functions:")
        for row in summary["top_puregrpc"][:10]:
            lines.append(
                f"  {row['tottime_pct']:5.1f}% own, {row['cumtime_pct']:5.1f}% cum  "
                f"{row['function']}  ({row['calls']} calls)"
            )
        lines.append("")
    return lines
