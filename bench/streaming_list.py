"""ListLargeDataset speed: rows/s of the whole table, and a filter that matches nothing.

    .venv/bin/python bench/streaming_list.py [--rows N] [--page-size N] [--repeats N] [--profile]

Starts ``puregrpc-streaming serve`` (a subprocess, open mode, a temporary
data directory seeded with ``--rows`` rows, default the demo's 1,000,000),
then with the puregrpc client in this process streams the whole table in
pages of ``--page-size`` (default 100, as the demo does) ``--repeats``
times, and lists with a filter no row matches (``category = "none"``).
Prints rows/s (the median of the repeats) and the seconds of the empty
filtered list. ``--profile`` runs the server under cProfile and prints
its top functions when it stops.
"""

from __future__ import annotations

import argparse
import statistics
import time

import trio
from streaming_server import cpu_seconds, served

from puregrpc.client import Channel
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub


async def list_all(stub: StreamingServiceStub, page_size: int, filter_text: str = "") -> int:
    """Rows received for one full listing."""
    received = 0
    request = pb.ListRequest(page_size=page_size, filter=filter_text)
    async for _ in stub.ListLargeDataset(request, timeout=600):
        received += 1
    return received


async def run(address: str, rows: int, page_size: int, repeats: int, server_pid: int) -> None:
    """The measurements against the server at ``address`` (process ``server_pid``)."""
    async with Channel(address) as channel:
        stub = StreamingServiceStub(channel)
        rates = []
        for _ in range(repeats):
            started = time.perf_counter()
            cpu = time.process_time(), cpu_seconds(server_pid)
            received = await list_all(stub, page_size)
            elapsed = time.perf_counter() - started
            client_cpu = time.process_time() - cpu[0]
            server_cpu = cpu_seconds(server_pid) - cpu[1]
            assert received == rows, (received, rows)
            rates.append(received / elapsed)
            print(
                f"  {received:,} rows in {elapsed:.2f} s: {received / elapsed:,.0f} rows/s "
                f"(CPU s: client {client_cpu:.2f}, server {server_cpu:.2f})"
            )
        started = time.perf_counter()
        none = await list_all(stub, page_size, 'category = "none"')
        empty = time.perf_counter() - started
        assert none == 0
        print(f"ListLargeDataset, pages of {page_size}: {statistics.median(rates):,.0f} rows/s")
        print(f'filter matching nothing (category = "none"): {empty:.3f} s for {rows:,} rows')


def main() -> None:
    """Parse the arguments, start the server, measure, stop it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with served(rows=args.rows, profile=args.profile) as server:
        trio.run(run, server.address, args.rows, args.page_size, args.repeats, server.process.pid)


if __name__ == "__main__":
    main()
