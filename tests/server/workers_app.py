"""A server run by ``run_workers`` for tests/server/test_workers.py (a script, not a test).

``python workers_app.py WORKERS GRACE [broken]`` prints ``listening PORT`` once every
worker listens and serves until SIGTERM. ``Pid`` answers the worker's pid;
``Slow`` streams the pid at once, then again after the requested seconds.
``broken``: the factory raises (the workers cannot start).
"""

from __future__ import annotations

import logging
import os
import sys

import trio

from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServicerContext, WorkerBackoff, run_workers

PID = raw_method("/test.Workers/Pid", Cardinality.UNARY_UNARY)
SLOW = raw_method("/test.Workers/Slow", Cardinality.UNARY_STREAM)


async def pid(request: bytes, context: ServicerContext) -> bytes:
    return str(os.getpid()).encode()


async def slow(request: bytes, context: ServicerContext) -> None:
    await context.send(str(os.getpid()).encode())
    await trio.sleep(float(request.decode()))
    await context.send(b"done")


def make_server() -> Server:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    return Server([MethodHandler(method=PID, func=pid), MethodHandler(method=SLOW, func=slow)])


def broken_server() -> Server:
    raise RuntimeError("this worker cannot start")


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    workers, grace = int(sys.argv[1]), float(sys.argv[2])
    broken = sys.argv[3:] == ["broken"]
    return run_workers(
        broken_server if broken else make_server,
        workers=workers,
        grace=grace,
        backoff=WorkerBackoff(initial=0.2, maximum=2.0),
        on_listening=lambda port: print(f"listening {port}", flush=True),
    )


if __name__ == "__main__":
    raise SystemExit(main())
