"""The workloads (h2load's on the server side, the clients' own on the client side) and the
``Runner`` that measures one implementation on them."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import common as c

from .env import LOAD_CORE, Impl, log, py
from .procs import RssSampler, Server, _kill, _live, run_pinned

H2LOAD_HEADERS = ["-H", "content-type: application/grpc", "-H", "te: trailers"]


@dataclass(frozen=True)
class LoadSpec:
    """One h2load workload: a method, a request file, and the concurrency."""

    name: str
    path: str
    data: bytes
    clients: int
    streams: int  # per connection (-m)
    messages: int  # responses (or requests, for uploads) per call
    size: int  # payload bytes per message
    latency: bool = False
    #: Run a fixed number of calls (-n) instead of a duration (-D): long calls
    #: would not finish inside a short duration.
    count: int | None = None


LOAD_SPECS = [
    LoadSpec("unary_c1", c.UNARY, c.frame(c.UNARY_REQUEST), 1, 1, 1, c.SMALL, latency=True),
    LoadSpec("unary_c64", c.UNARY, c.frame(c.UNARY_REQUEST), 1, 64, 1, c.SMALL, latency=True),
    LoadSpec(
        "stream_64b", c.STREAM_OUT, c.frame(c.SMALL_STREAM_REQUEST), 1, 1, c.SMALL_STREAM_COUNT, 64
    ),
    LoadSpec(
        "stream_64k",
        c.STREAM_OUT,
        c.frame(c.LARGE_STREAM_REQUEST),
        1,
        1,
        c.LARGE_STREAM_COUNT,
        c.LARGE,
    ),
    LoadSpec(
        "cstream_64k",
        c.STREAM_IN,
        c.frame(c.UPLOAD_MESSAGE) * c.UPLOAD_COUNT,
        1,
        1,
        c.UPLOAD_COUNT,
        c.LARGE,
    ),
    LoadSpec(
        "streams_100",
        c.STREAM_OUT,
        c.frame(c.SMALL_STREAM_REQUEST),
        1,
        100,
        c.SMALL_STREAM_COUNT,
        64,
        count=100,
    ),
]

#: What each workload is judged by: (result key, unit, higher is better).
HEADLINE = {
    "unary_c1": ("calls_per_s", "calls/s", True),
    "unary_c64": ("calls_per_s", "calls/s", True),
    "stream_64b": ("messages_per_s", "msg/s", True),
    "stream_64k": ("mb_per_s", "MB/s", True),
    "cstream_64k": ("mb_per_s", "MB/s", True),
    "pingpong": ("p50_us", "us p50 RTT", False),
    "streams_100": ("messages_per_s", "msg/s", True),
    # The same ping-pong driven by a grpc-go client (which sends BDP PINGs).
    "pingpong_go": ("p50_us", "us p50 RTT", False),
}
#: Workloads the targets of issue #6 are checked on.
TARGET_WORKLOADS = [w for w in HEADLINE if w != "pingpong_go"]
#: Secondary figures shown in the table.
EXTRA = {
    "unary_c1": [("p50_us", "p50 us"), ("p99_us", "p99 us")],
    "unary_c64": [("p50_us", "p50 us"), ("p99_us", "p99 us")],
    "stream_64b": [("mb_per_s", "MB/s")],
    "stream_64k": [("messages_per_s", "msg/s"), ("server_rss_peak_mb", "peak RSS MB")],
    "pingpong": [("p99_us", "p99 us")],
    "pingpong_go": [("p99_us", "p99 us")],
}

#: What a row's CPU time is divided by (``--baseline``'s paired runs, ``paired.py``).
CPU_UNIT = {
    "unary_c1": "call",
    "unary_c64": "call",
    "stream_64b": "msg",
    "stream_64k": "MB",
    "cstream_64k": "MB",
    "streams_100": "msg",
    "pingpong": "round trip",
    "pingpong_go": "round trip",
}


def h2load_seconds(seconds: float) -> str:
    """A duration as h2load takes it: whole seconds, or else milliseconds ("1.0" is refused)."""
    return str(int(seconds)) if seconds == int(seconds) else f"{round(seconds * 1000)}ms"


def parse_h2load(output: str) -> dict[str, float]:
    def grab(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output)
        if match is None:
            raise RuntimeError(f"h2load output not understood ({pattern}):\n{output[-800:]}")
        return match

    finished = grab(r"finished in ([\d.]+)(?:s|ms), ([\d.]+) req/s")
    requests = grab(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout"
    )
    codes = grab(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
    return {
        "req_per_s": float(finished.group(2)),
        "done": int(requests.group(3)),
        "succeeded": int(requests.group(4)),
        "failed": int(requests.group(5)) + int(requests.group(6)) + int(requests.group(7)),
        "status_2xx": int(codes.group(1)),
        "status_other": sum(int(codes.group(i)) for i in (2, 3, 4)),
    }


def latencies_from_log(path: Path) -> list[float]:
    values = []
    with path.open() as handle:
        for line in handle:
            parts = line.split("\t")
            if len(parts) >= 3:
                values.append(int(parts[2]) / 1e6)
    return values


class Runner:
    def __init__(self, args: argparse.Namespace, h2load: str, go: Path | None) -> None:
        self.args = args
        self.h2load = h2load
        self.go = go
        self.workdir = Path(tempfile.mkdtemp(prefix="puregrpc-bench-"))
        for spec in LOAD_SPECS:
            (self.workdir / f"{spec.name}.bin").write_bytes(spec.data)

    # -- server side

    def verify(self, port: int) -> str | None:
        """Call every method once with a real client; None if all ended with grpc-status 0."""
        code, output, _, _ = run_pinned(
            [
                *py("puregrpc", "raw_h2trio.py", "client"),
                "127.0.0.1",
                str(port),
                "--scale",
                "0.002",
            ],
            timeout=60,
        )
        errors = []
        for line in output.splitlines():
            if line.startswith("RESULT "):
                record = json.loads(line[7:])
                if record["error"]:
                    errors.append(f"{record['workload']}: {record['error']}")
        if code != 0 or errors or "RESULT" not in output:
            return "; ".join(errors) or f"verifying client exited {code}: {output[-300:]}"
        return None

    def h2load_run(
        self,
        server: Server,
        spec: LoadSpec,
        duration: float | None = None,
        warm_up: float = 1,
        keep_latencies: bool = False,
    ) -> dict:
        """One h2load run: ``-n spec.count`` calls, or else DURATION seconds (default
        ``--duration``) after WARM_UP seconds that are not counted (0: none).

        ``server_cpu_s`` is the server's CPU time over the whole run: divided by the calls
        only for counted runs, where the two cover the same work (see ``paired.py``).
        KEEP_LATENCIES: also return every call's latency (``latencies_s``)."""
        duration = self.args.duration if duration is None else duration
        log_file = self.workdir / f"{spec.name}.log"
        log_file.unlink(missing_ok=True)
        if spec.count:
            timing = ["-n", str(spec.count)]
        else:
            warm = ["--warm-up-time", h2load_seconds(warm_up)] if warm_up else []
            timing = ["-D", h2load_seconds(duration), *warm]
        argv = [
            self.h2load,
            *timing,
            "-c",
            str(spec.clients),
            "-m",
            str(spec.streams),
            "-d",
            str(self.workdir / f"{spec.name}.bin"),
            *H2LOAD_HEADERS,
            *(["--log-file", str(log_file)] if spec.latency else []),
            f"http://127.0.0.1:{server.port}{spec.path}",
        ]
        if spec.count:
            # Let the server finish closing the previous run's connection first, so that
            # the CPU below is this run's alone.
            time.sleep(0.05)
        cpu_before = server.cpu_seconds_precise()
        with RssSampler(server) as rss:
            code, output, wall, h2load_cpu = run_pinned(argv, timeout=4 * duration + 60)
        server_cpu = server.cpu_seconds_precise() - cpu_before
        stats = parse_h2load(output)
        if code != 0:
            raise RuntimeError(f"h2load exited {code}: {output[-500:]}")
        if stats["succeeded"] == 0 or stats["failed"] or stats["status_other"]:
            raise RuntimeError(
                f"h2load: {stats['succeeded']} succeeded, {stats['failed']} failed, "
                f"{stats['status_other']} non-2xx"
            )
        # With -D, calls still in flight when the clock stops may be counted as
        # done without a status: allow at most one per concurrent stream.
        in_flight = 0 if spec.count else spec.clients * spec.streams
        if stats["status_2xx"] < stats["succeeded"] - in_flight:
            raise RuntimeError(f"h2load: {stats['status_2xx']} 2xx of {stats['succeeded']}")
        if spec.count and stats["succeeded"] != spec.count:
            raise RuntimeError(f"h2load: {stats['succeeded']} of {spec.count} calls succeeded")
        calls = stats["req_per_s"]
        result = {
            "calls_per_s": calls,
            "messages_per_s": calls * spec.messages,
            "mb_per_s": calls * spec.messages * spec.size / 1e6,
            "calls_measured": stats["succeeded"],
            # Load generator and server CPU use over the whole run (warm-up included):
            # h2load near 100% of its core would mean it, not the server, is the limit.
            "h2load_cpu_pct": 100 * h2load_cpu / wall,
            "server_cpu_pct": 100 * server_cpu / wall,
            "server_cpu_s": server_cpu,
            "h2load_cpu_s": h2load_cpu,
            "wall_s": wall,
            "server_rss_peak_mb": rss.peak,
        }
        if spec.latency:
            latencies = sorted(latencies_from_log(log_file))
            result["p50_us"] = c.percentile(latencies, 0.5) * 1e6
            result["p99_us"] = c.percentile(latencies, 0.99) * 1e6
            if keep_latencies:
                result["latencies_s"] = latencies
        return result

    def pingpong_run(self, server: Server, go: bool, count: int | None = None) -> dict:
        count = count or int(4000 * self.args.scale)
        if go:
            assert self.go is not None
            argv = [str(self.go), "-pingpong", f"127.0.0.1:{server.port}", "-count", str(count)]
            code, output, _, _ = run_pinned(argv, timeout=30)
            if code != 0:
                raise RuntimeError(f"grpc-go ping-pong client exited {code}: {output[-400:]}")
            record = json.loads(output.strip().splitlines()[-1])
            return {
                "round_trips": record["count"],
                "p50_us": record["p50"] * 1e6,
                "p99_us": record["p99"] * 1e6,
                "driver": "grpc-go",
            }
        argv = [
            *py("grpcio", "grpcio_impl.py", "client", "sync"),
            "127.0.0.1",
            str(server.port),
            "--workloads",
            "pingpong",
            "--scale",
            str(count / c.CLIENT_WORKLOADS["pingpong"]),
        ]
        results = self.client_results(argv)
        if results["pingpong"].get("error"):
            raise RuntimeError(results["pingpong"]["error"])
        return {**results["pingpong"], "driver": "grpcio-sync"}

    def server_side(self, impl: Impl) -> dict[str, dict]:
        assert impl.server is not None
        out: dict[str, dict] = {}
        try:
            server = Server(impl.server)
        except Exception as exc:
            return {spec: {"error": str(exc)} for spec in HEADLINE}
        try:
            problem = self.verify(server.port)
            if problem is not None:
                log(f"  {impl.name}: verification failed: {problem}")
                return {spec: {"error": f"verification: {problem}"} for spec in HEADLINE}
            for spec in LOAD_SPECS:
                try:
                    out[spec.name] = self.h2load_run(server, spec)
                except Exception as exc:
                    out[spec.name] = {"error": str(exc)[:400]}
                if server.proc.poll() is not None:
                    raise RuntimeError("server died: " + " | ".join(server.output[-5:]))
            try:
                out["pingpong"] = self.pingpong_run(server, go=False)
            except Exception as exc:
                out["pingpong"] = {"error": str(exc)[:400]}
            if self.go is not None:
                try:
                    out["pingpong_go"] = self.pingpong_run(server, go=True)
                except Exception as exc:
                    out["pingpong_go"] = {"error": str(exc)[:400]}
            # grpc-status 0 again after the load: the server is still well.
            problem = self.verify(server.port)
            if problem is not None:
                out["after_load_check"] = {"error": problem}
        except Exception as exc:
            for name in HEADLINE:
                out.setdefault(name, {"error": str(exc)[:400]})
        finally:
            server.stop()
        return out

    # -- client side

    def client_results(self, argv: list[str]) -> dict[str, dict]:
        code, output, _, _ = run_pinned(argv, timeout=300)
        results: dict[str, dict] = {}
        for line in output.splitlines():
            if line.startswith("RESULT "):
                record = json.loads(line[7:])
                results[record["workload"]] = record["result"] or {"error": record["error"]}
        if code != 0 and not results:
            raise RuntimeError(f"client exited {code}: {output[-500:]}")
        return results

    def client_side(self, impl: Impl, port: int) -> dict[str, dict]:
        assert impl.client is not None
        argv = [
            *impl.client,
            "127.0.0.1",
            str(port),
            "--scale",
            str(self.args.scale),
            "--seconds",
            str(self.args.client_seconds),
        ]
        try:
            return self.client_results(argv)
        except Exception as exc:
            return {name: {"error": str(exc)[:400]} for name in c.CLIENT_WORKLOADS}

    # -- slow reader

    def slow_reader(self, impl: Impl) -> dict[str, float]:
        assert impl.server is not None
        server = Server(impl.server)
        try:
            argv = [
                *py("puregrpc", "slow_reader.py"),
                "127.0.0.1",
                str(server.port),
                str(self.args.slow_seconds),
            ]
            proc = subprocess.Popen(
                ["taskset", "-c", LOAD_CORE, *argv],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            _live.add(proc)
            samples = []
            try:
                deadline = time.monotonic() + self.args.slow_seconds + 20
                while proc.poll() is None and time.monotonic() < deadline:
                    samples.append(server.rss_mb())
                    time.sleep(0.05)
                output = proc.stdout.read() if proc.stdout else ""
            finally:
                _kill(proc)
            record = json.loads(output.strip().splitlines()[-1]) if "{" in output else {}
            if not record:
                return {"error": f"slow reader failed: {output[-300:]}"}
            # Skip the first 10% (connection set-up, first window's worth).
            settled = samples[len(samples) // 10 :] or samples
            return {
                "rss_start_mb": settled[0],
                "rss_peak_mb": max(samples),
                "rss_end_mb": samples[-1],
                "rss_growth_mb": max(settled) - settled[0],
                "stream_requested_mb": record["requested_bytes"] / 1e6,
                "read_mb": record["read_bytes"] / 1e6,
                "seconds": record["seconds"],
            }
        finally:
            server.stop()
