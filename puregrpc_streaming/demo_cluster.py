"""Two instances behind nginx: ``python -m puregrpc_streaming.demo_cluster``, ``make demo-cluster``.

Starts Debian's redis-server and PostgreSQL, two ``puregrpc-streaming serve``
instances (A and B) sharing them (``--redis-url``, ``--postgres-url``) and one
data directory, and nginx balancing calls over both (``grpc_pass``, the
config of :mod:`puregrpc_streaming.cluster`), all on free loopback ports in
one temporary directory. Then, as authenticated users:

1. a watcher connected to A sees a file uploaded through B;
2. ann on A and bob on B chat in one room;
3. a SyncData change through A, then a conflicting one through B;
4. calls through nginx, each answered by A or B in turn (the instance is
   the ``x-upstream`` header nginx adds);
5. a download through nginx whose instance is killed with SIGKILL at 40%:
   the client helper reconnects through nginx, resumes from its offset on
   the other instance and verifies the sha256;
6. a watch through nginx resumed from the first event's id replays every
   event since, the dead instance's included: nothing lost;
7. with both instances gone, nginx answers UNAVAILABLE.

Everything is stopped and removed at the end, also after a failure or
Ctrl-C. ``--install`` first installs the Debian packages that are missing
(redis-server, postgresql, nginx) with apt-get, as ``.ci/run`` does.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import trio

from puregrpc import RpcError

from .client_helpers import (
    RetryPolicy,
    TransferError,
    download_file,
    open_channel,
    unwrap_group,
    upload_file,
)
from .cluster import (
    LocalPostgres,
    LocalRedis,
    Nginx,
    NginxError,
    NginxSettings,
    ServiceInstance,
    UpstreamRecorder,
    missing_packages,
    run_instance,
)
from .demo import write_tokens
from .progress import Progress, format_bytes
from .protos import streaming_pb2 as pb
from .protos.streaming_puregrpc import StreamingServiceStub

DEFAULT_SIZE_MIB = 64
#: Rows each instance's dataset has (PostgreSQL seeds its table once).
ROWS = 10_000
#: The download is cut when this share of it has arrived.
KILL_AT = 0.4


def say(text: str = "") -> None:
    """One line of the transcript."""
    print(text, flush=True)


def install_missing() -> None:
    """apt-get install the Debian packages the demo needs and lacks (root, or ``sudo -n``)."""
    missing = missing_packages()
    if not missing:
        return
    say(f"installing Debian packages: {' '.join(missing)}")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        done = subprocess.run([*sudo, *command], env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed (status {done.returncode})")


# ----------------------------------------------------------------- cluster


class Demo:
    """The running cluster: instances by name, stubs per user and per place."""

    def __init__(
        self,
        work: Path,
        tokens: dict[str, str],
        nginx: Nginx,
        instances: dict[str, ServiceInstance],
    ) -> None:
        self.work = work
        self.tokens = tokens
        self.nginx = nginx
        #: "A" and "B".
        self.instances = instances
        #: Which instance nginx sent each call of :meth:`through` to.
        self.recorder = UpstreamRecorder()

    def name_of(self, address: str) -> str:
        """ "A" or "B" for an instance's address."""
        for name, instance in self.instances.items():
            if instance.address == address:
                return name
        return address or "nginx itself"

    @asynccontextmanager
    async def on(self, place: str, user: str) -> AsyncIterator[StreamingServiceStub]:
        """A stub calling instance ``place`` ("A", "B") or "nginx", as ``user``."""
        if place == "nginx":
            address, interceptors = self.nginx.address, [self.recorder]
        else:
            address, interceptors = self.instances[place].address, []
        async with open_channel(
            address, token=self.tokens[user], interceptors=interceptors
        ) as channel:
            yield StreamingServiceStub(channel)


async def _started(stack: AsyncExitStack, server: LocalRedis | LocalPostgres) -> None:
    await trio.to_thread.run_sync(server.start)
    stack.callback(server.stop)


# ------------------------------------------------------------------- steps


async def step_watch_and_upload(demo: Demo, size: int) -> tuple[str, str, str]:
    """1: ops watches on A; alice uploads through B. Returns (file id, sha256, event id)."""
    source = demo.work / "report.bin"
    data = os.urandom(size)
    await trio.Path(source).write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    del data
    async with demo.on("A", "ops") as on_a, demo.on("B", "alice") as on_b:
        with trio.fail_after(60):
            request = pb.WatchRequest(event_types=["file.uploaded"])
            async with on_a.WatchEvents(request) as watch:
                await watch.initial_metadata()
                say("  ops watches file.uploaded on A")
                began = time.perf_counter()
                uploaded = await upload_file(on_b, source)
                took = time.perf_counter() - began
                say(
                    f"  alice uploads {source.name} ({format_bytes(size)}) to B: "
                    f"file {uploaded.file_id}, {size / took / 1e6:,.0f} MB/s"
                )
                event = await watch.receive()
                watch.cancel()
    assert event is not None
    say(f"  [watch on A] {event.id} {event.type} {event.payload.decode()}")
    say("  -> the event published by B reached A's watcher through Redis")
    return uploaded.file_id, sha256, event.id


async def step_chat(demo: Demo) -> None:
    """2: ann on A and bob on B, one room."""
    async with (
        demo.on("A", "ann") as on_a,
        demo.on("B", "bob") as on_b,
        on_a.Chat(metadata={"room-id": "lobby"}) as ann,
    ):
        with trio.fail_after(20):
            await ann.receive()  # her own join notice: subscribed
            async with on_b.Chat(metadata={"room-id": "lobby"}) as bob:
                await bob.receive()
                await bob.send(pb.ChatMessage(content="hello from B"))
                for _ in range(2):
                    heard = await ann.receive()
                    assert heard is not None
                    say(f"  [ann on A] {heard.user_id}: {heard.content}")
                await ann.send(pb.ChatMessage(content="hi bob, this is A"))
                while (reply := await bob.receive()) is not None and reply.user_id != "ann":
                    pass
                assert reply is not None
                say(f"  [bob on B] {reply.user_id}: {reply.content}")
                await bob.done_writing()
            await ann.done_writing()


async def _sync(stub: StreamingServiceStub, value: bytes, base: int) -> pb.SyncResponse:
    async with stub.SyncData() as call:
        await call.send(pb.SyncRequest(key="color", value=value, base_version=base, change_id="1"))
        async for answer in call:
            if answer.kind != pb.SyncResponse.CHANGE:
                await call.done_writing()
                return answer
    raise RuntimeError("SyncData ended without an answer")


async def step_sync_conflict(demo: Demo) -> None:
    """3: a change through A, then one through B from the same base version."""
    kind = pb.SyncResponse.Kind.Name
    async with demo.on("A", "alice") as on_a, demo.on("B", "ann") as on_b:
        with trio.fail_after(20):
            first = await _sync(on_a, b"blue", 0)
            say(f"  alice on A: set color=blue (base 0) -> {kind(first.kind)} v{first.version}")
            second = await _sync(on_b, b"green", 0)
            say(
                f"  ann on B:   set color=green (base 0) -> {kind(second.kind)}: "
                f"color is {second.value.decode()!r} at version {second.version}"
            )
    if second.kind != pb.SyncResponse.CONFLICT:
        raise RuntimeError("the second change did not conflict")
    say("  -> one compare-and-set on PostgreSQL, whichever instance takes the change")


async def step_balance(demo: Demo) -> None:
    """4: four GetData calls through nginx, answered in turn."""
    async with demo.on("nginx", "ops") as stub:
        with trio.fail_after(20):
            for _ in range(4):
                got = await stub.GetData(pb.GetDataRequest(key="color"), timeout=10)
                served = demo.name_of(demo.recorder.calls[-1].served_by)
                say(f"  GetData color -> {got.value.decode()!r} v{got.version}, served by {served}")


class _KillMidway(Progress):
    """Download progress that SIGKILLs the serving instance once ``at`` bytes arrived."""

    def __init__(self, demo: Demo, at: int) -> None:
        super().__init__("  download", stream=sys.stdout, tty=False)
        self._demo = demo
        self._at = at
        self.killed: ServiceInstance | None = None

    def advance(self, count: int) -> None:
        super().advance(count)
        if self.killed is None and self.done >= self._at:
            name = self._demo.name_of(self._demo.recorder.calls[-1].served_by)
            self.killed = self._demo.instances[name]
            self.killed.kill()
            say(f"  kill -9 instance {name} (pid {self.killed.pid}) at {format_bytes(self.done)}")


async def step_download_and_kill(demo: Demo, file_id: str, sha256: str, size: int) -> str:
    """5: download through nginx, kill the serving instance, resume. Returns who died."""
    dest = demo.work / "copy.bin"
    progress = _KillMidway(demo, int(size * KILL_AT))

    def retrying(error: RpcError, delay: float) -> None:
        say(f"  the stream failed: {error.code.name}: {error.details}")
        say(f"  reconnecting through nginx in {delay:.2f} s")

    async with demo.on("nginx", "alice") as stub:
        with trio.fail_after(120):
            result = await download_file(
                stub,
                file_id,
                dest,
                expected_sha256=sha256,
                progress=progress,
                retry=RetryPolicy(initial_backoff=0.1),
                on_retry=retrying,
            )
    attempts = [call for call in demo.recorder.calls if call.method == "DownloadFile"]
    for number, call in enumerate(attempts, 1):
        assert isinstance(call.request, pb.DownloadRequest)
        tried = ", ".join(demo.name_of(a.strip()) for a in call.upstream.split(","))
        say(
            f"  attempt {number}: from offset {call.request.start_offset:,}, "
            f"nginx tried {tried}; served by {demo.name_of(call.served_by)}"
        )
    if progress.killed is None or not result.checksum_verified or result.sha256 != sha256:
        raise RuntimeError("the download was not interrupted, or its checksum is wrong")
    say(
        f"  {format_bytes(result.size)} in {result.transfer_time:.1f} s, "
        f"{result.reconnects} reconnect, sha256 {result.sha256[:16]}... verified"
    )
    return progress.killed.name


async def step_replay(demo: Demo, first_id: str) -> int:
    """6: a watch through nginx from the first event id replays everything since."""
    async with demo.on("nginx", "ops") as stub:
        # A marker event, published now, ends the replay.
        await stub.CollectMetrics([pb.Metric(name="demo.done", value=1.0)], timeout=10)
        seen: dict[str, int] = {}
        with trio.fail_after(20):
            metadata = {"last-event-id": first_id}
            async with stub.WatchEvents(pb.WatchRequest(), metadata=metadata) as watch:
                async for event in watch:
                    if event.type == "heartbeat":
                        continue
                    seen[event.type] = seen.get(event.type, 0) + 1
                    if event.type == "metrics.collected":
                        watch.cancel()
                        break
        served = demo.name_of(demo.recorder.calls[-1].served_by)
    kinds = ", ".join(f"{name} x{count}" for name, count in sorted(seen.items()))
    say(f"  replayed by {served} after {first_id}: {kinds}")
    say("  (those published through the killed instance included: the log is Redis's)")
    return sum(seen.values())


async def step_all_down(demo: Demo, survivor: ServiceInstance) -> None:
    """7: the last instance stops (SIGTERM); a call through nginx."""
    survivor.process.send_signal(signal.SIGTERM)
    with trio.fail_after(20):
        await survivor.process.wait()
    say(f"  instance {survivor.name} stopped (SIGTERM, status {survivor.process.returncode})")
    async with demo.on("nginx", "ops") as stub:
        try:
            with trio.fail_after(20):
                await stub.GetData(pb.GetDataRequest(key="color"), timeout=10)
        except RpcError as exc:
            say(f"  GetData through nginx -> {exc.code.name}: {exc.details}")
        else:
            raise RuntimeError("a call succeeded with every instance gone")


# -------------------------------------------------------------------- main


async def run_demo(work: Path, size: int) -> None:
    """Start everything under ``work``, run the steps, stop everything (whatever happens)."""
    tokens = write_tokens(work / "tokens.txt")
    async with AsyncExitStack() as stack:
        redis, postgres = LocalRedis(work / "redis"), LocalPostgres(work / "postgres")
        await _started(stack, redis)
        say(f"redis-server on {redis.url}")
        await _started(stack, postgres)
        say(f"PostgreSQL on {postgres.url}")
        shared = ("--redis-url", redis.url, "--postgres-url", postgres.url)
        options = [*shared, "--tokens", str(work / "tokens.txt"), "--dataset-rows", str(ROWS)]
        options += ["--log-level", "ERROR"]
        instances: dict[str, ServiceInstance] = {}
        for name in ("A", "B"):
            instance = await stack.enter_async_context(run_instance(name, work / "data", *options))
            instances[name] = instance
            say(f"instance {name}: puregrpc-streaming serve on {instance.address}")
        settings = NginxSettings(upstreams=tuple(i.address for i in instances.values()))
        nginx = Nginx(settings, work / "nginx")
        await trio.to_thread.run_sync(nginx.start)
        stack.callback(nginx.stop)
        say(f"nginx on {nginx.address}: grpc_pass over A and B ({nginx.config_path})")
        demo = Demo(work, tokens, nginx, instances)
        say("  data directory shared by A and B; events and chat on Redis; records on PostgreSQL")

        say("\n1. a watcher on A sees an upload made through B")
        file_id, sha256, first_id = await step_watch_and_upload(demo, size)
        say("\n2. chat across instances: ann on A, bob on B, #lobby")
        await step_chat(demo)
        say("\n3. SyncData conflict across instances")
        await step_sync_conflict(demo)
        say("\n4. through nginx: one call at a time, to A and B in turn")
        await step_balance(demo)
        say(
            f"\n5. through nginx: download {format_bytes(size)}, the serving instance killed at 40%"
        )
        killed = await step_download_and_kill(demo, file_id, sha256, size)
        say("\n6. nothing lost: a watch through nginx resumes from the first event's id")
        await step_replay(demo, first_id)
        (survivor,) = [i for name, i in instances.items() if name != killed]
        say("\n7. no instance left")
        await step_all_down(demo, survivor)
        say("\nstopping nginx, the instances, PostgreSQL and Redis")


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m puregrpc_streaming.demo_cluster",
        description="Two puregrpc-streaming instances on Redis and PostgreSQL behind nginx "
        "(make demo-cluster), everything on loopback in a temporary directory.",
    )
    parser.add_argument("--size-mib", type=int, default=DEFAULT_SIZE_MIB, help="file to transfer")
    parser.add_argument(
        "--install", action="store_true", help="apt-get install what is missing first"
    )
    return parser.parse_args(argv)


async def main(argv: list[str]) -> None:
    """The whole demo: servers, steps, a clean stop."""
    args = _parse_args(argv)
    began = time.perf_counter()
    say("puregrpc cluster demo: two streaming.v1 instances behind nginx")
    if args.install:
        await trio.to_thread.run_sync(install_missing)
    missing = missing_packages()
    if missing:
        raise RuntimeError(f"missing Debian packages: {' '.join(missing)} (make demo-cluster)")
    work = Path(tempfile.mkdtemp(prefix="puregrpc-cluster-demo-"))
    if os.geteuid() == 0:
        os.chmod(work, 0o755)  # PostgreSQL runs as the postgres user: it must reach its directory
    try:
        await run_demo(work, args.size_mib << 20)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))
    removed = not await trio.Path(work).exists()
    say(f"all stopped; {work} removed" if removed else f"could not remove {work}")
    say(f"total time {time.perf_counter() - began:.1f} s")


def run(argv: list[str] | None = None) -> int:
    """Run the demo; return the exit status (1 with one line on a failure, 130 on Ctrl-C)."""
    try:
        trio.run(main, list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        say("interrupted: everything stopped")
        return 130
    except BaseException as raised:
        exc = unwrap_group(raised)
        if isinstance(exc, KeyboardInterrupt):
            say("interrupted: everything stopped")
            return 130
        if isinstance(exc, RpcError | RuntimeError | OSError | TransferError | NginxError):
            print(f"demo-cluster failed: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(run())
