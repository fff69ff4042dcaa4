"""The real puregrpc_streaming server, for the streaming-transfer benchmark.

    python puregrpc_streaming_server.py --data-dir DIR [--profile PREFIX] PORT

Runs :func:`puregrpc_streaming.server.serve` (no dataset rows: only the file
RPCs are measured) and prints ``LISTENING PORT`` once bound.

With ``--profile PREFIX`` the event-loop thread runs under cProfile (timed
by the thread's CPU clock), in
segments: each SIGUSR1 writes what was gathered since the previous one to
``PREFIX.N.prof`` (N = 0, 1, ...) and starts afresh, so the driver can cut
out server start-up and profile an upload and a download separately. Only
the event-loop thread is profiled: hashing and file IO run in trio's worker
threads, whose CPU time the driver reads from ``/proc`` instead.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

import trio

from puregrpc_streaming.server import ServeConfig, serve


async def _serve(config: ServeConfig) -> None:
    async with trio.open_nursery() as nursery:
        address = await nursery.start(serve, config)
        print(f"LISTENING {address.rsplit(':', 1)[1]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--profile", default=None, help="cProfile dumps: PREFIX.N.prof")
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    config = ServeConfig(port=args.port, data_dir=args.data_dir, dataset_rows=0)
    if args.profile is None:
        trio.run(_serve, config)
        return

    import cProfile
    import time

    # CPU time of this thread, not wall time: waiting in epoll (for the peer, or
    # for a worker thread sharing the core) is not the event loop's cost.
    profiler = cProfile.Profile(time.thread_time)
    segment = 0

    def next_segment(signum: int, frame: FrameType | None) -> None:
        # dump_stats() disables the profiler first; clear() drops what was dumped.
        nonlocal segment
        profiler.dump_stats(f"{args.profile}.{segment}.prof")
        profiler.clear()
        segment += 1
        profiler.enable()

    # Registered before trio.run: trio's wake-up fd makes the loop notice it promptly.
    signal.signal(signal.SIGUSR1, next_segment)
    profiler.enable()
    try:
        trio.run(_serve, config)
    except KeyboardInterrupt:
        pass
    finally:
        profiler.disable()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
