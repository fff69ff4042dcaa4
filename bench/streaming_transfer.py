"""Streaming transfers: DownloadFile and UploadFile of a 256 MiB file (issue #8, "Speed").

    python3 bench/streaming_transfer.py [--quick] [--repeats N] [--no-profile]
    python3 bench/streaming_transfer.py --helpers [--pairs N] [--sizes 64,256] [--client-cores 1]

(run at the end of ``make bench``, or on its own; ``--quick``: 64 MiB, 1 repeat.
``--helpers``: the service's client helpers against a minimal client on the
puregrpc server, in pairs: ``transfer_helpers.py``, issue #14.)

Two servers of the streaming.v1 file RPCs, each measured with two clients in
the same run:

* servers: the real ``puregrpc_streaming`` server (``impls/puregrpc_streaming_server.py``
  runs ``serve()``), and the same two RPCs written on grpcio's sync server
  (``impls/grpcio_streaming_server.py``, stubs generated at run time with
  ``grpc_tools.protoc`` from ``proto/streaming/v1/streaming.proto``);
* clients: grpcio's blocking stub and puregrpc's generated stub
  (``impls/*_streaming_client.py``), doing the same work around the call.

Each (server, client) pair gets a fresh server process pinned to core 0 and
a client process pinned to core 1, which uploads the file (generated once,
random bytes) in 64 KiB chunks and then downloads it to a file; sha256 is
checked both ways. MB/s = bytes / the client's wall time of the call (1 MB =
10^6 bytes). While each transfer runs, the server's RSS is sampled at 20 Hz
(start and peak reported) along with the CPU time of each of its threads.
Pairs run in a rotated order per repeat; the tables show medians.

Then, unless ``--no-profile``: the puregrpc server under cProfile during one
upload and one download of the same file (by a grpcio client), summarised by
package; worker-thread CPU (hashing, disk) comes from ``/proc``, since cProfile
sees only the event-loop thread.

Writes ``bench/results/streaming-latest.{json,md}`` and the two profile dumps
``bench/results/profile-puregrpc-streaming-{upload,download}.prof``.
Standard library only: it runs under the system ``python3``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run as bench  # noqa: E402  (run.py: venvs, pinned processes, logging)

REPO = bench.REPO
IMPLS = bench.IMPLS
RESULTS = bench.RESULTS
log = bench.log

MIB = 1 << 20
#: A transfer whose server RSS grows more than this is not "flat" (an eighth
#: of the 256 MiB file: buffering the file, or a large part of it, shows).
FLAT_RSS_MB = 32.0
#: Seconds one client process may take (a 256 MiB transfer needs a few).
CLIENT_TIMEOUT = 180.0
#: Sampling period of the server's RSS and thread CPU.
SAMPLE_PERIOD = 0.05

#: One transfer's figures (or ``{"error": ...}``), as written to the JSON.
Record = dict[str, Any]

SERVERS = ("puregrpc", "grpcio-sync")
CLIENTS = ("grpcio", "puregrpc")
DIRECTIONS = ("upload", "download")


# ------------------------------------------------------------------ interpreters


def has_modules(python: Path, *modules: str) -> bool:
    code = "import " + ", ".join(modules)
    return subprocess.run([str(python), "-c", code], capture_output=True).returncode == 0


def interpreters() -> tuple[Path, Path]:
    """(python for the puregrpc sides, python with grpcio and grpcio-tools)."""
    bench.ensure_venvs()  # a no-op when `make bench` has made them
    puregrpc = bench.VENVS / "puregrpc" / "bin" / "python"
    # The bench venv installs only puregrpc's own dependencies; the project's
    # .venv (`make`, dev extras) has grpcio and grpcio-tools.
    for candidate in (puregrpc, REPO / ".venv" / "bin" / "python"):
        if candidate.exists() and has_modules(candidate, "grpc", "grpc_tools", "google.protobuf"):
            return puregrpc, candidate
    sys.exit(
        "grpcio and grpcio-tools are needed for the grpcio side: run `make` (creates .venv "
        "with the dev extras) or pip install grpcio grpcio-tools into bench/venvs/puregrpc"
    )


# ------------------------------------------------------------------ sampling


def _thread_ticks(pid: int) -> dict[int, int]:
    """utime + stime (clock ticks) of each thread of ``pid``."""
    out: dict[int, int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = int(fields[11]) + int(fields[12])
    return out


def _status_mb(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class ServerSampler:
    """In a thread, every 50 ms: the server's VmRSS and the CPU ticks of each thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss: list[float] = []
        self.start_ticks = _thread_ticks(pid)
        self.last_ticks = dict(self.start_ticks)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self.rss.append(_status_mb(self.pid, "VmRSS:"))
        # Keep the last figure of threads that have ended (trio's idle workers exit).
        self.last_ticks.update(_thread_ticks(self.pid))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(SAMPLE_PERIOD)

    def __enter__(self) -> ServerSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def cpu_split(self) -> tuple[float, float]:
        """CPU seconds of (the main thread, all other threads) while sampling."""
        tick = os.sysconf("SC_CLK_TCK")
        main = other = 0
        for tid, ticks in self.last_ticks.items():
            used = ticks - self.start_ticks.get(tid, 0)
            if tid == self.pid:
                main += used
            else:
                other += used
        return main / tick, other / tick


# ------------------------------------------------------------------ one pair


@dataclass(frozen=True)
class Setup:
    """What every measurement needs: interpreters, files, the work directory."""

    puregrpc_python: Path
    grpcio_python: Path
    stubs: Path
    workdir: Path
    source: Path
    source_sha256: str
    size: int


def server_argv(
    setup: Setup, server: str, data_dir: Path, profile: Path | None = None
) -> list[str]:
    """The argv of a server, before the port that ``bench.Server`` appends."""
    if server == "puregrpc":
        argv = [
            str(setup.puregrpc_python),
            str(IMPLS / "puregrpc_streaming_server.py"),
            "--data-dir",
            str(data_dir),
        ]
        return argv + (["--profile", str(profile)] if profile is not None else [])
    return [
        str(setup.grpcio_python),
        str(IMPLS / "grpcio_streaming_server.py"),
        "serve",
        "--stubs",
        str(setup.stubs),
        "--data-dir",
        str(data_dir),
    ]


def client_argv(setup: Setup, client: str) -> list[str]:
    """The argv of a client, before ``upload ...`` / ``download ...``."""
    if client == "puregrpc":
        return [str(setup.puregrpc_python), str(IMPLS / "puregrpc_streaming_client.py")]
    return [
        str(setup.grpcio_python),
        str(IMPLS / "grpcio_streaming_client.py"),
        "--stubs",
        str(setup.stubs),
    ]


def transfer(server: bench.Server, argv: list[str]) -> Record:
    """Run one client process (core 1) against ``server``; its result plus server figures."""
    cpu_before = server.cpu_seconds()
    with ServerSampler(server.pid) as sampler:
        code, output, _, _ = bench.run_pinned(argv, timeout=CLIENT_TIMEOUT)
    if server.proc.poll() is not None:
        raise RuntimeError("server died: " + " | ".join(server.output[-5:]))
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    if code != 0 or not lines:
        raise RuntimeError(f"client exited {code}: {output.strip()[-400:]}")
    result = json.loads(lines[-1][7:])
    seconds = result["seconds"]
    main_cpu, other_cpu = sampler.cpu_split()
    return {
        "mb_per_s": result["bytes"] / 1e6 / seconds,
        "seconds": seconds,
        "bytes": result["bytes"],
        "sha256": result["sha256"],
        "file_id": result.get("file_id", ""),
        "client_cpu_pct": 100 * result["cpu_seconds"] / seconds,
        # The server idles while the client process starts: divide by the call's time.
        "server_cpu_pct": 100 * (server.cpu_seconds() - cpu_before) / seconds,
        "server_main_thread_cpu_s": main_cpu,
        "server_other_threads_cpu_s": other_cpu,
        "server_rss_start_mb": sampler.rss[0],
        "server_rss_peak_mb": max(sampler.rss),
        "server_rss_growth_mb": max(sampler.rss) - sampler.rss[0],
        "server_vmhwm_mb": _status_mb(server.pid, "VmHWM:"),
    }


def measure_pair(setup: Setup, server_name: str, client_name: str, tag: str) -> dict[str, Record]:
    """Upload then download with a fresh server; per direction, figures or an error."""
    data_dir = setup.workdir / f"data-{tag}"
    dest = setup.workdir / f"download-{tag}.bin"
    out: dict[str, Record] = {}
    try:
        server = bench.Server(server_argv(setup, server_name, data_dir))
    except Exception as exc:
        return {d: {"error": f"server did not start: {exc}"[:400]} for d in DIRECTIONS}
    try:
        client = client_argv(setup, client_name)
        try:
            up = transfer(
                server, [*client, "upload", "127.0.0.1", str(server.port), str(setup.source)]
            )
            if up["bytes"] != setup.size or up["sha256"] != setup.source_sha256:
                raise RuntimeError(f"upload: {up['bytes']} bytes, sha256 {up['sha256']}")
            out["upload"] = up
        except Exception as exc:
            return {d: {"error": f"upload: {exc}"[:400]} for d in DIRECTIONS}
        try:
            argv = [*client, "download", "127.0.0.1", str(server.port), up["file_id"], str(dest)]
            down = transfer(server, argv)
            if down["sha256"] != setup.source_sha256 or dest.stat().st_size != setup.size:
                raise RuntimeError(f"download: sha256 {down['sha256']} differs from the source")
            out["download"] = down
        except Exception as exc:
            out["download"] = {"error": f"download: {exc}"[:400]}
    finally:
        server.stop()
        dest.unlink(missing_ok=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    return out


# ------------------------------------------------------------------ profile

#: (group, prefixes of the path relative to site-packages, the repo or the stdlib);
#: C functions are matched by their description (``<method 'send' of '_socket.socket'...>``).
PROFILE_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("h2/hpack/hyperframe", ("h2/", "hpack/", "hyperframe/")),
    ("puregrpc.wire", ("puregrpc/wire/",)),
    ("puregrpc.runtime/server", ("puregrpc/runtime/", "puregrpc/server/")),
    ("puregrpc (other)", ("puregrpc/",)),
    ("puregrpc_streaming", ("puregrpc_streaming/",)),
    ("trio", ("trio/", "outcome/", "sniffio/")),
    (
        "protobuf",
        (
            "google/protobuf/",
            "<method 'SerializeToString",
            "<built-in method FromString",
            "<method 'ParseFromString",
        ),
    ),
    (
        "hashlib/os I/O",
        (
            "hashlib.py",
            "<built-in method _hashlib",
            "<method 'update' of '_hashlib",
            "<method 'read' of '_io.",
            "<method 'write' of '_io.",
            "<built-in method posix.",
        ),
    ),
    ("socket send/recv", ("<method 'send' of '_socket", "<method 'recv", "<method 'sendall")),
    ("epoll", ("<method 'poll' of 'select.epoll",)),
    (
        "thread hand-off (threading, locks)",
        (
            "threading.py",
            "queue.py",
            "<method 'release' of '_thread",
            "<method 'acquire' of '_thread",
            "<built-in method _thread.",
        ),
    ),
]


def short_path(filename: str) -> str:
    """``filename`` relative to site-packages, the repository or the standard library."""
    for marker in ("site-packages/", str(REPO) + "/", "lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def profile_group(filename: str, function: str) -> str:
    """The package a cProfile entry belongs to (builtins by their C type's module)."""
    builtin = filename.startswith(("~", "<"))
    where = function if builtin else short_path(filename)
    for name, prefixes in PROFILE_GROUPS:
        if where.startswith(prefixes):
            return name
    return "other builtins (C)" if builtin else "other stdlib (enum, logging, ...)"


def summarise_profile(path: Path, size: int) -> Record:
    """Own time by group and the top functions of one cProfile dump."""
    import pstats

    stats = pstats.Stats(str(path))
    total = stats.total_tt or 1e-9  # type: ignore[attr-defined]
    groups: dict[str, float] = {}
    rows = []
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        group = profile_group(filename, func)
        groups[group] = groups.get(group, 0.0) + tottime
        short = short_path(filename)
        rows.append(
            {
                "function": f"{short}:{line}({func})" if line else func,
                "group": group,
                "calls": ncalls,
                "tottime_s": tottime,
                "tottime_pct": 100 * tottime / total,
                "cumtime_pct": 100 * cumtime / total,
            }
        )
    rows.sort(key=lambda r: -r["tottime_s"])
    chunks = max(size // (64 * 1024), 1)
    return {
        "total_seconds": total,
        "us_per_64k_chunk": 1e6 * total / chunks,
        "groups_pct": {
            k: 100 * v / total for k, v in sorted(groups.items(), key=lambda kv: -kv[1])
        },
        "groups_us_per_chunk": {k: 1e6 * v / chunks for k, v in groups.items()},
        "top": rows[:20],
    }


def _signal_segment(server: bench.Server, path: Path) -> None:
    """Ask the profiled server to write its current segment to ``path``; wait for it."""
    os.kill(server.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 20
    last = -1
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else -1
        if size > 0 and size == last:
            return
        last = size
        time.sleep(0.2)
    raise RuntimeError(f"the profiled server wrote no {path.name}")


def profile_puregrpc(setup: Setup) -> dict[str, Record]:
    """cProfile the puregrpc server during one upload and one download (grpcio client)."""
    data_dir = setup.workdir / "data-profile"
    prefix = setup.workdir / "streaming"
    dest = setup.workdir / "download-profile.bin"
    out: dict[str, Record] = {}
    server = bench.Server(server_argv(setup, "puregrpc", data_dir, profile=prefix))
    try:
        _signal_segment(server, Path(f"{prefix}.0.prof"))  # start-up, dropped
        client = client_argv(setup, "grpcio")
        file_id = ""
        for number, direction in enumerate(DIRECTIONS, start=1):
            if direction == "upload":
                argv = [*client, "upload", "127.0.0.1", str(server.port), str(setup.source)]
            else:
                argv = [*client, "download", "127.0.0.1", str(server.port), file_id, str(dest)]
            figures = transfer(server, argv)
            if figures["sha256"] != setup.source_sha256:
                raise RuntimeError(f"{direction} under the profiler: wrong sha256")
            file_id = figures["file_id"] or file_id
            segment = Path(f"{prefix}.{number}.prof")
            _signal_segment(server, segment)
            kept = RESULTS / f"profile-puregrpc-streaming-{direction}.prof"
            shutil.copyfile(segment, kept)
            summary = summarise_profile(segment, setup.size)
            summary.update(
                file=str(kept.relative_to(REPO)),
                mb_per_s_profiled=figures["mb_per_s"],
                event_loop_cpu_s=figures["server_main_thread_cpu_s"],
                worker_threads_cpu_s=figures["server_other_threads_cpu_s"],
            )
            out[direction] = summary
    except Exception as exc:
        out.setdefault("error", {"error": str(exc)[:400]})
    finally:
        server.stop()
        dest.unlink(missing_ok=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    return out


# ------------------------------------------------------------------ reporting


def median_of(runs: list[Record]) -> Record:
    """Median of every numeric figure over the runs without an error."""
    good = [run for run in runs if "error" not in run]
    errors = [run["error"] for run in runs if "error" in run]
    if not good:
        return {"error": errors[0] if errors else "no run", "runs": 0}
    merged: dict[str, object] = {"runs": len(good)}
    for key, value in good[0].items():
        if isinstance(value, int | float):
            merged[key] = statistics.median(float(run[key]) for run in good)
    if errors:
        merged["failed_runs"] = len(errors)
        merged["last_error"] = errors[-1]
    return merged


def fmt(value: object, digits: int = 0) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else "-"


def ratio(a: Record, b: Record, key: str = "mb_per_s") -> float | None:
    x, y = a.get(key), b.get(key)
    return x / y if isinstance(x, float) and isinstance(y, float) and y else None


def report(
    medians: dict[str, dict[str, Record]], profiles: dict[str, Record], meta: Record
) -> tuple[list[str], list[Record]]:
    """The markdown report, and the target checks."""
    size_mib = meta["size"] // MIB
    lines = [
        f"# Streaming transfers: {size_mib} MiB UploadFile / DownloadFile, "
        f"{meta['date']}, {'quick, ' if meta['quick'] else ''}median of {meta['repeats']}",
        "",
        f"Server on core {bench.SERVER_CORE}, client on core {bench.LOAD_CORE}, 64 KiB chunks, "
        "sha256 checked both ways; a fresh server per pair; MB/s = 10^6 bytes/s of the "
        "client's call time (uploads include the server's fsync). RSS: server VmRSS at "
        "the start of the transfer -> peak (sampled every 50 ms). CPU %: of the call's "
        "wall time (server: all threads, on one core). Server CPU s: the main thread "
        "(puregrpc: the event loop) + the other threads (puregrpc: trio's workers hashing "
        "and doing disk IO; grpcio: its pool and C-core threads).",
        "",
        f"Load average before / after: {meta['loadavg_before']:.2f} / {meta['loadavg_after']:.2f}. "
        f"This disk: writing the {size_mib} MiB source took {meta['source_write_s']:.2f} s, "
        f"its fsync {meta['source_fsync_s']:.2f} s; sha256 of it {meta['source_sha256_s']:.2f} s "
        f"({meta['size'] / 1e6 / meta['source_sha256_s']:,.0f} MB/s).",
        "",
        "| server | client | upload MB/s | download MB/s | upload RSS MB start -> peak "
        "| download RSS MB start -> peak | server CPU % up / down "
        "| server CPU s, main + other threads, up / down | client CPU % up / down |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for server in SERVERS:
        for client in CLIENTS:
            pair = medians.get(f"{server}/{client}", {})
            up, down = pair.get("upload", {}), pair.get("download", {})

            def cell(record: Record, key: str, digits: int = 0) -> str:
                if "error" in record:
                    return "FAIL"
                return fmt(record.get(key), digits)

            def rss(record: Record) -> str:
                if "error" in record:
                    return "FAIL"
                return (
                    f"{fmt(record.get('server_rss_start_mb'), 1)} -> "
                    f"{fmt(record.get('server_rss_peak_mb'), 1)}"
                )

            def split(record: Record) -> str:
                if "error" in record:
                    return "FAIL"
                return (
                    f"{fmt(record.get('server_main_thread_cpu_s'), 2)} + "
                    f"{fmt(record.get('server_other_threads_cpu_s'), 2)}"
                )

            lines.append(
                f"| {server} | {client} | {cell(up, 'mb_per_s')} | {cell(down, 'mb_per_s')} "
                f"| {rss(up)} | {rss(down)} "
                f"| {cell(up, 'server_cpu_pct')} / {cell(down, 'server_cpu_pct')} "
                f"| {split(up)} / {split(down)} "
                f"| {cell(up, 'client_cpu_pct')} / {cell(down, 'client_cpu_pct')} |"
            )
    lines.append("")
    lines.append("Ratios (MB/s), puregrpc / grpcio:")
    lines.append("")
    checks: list[Record] = []
    for client in CLIENTS:
        for direction in DIRECTIONS:
            ours = medians.get(f"puregrpc/{client}", {}).get(direction, {})
            theirs = medians.get(f"grpcio-sync/{client}", {}).get(direction, {})
            r = ratio(ours, theirs)
            lines.append(
                f"- server side, {client} client, {direction}: "
                + (f"{r:.2f}x" if r is not None else "-")
                + f" ({fmt(ours.get('mb_per_s'))} vs {fmt(theirs.get('mb_per_s'))} MB/s)"
            )
            checks.append(
                {
                    "target": f"puregrpc server >= grpcio-sync server MB/s ({direction}, "
                    f"{client} client)",
                    "met": None if r is None else r >= 1.0,
                    "detail": "no figure" if r is None else f"{r:.2f}x",
                }
            )
    for server in SERVERS:
        for direction in DIRECTIONS:
            ours = medians.get(f"{server}/puregrpc", {}).get(direction, {})
            theirs = medians.get(f"{server}/grpcio", {}).get(direction, {})
            r = ratio(ours, theirs)
            lines.append(
                f"- client side, against the {server} server, {direction}: "
                + (f"{r:.2f}x" if r is not None else "-")
                + f" ({fmt(ours.get('mb_per_s'))} vs {fmt(theirs.get('mb_per_s'))} MB/s)"
            )
    growths = [
        (client, direction, record["server_rss_growth_mb"])
        for client in CLIENTS
        for direction in DIRECTIONS
        if "server_rss_growth_mb"
        in (record := medians.get(f"puregrpc/{client}", {}).get(direction, {}))
    ]
    if growths:
        worst = max(growths, key=lambda g: g[2])
        checks.append(
            {
                "target": f"puregrpc server RSS flat (grows < {FLAT_RSS_MB:.0f} MB per transfer)",
                "met": worst[2] < FLAT_RSS_MB,
                "detail": f"largest growth +{worst[2]:.1f} MB ({worst[1]}, {worst[0]} client)",
            }
        )
    lines += ["", "## Targets (issue #8: at least grpcio's MB/s, with flat memory)", ""]
    for check in checks:
        mark = {True: "MET ", False: "MISS", None: "N/A "}[check["met"]]
        lines.append(f"  [{mark}] {check['target']}: {check['detail']}")
    lines.append("")
    lines += profile_report(profiles, meta["size"])
    errors = [
        f"  {pair} {direction}: {record.get('error') or record.get('last_error')}"
        for pair, per in medians.items()
        for direction, record in per.items()
        if "error" in record or "last_error" in record
    ]
    if errors:
        lines += ["## Failures (reported, not hidden)", "", *errors, ""]
    lines.append(f"took {meta['took_s']:.0f} s")
    return lines, checks


def profile_report(profiles: dict[str, Record], size: int) -> list[str]:
    if not profiles:
        return []
    lines = [
        f"## Where the time goes: the puregrpc server under cProfile ({size // MIB} MiB, "
        "grpcio client)",
        "",
    ]
    if "error" in profiles:
        lines += [f"profile failed: {profiles['error']['error']}", ""]
    for direction in DIRECTIONS:
        summary = profiles.get(direction)
        if summary is None:
            continue
        lines.append(
            f"### {direction} ({summary['file']}): {summary['mb_per_s_profiled']:,.0f} MB/s "
            f"profiled; event-loop thread {summary['event_loop_cpu_s']:.2f} s CPU, worker "
            f"threads (hashing, disk) {summary['worker_threads_cpu_s']:.2f} s CPU"
        )
        lines.append("")
        lines.append(
            f"event-loop thread, own time: {summary['total_seconds']:.2f} s under the profiler, "
            f"{summary['us_per_64k_chunk']:.0f} us per 64 KiB chunk"
        )
        lines.append("")
        lines.append("| group | share | us per chunk |")
        lines.append("|---|---|---|")
        for name, pct in summary["groups_pct"].items():
            lines.append(f"| {name} | {pct:.1f}% | {summary['groups_us_per_chunk'][name]:.1f} |")
        lines.append("")
        lines.append("top functions (own time):")
        lines.append("")
        for row in summary["top"][:14]:
            lines.append(
                f"    {row['tottime_pct']:5.1f}%  {row['function']}  ({row['calls']} calls)"
            )
        lines.append("")
    return lines


# ------------------------------------------------------------------ main


def make_source(path: Path, size: int) -> tuple[str, float, float, float]:
    """Random bytes to ``path``; (sha256, write s, fsync s, hash s)."""
    began = time.perf_counter()
    with path.open("wb") as out:
        for _ in range(size // MIB):
            out.write(os.urandom(MIB))
        out.flush()
        written = time.perf_counter()
        os.fsync(out.fileno())
        synced = time.perf_counter()
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(MIB):
            hasher.update(block)
    return (
        hasher.hexdigest(),
        written - began,
        synced - written,
        time.perf_counter() - synced,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", default=bool(os.environ.get("BENCH_QUICK")))
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--size-mib", type=int, default=None, help="file size (256; quick: 64)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--budget", type=float, default=240, help="seconds after which no new repeat starts"
    )
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    size = (args.size_mib or (64 if args.quick else 256)) * MIB
    if repeats < 1 or size <= 0:
        parser.error("--repeats and --size-mib must be positive")

    started = time.time()
    RESULTS.mkdir(parents=True, exist_ok=True)
    puregrpc_python, grpcio_python = interpreters()
    workdir = Path(tempfile.mkdtemp(prefix="puregrpc-streaming-bench-"))
    runs: dict[str, list[dict[str, Record]]] = {f"{s}/{c}": [] for s in SERVERS for c in CLIENTS}
    profiles: dict[str, Record] = {}
    load_before = os.getloadavg()[0]
    try:
        stubs = workdir / "stubs"
        subprocess.run(
            [str(grpcio_python), str(IMPLS / "grpcio_streaming_server.py"), "stubs", str(stubs)],
            check=True,
        )
        log(f"writing a {size // MIB} MiB source file")
        source = workdir / "source.bin"
        sha, write_s, fsync_s, hash_s = make_source(source, size)
        setup = Setup(puregrpc_python, grpcio_python, stubs, workdir, source, sha, size)
        pairs = [(s, c) for s in SERVERS for c in CLIENTS]
        for repeat in range(repeats):
            if repeat and time.time() - started > args.budget:
                log(f"time budget of {args.budget:.0f} s spent: stopping after {repeat} repeats")
                break
            shift = repeat % len(pairs)
            for server, client in pairs[shift:] + pairs[:shift]:
                log(f"repeat {repeat + 1}/{repeats}: {server} server, {client} client")
                record = measure_pair(setup, server, client, f"{repeat}-{server}-{client}")
                for direction, figures in record.items():
                    if "error" in figures:
                        log(f"  {direction}: FAIL {figures['error']}")
                    else:
                        log(
                            f"  {direction}: {figures['mb_per_s']:,.0f} MB/s, server RSS "
                            f"{figures['server_rss_start_mb']:.0f} -> "
                            f"{figures['server_rss_peak_mb']:.0f} MB"
                        )
                runs[f"{server}/{client}"].append(record)
        if not args.no_profile:
            log("profiling the puregrpc server (cProfile) during an upload and a download")
            profiles = profile_puregrpc(setup)
    finally:
        bench._kill_all()
        shutil.rmtree(workdir, ignore_errors=True)

    medians = {
        pair: {d: median_of([run[d] for run in per if d in run]) for d in DIRECTIONS}
        for pair, per in runs.items()
        if per
    }
    meta = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "quick": args.quick,
        "repeats": len(next(iter(runs.values()))),
        "size": size,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg()[0],
        "source_write_s": write_s,
        "source_fsync_s": fsync_s,
        "source_sha256_s": hash_s,
        "took_s": time.time() - started,
    }
    lines, checks = report(medians, profiles, meta)
    text = "\n".join(lines)
    print("\n" + text)
    payload = {
        **meta,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "interpreters": {"puregrpc": str(puregrpc_python), "grpcio": str(grpcio_python)},
        "medians": medians,
        "runs": runs,
        "targets": checks,
        "profiles": profiles,
    }
    (RESULTS / "streaming-latest.json").write_text(json.dumps(payload, indent=1))
    (RESULTS / "streaming-latest.md").write_text(text + "\n")
    log(f"results: {RESULTS.relative_to(REPO)}/streaming-latest.json and streaming-latest.md")
    failed = any("error" in r for per in medians.values() for r in per.values())
    return 1 if failed else 0


if __name__ == "__main__":
    if "--helpers" in sys.argv[1:]:
        import transfer_helpers

        sys.exit(transfer_helpers.main([a for a in sys.argv[1:] if a != "--helpers"]))
    try:
        sys.exit(main())
    finally:
        bench._kill_all()
