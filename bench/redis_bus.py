"""The Redis event bus: what the thread bridge costs, and what the bus delivers.

    .venv/bin/python bench/redis_bus.py            # ~10 s; starts its own redis-server

Starts Debian's ``redis-server`` on a free loopback port (no persistence),
then measures, each over ``--events`` appends of a small event:

* ``XADD`` from redis-py's synchronous client, in a plain loop (no trio);
* the same ``XADD`` through ``trio.to_thread.run_sync``, one at a time (the
  bridge the bus uses: its cost per command is the difference);
* ``RedisEventBus.publish`` (the append script, through the bridge), one
  publisher, then 8 concurrent publishers;
* publish-to-delivery latency through the bus's XREAD reader to a local
  subscriber (p50 and p99).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import trio

from puregrpc_streaming.backends.redis_events import RedisSettings, open_redis_event_bus


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is required: apt-get install -y redis-server")
    port = _free_port()
    process = subprocess.Popen(
        [
            *(binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)),
            *("--save", "", "--appendonly", "no"),
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    return process, port


def _per_op_us(seconds: float, count: int) -> str:
    return f"{1e6 * seconds / count:7.1f} us/op  {count / seconds:8.0f} ops/s"


async def measure(port: int, count: int) -> None:
    """Print the figures (see the module docstring)."""
    client = redis.Redis(port=port)
    started = time.perf_counter()
    for n in range(count):
        client.xadd("bench:raw", {"n": n})
    print(f"redis-py XADD, plain loop          {_per_op_us(time.perf_counter() - started, count)}")
    started = time.perf_counter()
    for n in range(count):
        await trio.to_thread.run_sync(client.xadd, "bench:raw", {"n": n})
    print(f"redis-py XADD via trio.to_thread   {_per_op_us(time.perf_counter() - started, count)}")
    client.close()

    settings = RedisSettings(url=f"redis://127.0.0.1:{port}/0", stream="bench:events")
    async with open_redis_event_bus(settings) as bus:
        started = time.perf_counter()
        for n in range(count):
            await bus.publish("bench", {"n": n})
        took = time.perf_counter() - started
        print(f"bus.publish, 1 publisher           {_per_op_us(took, count)}")

        async def publisher(share: int) -> None:
            for n in range(share):
                await bus.publish("bench", {"n": n})

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(publisher, count // 8)
        took = time.perf_counter() - started
        print(f"bus.publish, 8 publishers          {_per_op_us(took, count // 8 * 8)}")

        latencies: list[float] = []
        async with bus.subscribe(types=frozenset({"probe"})) as subscription:
            for n in range(min(count, 500)):
                sent = time.perf_counter()
                await bus.publish("probe", {"n": n})
                await subscription.next()
                latencies.append(time.perf_counter() - sent)
        latencies.sort()
        p50 = statistics.median(latencies) * 1e6
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1e6
        print(f"publish -> delivered (XREAD)       p50 {p50:7.0f} us  p99 {p99:7.0f} us")


def main() -> int:
    """Start redis-server, measure, stop it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        process, port = _start_redis(Path(tmp))
        try:
            trio.run(measure, port, args.events)
        finally:
            process.terminate()
            process.wait(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
