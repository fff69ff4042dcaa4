"""Memory per idle connection and per idle open stream, on a puregrpc server and a grpcio one.

    .venv/bin/python bench/idle_memory.py [--connections 2000] [--streams 10000]

Each server runs in its own process serving ``puregrpc.testing.Echo`` on
127.0.0.1 (the puregrpc ``Server``, and ``grpc.aio.server`` with a generic
handler doing the same); this process is the client (puregrpc channels).
For each server, measured from its ``VmRSS`` in ``/proc``:

* **per connection**: open ``--connections`` channels, one unary call each
  (so the HTTP/2 connection is up and has served a call), wait for the RSS to
  settle; (RSS after - RSS before) / connections;
* **per stream**: on ``--streams / 1000`` fresh connections, open 1,000 bidi
  calls each, send one message on each and read its echo (so every stream has
  a running handler), then hold them all open; (RSS after - before) / streams.

Every phase is bounded in time (``--phase-timeout``). Prints a table and
writes ``bench/results/idle-memory-latest.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import trio

from puregrpc import RpcError
from puregrpc.client import Channel
from puregrpc.testing.protos.echo_pb2 import EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoStub

RESULTS = Path(__file__).resolve().parent / "results"
STREAMS_PER_CONNECTION = 100

PUREGRPC_SERVER = textwrap.dedent(
    """
    import trio
    from puregrpc.server import Server, ServerOptions
    from puregrpc.testing.protos.echo_pb2 import EchoReply
    from puregrpc.testing.protos.echo_puregrpc import EchoServicer
    from puregrpc.wire import ConnectionConfig

    class Echo(EchoServicer):
        async def Unary(self, request, context):
            return EchoReply(message=request.message)

        async def Bidi(self, requests, context):
            async for request in requests:
                yield EchoReply(message=request.message)

    async def main():
        options = ServerOptions(connection=ConnectionConfig(max_concurrent_streams=2000))
        server = Server([Echo()], options=options)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve, "127.0.0.1", 0)
            print(port, flush=True)

    trio.run(main)
    """
)

GRPCIO_SERVER = textwrap.dedent(
    """
    import asyncio
    import grpc
    from puregrpc.testing.protos.echo_pb2 import EchoReply, EchoRequest

    async def unary(request, context):
        return EchoReply(message=request.message)

    async def bidi(requests, context):
        async for request in requests:
            yield EchoReply(message=request.message)

    async def main():
        codecs = dict(
            request_deserializer=EchoRequest.FromString,
            response_serializer=EchoReply.SerializeToString,
        )
        handler = grpc.method_handlers_generic_handler(
            "puregrpc.testing.Echo",
            {
                "Unary": grpc.unary_unary_rpc_method_handler(unary, **codecs),
                "Bidi": grpc.stream_stream_rpc_method_handler(bidi, **codecs),
            },
        )
        server = grpc.aio.server(options=[("grpc.max_concurrent_streams", 2000)])
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(port, flush=True)
        await server.wait_for_termination()

    asyncio.run(main())
    """
)


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _rss(pid: int) -> int:
    """The process's resident set size in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def _settled_rss(pid: int) -> int:
    """The RSS once it stops moving (three samples 0.2 s apart within 1%, at most 5 s)."""
    samples = [_rss(pid)]
    with trio.move_on_after(5):
        while True:
            await trio.sleep(0.2)
            samples.append(_rss(pid))
            last = samples[-3:]
            if len(last) == 3 and max(last) - min(last) <= 0.01 * max(last):
                break
    return samples[-1]


async def _per_connection(target: str, pid: int, count: int) -> dict[str, float]:
    async with trio.open_nursery() as nursery:
        channels: list[Channel] = []
        stop = trio.Event()

        async def hold(ready: trio.Event) -> None:
            async with Channel(target) as channel:
                await EchoStub(channel).Unary(EchoRequest(message="up"), timeout=30)
                channels.append(channel)
                ready.set()
                await stop.wait()

        async def open_some(n: int) -> None:
            for _ in range(n):
                ready = trio.Event()
                nursery.start_soon(hold, ready)
                await ready.wait()

        await open_some(10)  # warm-up: code paths and allocator pools touched
        before = await _settled_rss(pid)
        started = time.monotonic()
        await open_some(count)
        opened_in = time.monotonic() - started
        after = await _settled_rss(pid)
        stop.set()
    return {
        "connections": count,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_connection": (after - before) / count,
        "open_seconds": opened_in,
    }


async def _per_stream(target: str, pid: int, count: int) -> dict[str, float]:
    connections = max(1, count // STREAMS_PER_CONNECTION)
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        opened = 0
        all_open = trio.Event()

        # Streams are opened 50 at a time: a burst of thousands of new
        # streams is what abuse limits are for, not what is measured here.
        opening = trio.Semaphore(50)

        refused = 0

        def settled() -> None:
            if opened + refused == count:
                all_open.set()

        async def hold_stream(stub: EchoStub) -> None:
            nonlocal opened, refused
            call = stub.Bidi()
            async with call:
                try:
                    async with opening:
                        await call.send(EchoRequest(message="s"))
                        assert await call.receive() is not None
                except RpcError:
                    refused += 1  # the server ended the stream: reported, not counted
                    settled()
                    return
                opened += 1
                settled()
                await stop.wait()

        stubs = []
        for _ in range(connections):
            channel = Channel(target)
            await nursery.start(_run_channel, channel, stop)
            stub = EchoStub(channel)
            await stub.Unary(EchoRequest(message="up"), timeout=30)  # the connection is up
            stubs.append(stub)
        before = await _settled_rss(pid)
        started = time.monotonic()
        per = count // connections
        for stub in stubs:
            for _ in range(per):
                nursery.start_soon(hold_stream, stub)
        await all_open.wait()
        opened_in = time.monotonic() - started
        after = await _settled_rss(pid)
        stop.set()
    return {
        "streams": opened,
        "ended_by_server": refused,
        "connections": connections,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_stream": (after - before) / max(1, opened),
        "open_seconds": opened_in,
    }


async def _run_channel(
    channel: Channel,
    stop: trio.Event,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with channel:
        task_status.started()
        await stop.wait()


async def _measure(target: str, pid: int, args: argparse.Namespace) -> dict[str, object]:
    with trio.fail_after(args.phase_timeout):
        connections = await _per_connection(target, pid, args.connections)
    with trio.fail_after(args.phase_timeout):
        streams = await _per_stream(target, pid, args.streams)
    return {"per_connection": connections, "per_stream": streams}


def _measure_server(kind: str, args: argparse.Namespace) -> dict[str, object]:
    """Start ``kind``'s server process, measure it, stop it."""
    source = PUREGRPC_SERVER if kind == "puregrpc" else GRPCIO_SERVER
    server = subprocess.Popen(
        [sys.executable, "-c", source],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_raise_fd_limit,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        result = trio.run(_measure, f"127.0.0.1:{port}", server.pid, args)
    finally:
        server.kill()
        server.wait(10)
    return {"server": kind, **result}


def _report(results: list[dict[str, object]]) -> str:
    lines = [
        "| server | bytes per idle connection | bytes per idle open stream | "
        "RSS after connections | RSS after streams | streams the server ended |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        conn = result["per_connection"]
        stream = result["per_stream"]
        assert isinstance(conn, dict) and isinstance(stream, dict)
        lines.append(
            f"| {result['server']} | {conn['bytes_per_connection']:,.0f} | "
            f"{stream['bytes_per_stream']:,.0f} | {conn['rss_after'] / 2**20:.1f} MiB | "
            f"{stream['rss_after'] / 2**20:.1f} MiB | {stream['ended_by_server']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=10000)
    parser.add_argument("--phase-timeout", type=float, default=300.0)
    parser.add_argument("--only", choices=("puregrpc", "grpcio"))
    args = parser.parse_args()
    _raise_fd_limit()
    kinds = [args.only] if args.only else ["puregrpc", "grpcio"]
    results = [_measure_server(kind, args) for kind in kinds]
    table = _report(results)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "idle-memory-latest.json").write_text(json.dumps(results, indent=2) + "\n")
    header = f"# Idle memory ({args.connections} connections, {args.streams} streams)\n\n"
    (RESULTS / "idle-memory-latest.md").write_text(header + table + "\n")
    return 0


if __name__ == "__main__":
    os.environ.pop("PUREGRPC_TRACE", None)
    raise SystemExit(main())
