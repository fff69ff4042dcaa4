"""Soak the streaming service: every RPC from many client tasks, with cancels and disconnects.

    .venv/bin/python bench/soak.py [--minutes 10] [--tasks 50] [--svg soak.svg]

Starts ``puregrpc-streaming serve`` (its own process, a temporary data
directory, a free loopback port, a small dataset), then runs ``--tasks``
client tasks for the duration. Each task loops over a random mix of all ten
RPCs on a channel of its own, and at random:

* cancels a call part-way (a trio cancel scope around it),
* gives a call a deadline too short to make (DEADLINE_EXCEEDED expected),
* drops its channel in the middle of a call and opens a new one (abrupt
  disconnect: the server sees the connection vanish with streams open).

Data is checked as it goes: every completed upload is downloaded again and
its sha256 compared with the one computed while sending; every SyncData write
is read back with GetData; CollectMetrics and BatchProcess answers must count
what was sent. The server's RSS and open file descriptors are sampled every
second; a table is printed every ``--report-every`` seconds, and an SVG plot
of both is written with ``--svg``.

Passes (exit 0) when no data was lost or corrupted, no call failed in a way
its own fault does not explain, and RSS and fds after the warm-up (the first
fifth of the run) grew by less than ``--max-growth`` (5%).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import trio

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

#: Outcomes a call can have because of what the soak did to it.
EXPECTED = {StatusCode.CANCELLED, StatusCode.DEADLINE_EXCEEDED}
#: The call made with a deadline too short to be met, usually.
SHORT_DEADLINE = "GetData (short deadline)"


@dataclass
class Ledger:
    """What the soak did and what it found."""

    calls: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    uploads_verified: int = 0
    writes_verified: int = 0
    disconnects: int = 0

    def failed(self, rpc: str, error: RpcError) -> None:
        """Record a call's error: expected (the soak caused it) or not."""
        self.outcomes[error.code.name] += 1
        # The server's per-caller chat rate limit is an answer, not a fault:
        # the soak's 50 tasks chat faster than one caller may.
        rate_limited = rpc == "Chat" and error.code is StatusCode.RESOURCE_EXHAUSTED
        # A short-deadline call the server answered in time gets the key's
        # true answer: the key is missing on purpose.
        answered = rpc == SHORT_DEADLINE and error.code is StatusCode.NOT_FOUND
        if (
            error.code not in EXPECTED
            and not rate_limited
            and not answered
            and len(self.unexpected) < 50
        ):
            self.unexpected.append(f"{rpc}: {error.code.name}: {error.details}")


@dataclass
class Sample:
    """One second of the server's resources."""

    at: float
    rss: int
    fds: int


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Client:
    """One soak task: a channel of its own, a random RPC per step."""

    def __init__(self, index: int, target: str, ledger: Ledger, rng: random.Random) -> None:
        self.index = index
        self.target = target
        self.ledger = ledger
        self.rng = rng
        self.sequence = 0

    async def run(self, until: float) -> None:
        while trio.current_time() < until:
            async with Channel(self.target) as channel:
                stub = StreamingServiceStub(channel)
                for _ in range(self.rng.randint(5, 30)):
                    if trio.current_time() >= until:
                        return
                    if self.rng.random() < 0.03:
                        # Abrupt disconnect: the channel goes with a call open.
                        self.ledger.disconnects += 1
                        with trio.move_on_after(self.rng.uniform(0.001, 0.05)):
                            await self._watch(stub, 10.0)
                        break
                    await self._step(stub)

    async def _step(self, stub: StreamingServiceStub) -> None:
        rpc, operation = self.rng.choice(
            [
                ("UploadFile+DownloadFile", self._upload_and_download),
                ("SyncData+GetData", self._sync_and_read),
                ("CollectMetrics", self._metrics),
                ("BatchProcess", self._batch),
                ("ListLargeDataset", self._list),
                ("InteractiveQuery", self._query),
                ("Chat", self._chat),
                ("WatchEvents", lambda s: self._watch(s, 0.2)),
                (SHORT_DEADLINE, self._short_deadline),
            ]
        )
        self.ledger.calls[rpc] += 1
        cancel_after = self.rng.uniform(0.001, 0.05) if self.rng.random() < 0.1 else math.inf
        try:
            with trio.move_on_after(cancel_after) as scope:
                await operation(stub)
            self.ledger.outcomes["cancelled by the soak" if scope.cancelled_caught else "OK"] += 1
        except RpcError as error:
            self.ledger.failed(rpc, error)

    def _name(self) -> str:
        self.sequence += 1
        return f"t{self.index}-{self.sequence}"

    async def _upload_and_download(self, stub: StreamingServiceStub) -> None:
        content = self.rng.randbytes(self.rng.randint(1, 256 * 1024))
        name = self._name()
        digest = hashlib.sha256(content).hexdigest()

        async def chunks():  # type: ignore[no-untyped-def]
            for offset in range(0, len(content), 64 * 1024):
                yield pb.FileChunk(
                    content=content[offset : offset + 64 * 1024],
                    offset=offset,
                    total_size=len(content),
                    filename=f"{name}.bin",
                )

        uploaded = await stub.UploadFile(chunks(), timeout=30)
        if uploaded.size != len(content):
            self.ledger.corrupt.append(f"upload {name}: size {uploaded.size} != {len(content)}")
            return
        received = hashlib.sha256()
        with trio.CancelScope(shield=True):  # a completed upload is always verified
            async for chunk in stub.DownloadFile(
                pb.DownloadRequest(file_id=uploaded.file_id), timeout=30
            ):
                received.update(chunk.content)
        if received.hexdigest() != digest:
            self.ledger.corrupt.append(f"upload {name}: sha256 differs on download")
        else:
            self.ledger.uploads_verified += 1

    async def _sync_and_read(self, stub: StreamingServiceStub) -> None:
        key = f"soak-{self._name()}"
        value = self.rng.randbytes(self.rng.randint(1, 512))
        call = stub.SyncData(timeout=10)
        answer: pb.SyncResponse | None = None
        async with call:
            await call.send(pb.SyncRequest(key=key, value=value, base_version=0, change_id=key))
            async for pushed in call:
                # Other clients' changes are pushed too (CHANGE): wait for ours.
                if pushed.change_id == key and pushed.kind != pb.SyncResponse.CHANGE:
                    answer = pushed
                    break
            await call.done_writing()
        if answer is None or answer.kind != pb.SyncResponse.ACK:
            kind = "nothing" if answer is None else pb.SyncResponse.Kind.Name(answer.kind)
            self.ledger.corrupt.append(f"sync {key}: {kind} instead of ACK")
            return
        with trio.CancelScope(shield=True):  # an acknowledged write is always read back
            stored = await stub.GetData(pb.GetDataRequest(key=key), timeout=10)
        if stored.value != value:
            self.ledger.corrupt.append(f"sync {key}: GetData returned other bytes")
        else:
            self.ledger.writes_verified += 1

    async def _metrics(self, stub: StreamingServiceStub) -> None:
        count = self.rng.randint(1, 200)
        metrics = [pb.Metric(name=f"soak_{i % 5}", value=float(i)) for i in range(count)]
        summary = await stub.CollectMetrics(metrics, timeout=10)
        if summary.total_count != count:
            self.ledger.corrupt.append(f"metrics: {summary.total_count} counted of {count}")

    async def _batch(self, stub: StreamingServiceStub) -> None:
        items = [
            pb.ProcessRequest(item_id=f"i{i}", operation="sha256", payload=b"%d" % i)
            for i in range(self.rng.randint(1, 50))
        ]
        answer = await stub.BatchProcess(items, timeout=10)
        if answer.succeeded != len(items):
            self.ledger.corrupt.append(f"batch: {answer.succeeded} of {len(items)} succeeded")

    async def _list(self, stub: StreamingServiceStub) -> None:
        rows = 0
        async for _ in stub.ListLargeDataset(pb.ListRequest(page_size=100), timeout=10):
            rows += 1
            if rows >= self.rng.randint(1, 300):
                break  # leaving the loop cancels the rest of the stream

    async def _query(self, stub: StreamingServiceStub) -> None:
        call = stub.InteractiveQuery(timeout=10)
        async with call:
            await call.send(pb.QueryRequest(query="SELECT count(*) FROM dataset", max_rows=10))
            async for answer in call:
                if answer.complete or answer.error:
                    break
            await call.done_writing()

    async def _chat(self, stub: StreamingServiceStub) -> None:
        room = f"room-{self.rng.randint(0, 4)}"
        call = stub.Chat(metadata=[("user-id", f"soak-{self.index}"), ("room-id", room)])
        async with call:
            for n in range(self.rng.randint(1, 5)):
                await call.send(pb.ChatMessage(room_id=room, content=f"message {n}"))
            with trio.move_on_after(0.2):
                async for _ in call:
                    pass

    async def _watch(self, stub: StreamingServiceStub, seconds: float) -> None:
        with trio.move_on_after(seconds):
            async for _ in stub.WatchEvents(pb.WatchRequest()):
                pass

    async def _short_deadline(self, stub: StreamingServiceStub) -> None:
        await stub.GetData(pb.GetDataRequest(key="missing-on-purpose"), timeout=0.0001)


def _svg(samples: list[Sample], path: Path) -> None:
    """Two lines, RSS (MiB) and open fds, over time: plain SVG, no plotting library."""
    width, height, pad = 800, 300, 40
    duration = max(s.at for s in samples) or 1.0

    def line(values: list[float], colour: str) -> str:
        top = max(values) * 1.1 or 1.0
        points = " ".join(
            f"{pad + (s.at / duration) * (width - 2 * pad):.1f},"
            f"{height - pad - (v / top) * (height - 2 * pad):.1f}"
            for s, v in zip(samples, values, strict=True)
        )
        return f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'

    rss = [s.rss / 2**20 for s in samples]
    fds = [float(s.fds) for s in samples]
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<rect width="100%" height="100%" fill="white"/>'
        f'<text x="{pad}" y="20" font-family="sans-serif" font-size="13">'
        f"server RSS (blue, max {max(rss):.1f} MiB) and open fds (orange, max {max(fds):.0f})"
        f" over {duration:.0f} s</text>"
        f"{line(rss, '#1f77b4')}{line(fds, '#ff7f0e')}"
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        f'stroke="black"/></svg>\n'
    )


def _growth(samples: list[Sample], attribute: str, warm_up: float, *, mean: bool = False) -> float:
    """Growth after the warm-up: the median of the last fifth of the samples over
    the median of the first fifth (``mean``: the old figure, means of tenths).

    Medians of fifths, because RSS swings by a sixth second to second with the
    uploads and downloads in flight (measured: 60-80 MiB within a minute); the
    mean of a tenth (a minute of a 10-minute run) followed the swings, and
    the criterion measured which second the run happened to end on.
    """
    after = [getattr(s, attribute) for s in samples if s.at >= warm_up]
    if len(after) < 10:
        return 0.0
    if mean:
        tenth = max(1, len(after) // 10)
        first, last = sum(after[:tenth]) / tenth, sum(after[-tenth:]) / tenth
    else:
        fifth = max(1, len(after) // 5)
        first, last = statistics.median(after[:fifth]), statistics.median(after[-fifth:])
    return (last - first) / first if first else 0.0


async def _soak(args: argparse.Namespace, target: str, pid: int) -> tuple[Ledger, list[Sample]]:
    ledger = Ledger()
    samples: list[Sample] = []
    start = trio.current_time()
    until = start + args.minutes * 60
    rng = random.Random(args.seed)

    async def sample() -> None:
        next_report = args.report_every
        print(f"{'time':>6} {'RSS MiB':>8} {'fds':>5} {'calls':>7} {'ok':>6} {'unexpected':>10}")
        while True:
            now = trio.current_time() - start
            samples.append(Sample(now, _rss(pid), _fds(pid)))
            if now >= next_report:
                next_report += args.report_every
                print(
                    f"{now:6.0f} {samples[-1].rss / 2**20:8.1f} {samples[-1].fds:5d} "
                    f"{sum(ledger.calls.values()):7d} {ledger.outcomes['OK']:6d} "
                    f"{len(ledger.unexpected):10d}",
                    flush=True,
                )
            await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sample)
        # Bounded: every task stops at ``until``; a call cannot outlast it by
        # more than its own deadline, and the whole run by a minute.
        with trio.fail_after(args.minutes * 60 + 60):
            async with trio.open_nursery() as clients:
                for index in range(args.tasks):
                    client = Client(index, target, ledger, random.Random(rng.random()))
                    clients.start_soon(client.run, until)
        nursery.cancel_scope.cancel()
    return ledger, samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--report-every", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--svg", type=Path, help="write the RSS/fds plot here")
    parser.add_argument("--max-growth", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rows", type=int, default=20_000, help="the server's dataset size")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument of the server's command line (repeatable)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="puregrpc-soak-") as data:
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "puregrpc_streaming", "serve", "--port", "0"),
                *("--data-dir", data, "--dataset-rows", str(args.rows), "--log-level", "ERROR"),
                *args.server_arg,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            first = server.stdout.readline()
            if not first.startswith("listening on "):
                print(f"error: the server did not start: {first!r}", file=sys.stderr)
                return 2
            target = first.removeprefix("listening on ").strip()
            started = time.monotonic()
            ledger, samples = trio.run(_soak, args, target, server.pid)
            elapsed = time.monotonic() - started
        finally:
            server.terminate()
            server.wait(30)
    warm_up = args.minutes * 60 / 5
    rss_growth = _growth(samples, "rss", warm_up)
    fd_growth = _growth(samples, "fds", warm_up)
    if args.svg:
        _svg(samples, args.svg)
    print(f"\n{sum(ledger.calls.values())} calls in {elapsed:.0f} s from {args.tasks} tasks")
    print("calls:", dict(sorted(ledger.calls.items())))
    print("outcomes:", dict(sorted(ledger.outcomes.items())))
    print(
        f"verified: {ledger.uploads_verified} uploads (sha256), "
        f"{ledger.writes_verified} writes (read back); {ledger.disconnects} abrupt disconnects"
    )
    print(
        f"after warm-up: RSS {rss_growth:+.1%}, fds {fd_growth:+.1%} (medians of fifths; "
        f"means of tenths: RSS {_growth(samples, 'rss', warm_up, mean=True):+.1%}, "
        f"fds {_growth(samples, 'fds', warm_up, mean=True):+.1%})"
    )
    rss = [s.rss for s in samples if s.at >= warm_up]
    if rss:
        print(f"RSS after warm-up: min {min(rss) / 2**20:.1f}, max {max(rss) / 2**20:.1f} MiB")
    for line in ledger.corrupt[:20]:
        print("LOST OR CORRUPT:", line)
    for line in ledger.unexpected[:20]:
        print("UNEXPECTED:", line)
    passed = (
        not ledger.corrupt
        and not ledger.unexpected
        and rss_growth < args.max_growth
        and fd_growth < args.max_growth
        and ledger.uploads_verified > 0
        and ledger.writes_verified > 0
    )
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
