"""Worker processes: aggregate throughput of ``run_workers`` with 1 and 2 workers.

    .venv/bin/python bench/workers.py                # ~30 s: 1 and 2 workers, two workloads
    .venv/bin/python bench/workers.py --seconds 5 --connections 32

The server is ``impls/puregrpc_impl.py``'s TestService (the handlers of the
main benchmark) served by ``puregrpc.server.run_workers``; the load is h2load
(Debian ``nghttp2-client``) with the main benchmark's request bytes:

* ``unary``: UnaryCall, 64 B, ``--connections`` connections x 16 streams;
* ``stream_64b``: StreamingOutputCall, 1000 responses of 64 B each, one
  stream per connection.

Nothing is pinned: the workers and h2load share the machine's cores, as they
would on one host. Printed per run: calls/s (or messages/s), the CPU the
workers and h2load used (in cores: CPU seconds per wall second), each
worker's share, and the rate per server core (rate / worker cores), the
figure that would scale with cores if the load generator had its own.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "impls"))

import common as c  # noqa: E402

UNARY_STREAMS = 16


def make_server() -> object:
    """The TestService server each worker runs (imported there: spawn)."""
    from puregrpc_impl import HANDLERS

    from puregrpc.server import Server

    return Server(HANDLERS)


def serve(workers: int) -> int:
    """The supervisor process: print the port, serve until SIGTERM."""
    from puregrpc.server import run_workers

    return run_workers(
        make_server,  # type: ignore[arg-type]
        workers=workers,
        grace=1.0,
        on_listening=lambda port: print(port, flush=True),
    )


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def _h2load(argv: list[str], timeout: float) -> tuple[str, float, float]:
    """Run h2load; (output, wall seconds, its CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"h2load failed: {done.stdout[-600:]}{done.stderr[-600:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return done.stdout, wall, cpu


def run(workers: int, args: argparse.Namespace, workdir: Path) -> dict[str, dict[str, Any]]:
    """Both workloads against one supervisor of ``workers`` workers."""
    supervisor = subprocess.Popen(
        [sys.executable, __file__, "serve", str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert supervisor.stdout is not None
        port = int(supervisor.stdout.readline())
        pids = [pid for pid in _children(supervisor.pid) if _is_worker(pid)]
        results = {}
        for name, request, streams, per_call in (
            ("unary", c.UNARY_REQUEST, UNARY_STREAMS, 1),
            ("stream_64b", c.SMALL_STREAM_REQUEST, 1, c.SMALL_STREAM_COUNT),
        ):
            data = workdir / f"{name}.bin"
            data.write_bytes(c.frame(request))
            path = c.UNARY if name == "unary" else c.STREAM_OUT
            before = {pid: _cpu_seconds(pid) for pid in pids}
            output, wall, h2load_cpu = _h2load(
                [
                    "h2load",
                    *("-D", str(args.seconds), "--warm-up-time", "1"),
                    *("-c", str(args.connections), "-m", str(streams), "-d", str(data)),
                    *("-H", "content-type: application/grpc", "-H", "te: trailers"),
                    f"http://127.0.0.1:{port}{path}",
                ],
                timeout=args.seconds * 4 + 30,
            )
            used = {pid: _cpu_seconds(pid) - before[pid] for pid in pids}
            rate = float(_grab(r"finished in [\d.]+(?:s|ms), ([\d.]+) req/s", output))
            failed = int(_grab(r"(\d+) failed", output))
            if failed:
                raise RuntimeError(f"{name}: {failed} calls failed")
            worker_cores = sum(used.values()) / wall
            results[name] = {
                "rate": rate * per_call,
                "worker_cores": worker_cores,
                "h2load_cores": h2load_cpu / wall,
                "shares": sorted(100 * u / max(sum(used.values()), 1e-9) for u in used.values()),
                "per_server_core": rate * per_call / max(worker_cores, 1e-9),
            }
        return results
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=30)


def _is_worker(pid: int) -> bool:
    try:
        return "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def _grab(pattern: str, output: str) -> str:
    match = re.search(pattern, output)
    if match is None:
        raise RuntimeError(f"h2load output not understood ({pattern}):\n{output[-600:]}")
    return match.group(1)


def main() -> int:
    """Measure 1 and 2 workers and print the table."""
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        return serve(int(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=3, help="h2load per workload (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="h2load -c (default 16)")
    args = parser.parse_args()
    print(
        f"cores: {os.cpu_count()}; h2load -c {args.connections}, {args.seconds} s per run; "
        "load average before: " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    with tempfile.TemporaryDirectory() as tmp:
        figures = {n: run(n, args, Path(tmp)) for n in (1, 2)}
    units = {"unary": "calls/s", "stream_64b": "msg/s"}
    print(
        f"{'workload':<11} {'workers':>7} {'rate':>16} {'worker cores':>12} "
        f"{'h2load cores':>12} {'per server core':>15}  worker shares %"
    )
    for name, unit in units.items():
        for workers in (1, 2):
            row = figures[workers][name]
            shares = "/".join(f"{share:.0f}" for share in row["shares"])
            print(
                f"{name:<11} {workers:>7} {row['rate']:>8.0f} {unit:<7}"
                f" {row['worker_cores']:>12.2f} {row['h2load_cores']:>12.2f}"
                f" {row['per_server_core']:>15.0f}  {shares}"
            )
        ratio = figures[2][name]["rate"] / figures[1][name]["rate"]
        print(f"{name}: 2 workers / 1 worker = {ratio:.2f}x")
    print("load average after: " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
