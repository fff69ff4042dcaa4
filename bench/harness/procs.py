"""Processes: servers pinned to the server core, load pinned to the load core, their
CPU time and RSS, and killing whatever is left on the way out."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from .env import LOAD_CORE, SERVER_CORE

#: The lines the clients print per workload (``impls/common.py:emit``).
MARKER = "RESULT "

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
        """utime + stime of the server process (all its threads), in clock ticks (10 ms)."""
        return stat_cpu_seconds(self.pid)

    def cpu_seconds_precise(self) -> float:
        """The server's CPU time to the nanosecond (see :func:`process_cpu_seconds`)."""
        return process_cpu_seconds(self.pid)

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


def stat_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads, dead ones included), from
    ``/proc/PID/stat``: counted in clock ticks, 10 ms each."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """CPU time a process has run, to the nanosecond: the sum over its live threads of
    ``/proc/PID/task/TID/schedstat`` (time on the CPU; time the hypervisor stole is not
    in it). A thread that exited takes its time with it, so this is for deltas over a
    run in which the process keeps its threads. Falls back to :func:`stat_cpu_seconds`
    where the kernel has no schedstat."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except FileNotFoundError:
            if not Path(f"/proc/{pid}/task/{tid}").exists():
                continue  # the thread exited meanwhile
            return stat_cpu_seconds(pid)
        except (OSError, ValueError, IndexError):
            return stat_cpu_seconds(pid)
    return total / 1e9


class SteppedProcess:
    """A process on the load core that runs one step at a time: it is stopped (SIGSTOP)
    as soon as it prints a line starting with MARKER, until :meth:`step` resumes it.

    Two of them take turns on one core without ever running at once. The CPU time read
    at each stop (:func:`process_cpu_seconds`) gives what a step cost. A step the process
    times itself may or may not include the stop before it (it starts its clock right
    after printing: before the stop, or, when the driver's wake-up preempts it, after the
    resume), so :meth:`step` returns the time stopped and the wall time since the resume:
    see :func:`running_seconds`."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            ["taskset", "-c", LOAD_CORE, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env=env,
        )
        _live.add(self.proc)
        self.output: list[str] = []
        self.cpu = 0.0
        self.stopped_at: float | None = None

    def step(self, timeout: float = 300) -> tuple[str, float, float, float]:
        """Resume (or, the first time, let it start) and wait for its next marked line;
        returns (the line, CPU seconds since the last stop, seconds it was stopped, wall
        seconds from the resume to the line)."""
        stopped = 0.0
        resumed = time.perf_counter()
        if self.stopped_at is not None:
            stopped = resumed - self.stopped_at
            os.killpg(self.proc.pid, signal.SIGCONT)
        timer = threading.Timer(timeout, lambda: _kill(self.proc))
        timer.start()
        try:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                if line.startswith(MARKER):
                    os.killpg(self.proc.pid, signal.SIGSTOP)
                    self.stopped_at = time.perf_counter()
                    cpu = process_cpu_seconds(self.proc.pid)
                    spent, self.cpu = cpu - self.cpu, cpu
                    return line, spent, stopped, self.stopped_at - resumed
        finally:
            timer.cancel()
        raise RuntimeError("exited before its next result: " + "".join(self.output[-5:])[-400:])

    def stop(self) -> None:
        _kill(self.proc)


def running_seconds(elapsed: float, stopped: float, since_resume: float) -> float:
    """How long a step timed by the process (ELAPSED) really ran: if its clock took in the
    stop before it (ELAPSED longer than the wall time SINCE_RESUME), without the STOPPED
    time; else ELAPSED as it is. Stops last a whole step of the other process (0.1 s or
    more), far longer than the driver's reaction to a line, so the two cases stand apart."""
    return elapsed - stopped if elapsed > since_resume else elapsed
