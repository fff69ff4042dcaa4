"""puregrpc's benchmark: one command, every implementation, one interleaved run.

    python3 bench/run.py [--quick] [--repeats N] [--only a,b] [--baseline REF]
                         [--no-clients] [--no-servers] [--no-profile] [--no-go] [--no-streaming]

(``make bench``; ``BENCH_QUICK=1 make bench`` for a short development run;
``--baseline HEAD~3`` adds the puregrpc of that commit as a row of its own and
a before/after section, both measured in the same interleaved run.)

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
   With ``--baseline REF``, a before/after section: the working tree's
   puregrpc against REF's, row by row, regressions over 5% flagged.
5. A slow-reader test (server RSS while a client reads a long 64 KiB stream
   slowly) and cProfile profiles of the puregrpc server under h2load.

Standard library only: it runs under the system ``python3``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
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

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
IMPLS = BENCH / "impls"
VENVS = BENCH / "venvs"
RESULTS = BENCH / "results"
sys.path.insert(0, str(IMPLS))

import common as c  # noqa: E402

SERVER_CORE = "0"
LOAD_CORE = "1"

# ------------------------------------------------------------------ setup

#: venv name -> pip requirements (the puregrpc venv installs this repo, editable,
#: so every run measures the working tree).
VENV_PACKAGES = {
    "puregrpc": ["-e", str(REPO)],
    "grpcio": ["grpcio"],
    "grpclib": ["grpclib", "uvloop"],
    "purerpc": ["purerpc", "trio"],
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_quiet(cmd: list[str], what: str, timeout: float = 900) -> bool:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        log(f"{what} failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return False
    return True


def apt_install(packages: list[str], why: str) -> bool:
    if os.geteuid() != 0:
        log(f"{why}: run as root, or install it yourself: apt-get install -y {' '.join(packages)}")
        return False
    log(f"{why}: apt-get install -y {' '.join(packages)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", *packages]
    if subprocess.run(cmd, capture_output=True, env=env).returncode == 0:
        return True
    subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
    return subprocess.run(cmd, capture_output=True, env=env).returncode == 0


def ensure_h2load() -> str:
    path = shutil.which("h2load")
    if path is None and apt_install(["nghttp2-client"], "h2load is missing"):
        path = shutil.which("h2load")
    if path is None:
        sys.exit(
            "h2load (Debian package nghttp2-client) is required: apt-get install -y nghttp2-client"
        )
    return path


def ensure_venvs() -> None:
    for name, packages in VENV_PACKAGES.items():
        ensure_venv(name, packages)


def ensure_venv(name: str, packages: list[str]) -> None:
    """Create ``venvs/NAME`` with PACKAGES, unless its stamp says it already has them."""
    venv = VENVS / name
    stamp = venv / ".bench-installed"
    wanted = " ".join(packages)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    log(f"creating venv {venv.relative_to(REPO)}: pip install {wanted}")
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    if not run_quiet([*pip, "--upgrade", "pip"], f"{name}: pip upgrade"):
        sys.exit(1)
    if not run_quiet([*pip, *packages], f"{name}: pip install"):
        if name == "grpclib" and run_quiet([*pip, "grpclib"], "grpclib without uvloop"):
            log("uvloop did not install: grpclib runs on asyncio only")
        else:
            sys.exit(f"could not install the {name} venv")
    stamp.write_text(wanted)


def git(*args: str) -> str:
    """Run git in the repository; its stdout, trailing whitespace stripped (exits on failure)."""
    result = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"git {' '.join(args)} failed: {result.stderr.strip() or result.returncode}")
    return result.stdout.rstrip()


@dataclass(frozen=True)
class Baseline:
    """An older commit's puregrpc: its own source tree and venv under ``venvs/``."""

    ref: str  # as given on the command line
    sha: str
    short: str
    subject: str
    tree: Path
    venv: str  # venv name under VENVS

    @property
    def name(self) -> str:
        return f"puregrpc@{self.short}"


def ensure_baseline(ref: str) -> Baseline:
    """Extract REF (``git archive``) to ``venvs/base-src-SHA`` and install it, editable,
    in ``venvs/puregrpc-base-SHA``; both are reused while they exist for that commit."""
    sha = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    short = git("rev-parse", "--short=9", sha)
    tree = VENVS / f"base-src-{short}"
    stamp = tree / ".bench-commit"
    if not (stamp.exists() and stamp.read_text() == sha):
        log(f"baseline {ref}: git archive {short} -> {tree.relative_to(REPO)}")
        partial = VENVS / f".base-src-{short}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(tree, ignore_errors=True)
        partial.mkdir(parents=True)
        archive = partial / "source.tar"
        git("archive", "--format=tar", "-o", str(archive), sha)
        subprocess.run(["tar", "-x", "-f", str(archive), "-C", str(partial)], check=True)
        archive.unlink()
        (partial / ".bench-commit").write_text(sha)
        partial.rename(tree)
    if not (tree / "bench" / "impls" / "puregrpc_impl.py").exists():
        sys.exit(f"--baseline {ref}: commit {short} has no bench/impls/puregrpc_impl.py")
    venv = f"puregrpc-base-{short}"
    ensure_venv(venv, ["-e", str(tree)])
    # From "/", so that neither the current directory nor this repo can supply puregrpc.
    where = subprocess.run(
        [str(VENVS / venv / "bin" / "python"), "-c", "import puregrpc; print(puregrpc.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout.strip()
    if not where.startswith(str(tree) + os.sep):
        sys.exit(f"venv {venv} imports puregrpc from {where or 'nowhere'}, not from {tree}")
    subject = git("log", "-1", "--format=%s", sha)
    return Baseline(ref, sha, short, subject, tree, venv)


def working_tree_state() -> dict[str, object]:
    """What the ``puregrpc`` row runs: HEAD plus any uncommitted changes to the library."""
    paths = ["puregrpc", "puregrpc_streaming", "pyproject.toml", "bench/impls"]
    dirty = git("status", "--porcelain", "--", *paths).splitlines()
    return {"head": git("rev-parse", "--short=9", "HEAD"), "uncommitted": [d[3:] for d in dirty]}


def ensure_go() -> Path | None:
    """Build the grpc-go yardstick (Debian's Go toolchain and grpc-go), or None."""
    binary = VENVS / "go" / "benchgo"
    source = IMPLS / "go" / "main.go"
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    grpc_go = Path("/usr/share/gocode/src/google.golang.org/grpc")
    if (shutil.which("go") is None or not grpc_go.exists()) and not apt_install(
        ["golang-go", "golang-google-grpc-dev"], "grpc-go yardstick (optional)"
    ):
        log("no grpc-go: the load generator check falls back to the raw h2 + trio server")
        return None
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        GO111MODULE="off",
        GOPATH="/usr/share/gocode",
        GOCACHE=str(VENVS / "go" / "cache"),
    )
    cmd = ["go", "build", "-o", str(binary), str(source)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        log(f"grpc-go build failed, going on without it:\n{result.stderr[-1500:]}")
        return None
    return binary


# ---------------------------------------------------------- implementations


@dataclass(frozen=True)
class Impl:
    name: str
    server: list[str] | None  # argv before the port
    client: list[str] | None  # argv before HOST PORT
    #: An older commit's puregrpc (``--baseline``): measured with the others,
    #: but not slow-read, profiled, or checked against the targets.
    baseline: bool = False


def py(venv: str, script: str, *args: str, impls: Path = IMPLS) -> list[str]:
    """argv running ``IMPLS/SCRIPT ARGS`` with venv's python (IMPLS: this tree's, by default)."""
    return [str(VENVS / venv / "bin" / "python"), str(impls / script), *args]


def implementations(go: Path | None, uvloop: bool, baseline: Baseline | None = None) -> list[Impl]:
    impls = [
        Impl(
            "puregrpc",
            py("puregrpc", "puregrpc_impl.py", "server"),
            py("puregrpc", "puregrpc_impl.py", "client"),
        ),
    ]
    if baseline is not None:
        # The old tree's own driver: the public API may have changed since.
        old_impls = baseline.tree / "bench" / "impls"
        impls.append(
            Impl(
                baseline.name,
                py(baseline.venv, "puregrpc_impl.py", "server", impls=old_impls),
                py(baseline.venv, "puregrpc_impl.py", "client", impls=old_impls),
                baseline=True,
            )
        )
    impls += [
        Impl(
            "h2+trio",
            py("puregrpc", "raw_h2trio.py", "server"),
            py("puregrpc", "raw_h2trio.py", "client"),
        ),
        Impl(
            "grpcio-sync",
            py("grpcio", "grpcio_impl.py", "server", "sync"),
            py("grpcio", "grpcio_impl.py", "client", "sync"),
        ),
        Impl(
            "grpcio-aio",
            py("grpcio", "grpcio_impl.py", "server", "aio"),
            py("grpcio", "grpcio_impl.py", "client", "aio"),
        ),
        Impl(
            "grpclib",
            py("grpclib", "grpclib_impl.py", "server", "asyncio"),
            py("grpclib", "grpclib_impl.py", "client", "asyncio"),
        ),
    ]
    if uvloop:
        impls.append(
            Impl(
                "grpclib-uvloop",
                py("grpclib", "grpclib_impl.py", "server", "uvloop"),
                py("grpclib", "grpclib_impl.py", "client", "uvloop"),
            )
        )
    impls.append(
        Impl(
            "purerpc",
            py("purerpc", "purerpc_impl.py", "server"),
            py("purerpc", "purerpc_impl.py", "client"),
        )
    )
    if go is not None:
        impls.append(Impl("grpc-go", [str(go), "-port"], None))
    return impls


# ------------------------------------------------------------------ processes


_live: set[subprocess.Popen[str]] = set()


def _kill_all() -> None:
    for proc in list(_live):
        _kill(proc)


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    _live.discard(proc)


class Server:
    """A server process pinned to the server core, in its own process group."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *argv, "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env=env,
        )
        _live.add(self.proc)
        self.output: list[str] = []
        self.port = 0
        ready = threading.Event()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line.rstrip())
                match = re.match(r"(?:LISTENING|listening) (\d+)", line)
                if match and not self.port:
                    self.port = int(match.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(30) or not self.port:
            self.stop()
            raise RuntimeError("server did not start: " + " | ".join(self.output[-5:]))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (all its threads)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def interrupt(self, wait: float = 10) -> None:
        """SIGINT (profiled servers dump their profile on the way out)."""
        if self.proc.poll() is None:
            os.killpg(self.pid, signal.SIGINT)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                pass
        self.stop()

    def stop(self) -> None:
        _kill(self.proc)


class RssSampler:
    """Samples a process's RSS every 20 ms in a thread; ``peak`` is the max seen."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.server.rss_mb())
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> float:
        return max(self.samples, default=0.0)


def run_pinned(argv: list[str], timeout: float) -> tuple[int, str, float, float]:
    """Run on the load core; returns (exit code, output, wall seconds, CPU seconds)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["taskset", "-c", LOAD_CORE, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    _live.add(proc)
    timer = threading.Timer(timeout, lambda: _kill(proc) if proc.poll() is None else None)
    timer.start()
    try:
        output = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        timer.cancel()
        _live.discard(proc)
    wall = time.perf_counter() - started
    return proc.returncode, output, wall, usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------------ workloads

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

    def h2load_run(self, server: Server, spec: LoadSpec) -> dict[str, float]:
        duration = self.args.duration
        log_file = self.workdir / f"{spec.name}.log"
        log_file.unlink(missing_ok=True)
        timing = (
            ["-n", str(spec.count)] if spec.count else ["-D", str(duration), "--warm-up-time", "1"]
        )
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
        cpu_before = server.cpu_seconds()
        with RssSampler(server) as rss:
            code, output, wall, h2load_cpu = run_pinned(argv, timeout=duration + 60)
        server_cpu = server.cpu_seconds() - cpu_before
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
            "server_rss_peak_mb": rss.peak,
        }
        if spec.latency:
            latencies = sorted(latencies_from_log(log_file))
            result["p50_us"] = c.percentile(latencies, 0.5) * 1e6
            result["p99_us"] = c.percentile(latencies, 0.99) * 1e6
        return result

    def pingpong_run(self, server: Server, go: bool) -> dict[str, float]:
        count = int(4000 * self.args.scale)
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

    # -- profiles

    def profiles(self) -> dict[str, dict]:
        """cProfile puregrpc and the h2 + trio baseline under the same fixed h2load runs."""
        out: dict[str, dict] = {}
        servers = {
            "puregrpc": ("puregrpc_impl.py", "server"),
            "h2+trio": ("raw_h2trio.py", "server"),
        }
        # Fixed counts, so that the two profiles divide into a cost per call / message.
        counts = {"unary_c64": 10_000, "stream_64b": 60}
        for spec_name, calls in counts.items():
            spec = dataclasses.replace(
                next(s for s in LOAD_SPECS if s.name == spec_name), count=calls
            )
            units = calls * spec.messages
            for impl, (script, role) in servers.items():
                key = f"{impl}/{spec_name}"
                prof = RESULTS / f"profile-{impl.replace('+', '-')}-{spec_name}.prof"
                prof.unlink(missing_ok=True)
                server = Server(py("puregrpc", script, role, "--profile", str(prof)))
                try:
                    self.h2load_run(server, spec)
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


# ------------------------------------------------------------------ profile summary

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


# ------------------------------------------------------------------ reporting


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
REGRESSION_PCT = -5.0


def change_pct(ours: float, base: float, higher: bool) -> float:
    """How much better ``ours`` is than ``base``, in percent (negative: worse).

    Throughput: ours / base - 1; latency: base / ours - 1 (the speed-up, so
    that halving a latency reads +100%, like doubling a throughput)."""
    return 100 * ((ours / base) if higher else (base / ours)) - 100


def baseline_comparison(
    base: str,
    server: dict[str, dict[str, dict]],
    client: dict[str, dict[str, dict]],
    server_runs: dict[str, list[dict]],
    client_runs: dict[str, list[dict]],
) -> list[dict]:
    """puregrpc against the baseline row BASE, one row per (side, workload) either has.

    Besides the medians, each repeat's own change: both were measured in the
    same repeat, so the spread of these shows the noise of the pair."""
    rows = []
    sides = (("server", server, server_runs), ("client", client, client_runs))
    for side, results, runs in sides:
        if "puregrpc" not in results or base not in results:
            continue
        for workload, (key, unit, higher) in HEADLINE.items():
            ours_record = results["puregrpc"].get(workload)
            base_record = results[base].get(workload)
            if ours_record is None and base_record is None:
                continue
            ours = (ours_record or {}).get(key)
            theirs = (base_record or {}).get(key)
            change = None
            if (
                isinstance(ours, int | float)
                and isinstance(theirs, int | float)
                and ours
                and theirs
            ):
                change = change_pct(ours, theirs, higher)
            per_repeat = []
            for mine, old in zip(runs.get("puregrpc", []), runs.get(base, []), strict=False):
                a = mine.get(workload, {}).get(key)
                b = old.get(workload, {}).get(key)
                if isinstance(a, int | float) and isinstance(b, int | float) and a and b:
                    per_repeat.append(change_pct(a, b, higher))
            row = {
                "side": side,
                "workload": workload,
                "metric": key,
                "unit": unit,
                "higher_is_better": higher,
                "puregrpc": ours,
                base: theirs,
                "change_pct": change,
                "per_repeat_change_pct": per_repeat,
                "regression": None if change is None else change < REGRESSION_PCT,
            }
            rows.append(row)
    return rows


def comparison_lines(
    baseline: Baseline, state: dict[str, object], rows: list[dict], repeats: int
) -> list[str]:
    base = baseline.name
    uncommitted = state["uncommitted"]
    assert isinstance(uncommitted, list)
    tree = f"the working tree at {state['head']}"
    if uncommitted:
        shown = ", ".join(uncommitted[:6]) + (", ..." if len(uncommitted) > 6 else "")
        tree += f" with {len(uncommitted)} uncommitted change(s): {shown}"
    else:
        tree += " (no uncommitted changes to the library)"
    lines = [
        f"## Before/after: puregrpc vs {base} (same run)",
        "",
        f"puregrpc = {tree}; {base} = {baseline.ref} = {baseline.sha[:12]} "
        f'"{baseline.subject}", run by its own bench/impls/puregrpc_impl.py.',
        f"change: positive = puregrpc better (throughput: puregrpc / {base} - 1; "
        f"latency: {base} / puregrpc - 1); median of {repeats}, each repeat's own change "
        f"in brackets; rows worse by more than {-REGRESSION_PCT:.0f}% are flagged.",
        "",
        f"| side | workload | metric | puregrpc | {base} | change | |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        change = row["change_pct"]
        if change is None:
            cell, flag = "-", "FAIL" if row["puregrpc"] is None or row[base] is None else ""
        else:
            cell = f"{change:+.1f}%"
            if len(row["per_repeat_change_pct"]) > 1:
                cell += " (" + ", ".join(f"{v:+.0f}" for v in row["per_repeat_change_pct"]) + ")"
            flag = f"**WORSE > {-REGRESSION_PCT:.0f}%**" if row["regression"] else ""
        lines.append(
            f"| {row['side']} | {row['workload']} | {row['unit']} | {fmt(row['puregrpc'])} | "
            f"{fmt(row[base])} | {cell} | {flag} |"
        )
    worse = [f"{r['side']} {r['workload']}" for r in rows if r["regression"]]
    missing = [f"{r['side']} {r['workload']}" for r in rows if r["change_pct"] is None]
    compared = len(rows) - len(missing)
    lines.append("")
    if worse:
        lines.append(
            f"{len(worse)} of {compared} rows compared are worse by more than "
            f"{-REGRESSION_PCT:.0f}%: " + ", ".join(worse)
        )
    elif compared:
        lines.append(f"no row worse by more than {-REGRESSION_PCT:.0f}% ({compared} compared)")
    if missing:
        lines.append(
            f"{len(missing)} rows without a figure on one side (see Failures): "
            + ", ".join(missing)
        )
    lines.append("")
    return lines


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


# ------------------------------------------------------------------ main


def main() -> int:
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
        "tree and venv under bench/venvs/) and report a before/after section",
    )
    parser.add_argument("--no-clients", action="store_true")
    parser.add_argument("--no-servers", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-go", action="store_true", help="skip the grpc-go yardstick")
    parser.add_argument(
        "--no-streaming", action="store_true", help="skip streaming_transfer.py (256 MiB files)"
    )
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.duration = 1 if args.quick else 2  # h2load seconds per workload (plus 1 s warm-up)
    args.scale = 0.3 if args.quick else 1.0  # client workload counts
    args.client_seconds = 3 if args.quick else 6
    args.slow_seconds = 3 if args.quick else 6

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
    impls = implementations(go, uvloop, baseline)
    if args.only:
        wanted = set(args.only.split(",")) | {"puregrpc"}
        impls = [
            impl for impl in impls if impl.name in wanted or impl.name == "grpc-go" or impl.baseline
        ]
    if os.cpu_count() and os.cpu_count() < 2:
        log("warning: fewer than 2 cores, server and load generator share one")
    runner = Runner(args, h2load, go)
    started = time.time()
    load_before = os.getloadavg()
    server_runs: dict[str, list[dict]] = {impl.name: [] for impl in impls if impl.server}
    client_runs: dict[str, list[dict]] = {impl.name: [] for impl in impls if impl.client}
    reference = next((impl for impl in impls if impl.name == "grpc-go"), None) or next(
        impl for impl in impls if impl.name == "grpcio-sync"
    )
    slow: dict[str, dict] = {}
    profiles: dict[str, dict] = {}
    try:
        for repeat in range(args.repeats):
            shift = repeat % len(impls)
            order = impls[shift:] + impls[:shift]
            if not args.no_servers:
                for impl in order:
                    if impl.server is None:
                        continue
                    log(f"repeat {repeat + 1}/{args.repeats}: server side, {impl.name}")
                    server_runs[impl.name].append(runner.server_side(impl))
            if not args.no_clients:
                ref = Server(reference.server)  # type: ignore[arg-type]
                try:
                    for impl in order:
                        if impl.client is None:
                            continue
                        log(
                            f"repeat {repeat + 1}/{args.repeats}: client side, {impl.name} "
                            f"-> {reference.name}"
                        )
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
            profiles = runner.profiles()
    finally:
        _kill_all()
        shutil.rmtree(runner.workdir, ignore_errors=True)

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
        # Other work on the machine shows here and as server CPU well under 100%.
        f"load average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
        f"(the bench itself accounts for about 1-2; more means something else competed)",
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
    if baseline is not None and state is not None:
        rows = baseline_comparison(baseline.name, server, client, server_runs, client_runs)
        lines += comparison_lines(baseline, state, rows, args.repeats)
        comparison = {
            "baseline": baseline.name,
            "ref": baseline.ref,
            "commit": baseline.sha,
            "subject": baseline.subject,
            "puregrpc": state,
            "regression_pct": REGRESSION_PCT,
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
