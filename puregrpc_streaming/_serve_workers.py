"""``serve --workers N``: N server processes on one port, supervised.

The process that runs ``serve`` supervises (:func:`puregrpc.server.supervise_workers`);
each worker runs :func:`~.server.serve` with the same configuration, listening
with ``SO_REUSEPORT`` on the port the supervisor reserved. The workers share
the data directory, as any two instances may (per-instance temporary names,
event ids handed out by the shared log, :mod:`.backends.instances`). With the
embedded event bus, each worker fans out live only the events published
through it (others' are in the log, for resumes); the Redis bus
(``--event-bus redis``) delivers every event to every worker's watchers.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import replace

import trio

from puregrpc.server import WorkerSlot, supervise_workers

from ._cli_serve import ServeCommand
from ._client_common import unwrap_group
from .logs import configure_logging
from .memory import tune_malloc
from .server import serve

__all__ = ["serve_workers"]


async def serve_workers(
    command: ServeCommand, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run ``command.workers`` worker processes until cancelled, then drain them.

    ``task_status.started("HOST:PORT")`` once every worker listens.
    """
    config = command.config
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            functools.partial(
                supervise_workers,
                functools.partial(serve_worker, command),
                workers=command.workers,
                host=config.host,
                port=config.port,
                # A worker's stop: the grace, then a few seconds to close.
                stop_timeout=config.shutdown_grace + 10.0,
            )
        )
        host = f"[{config.host}]" if ":" in config.host else config.host
        task_status.started(f"{host}:{port}")


def serve_worker(command: ServeCommand, slot: WorkerSlot) -> None:
    """One worker process: serve ``command``'s configuration on the slot's port."""
    configure_logging(sys.stderr, level=command.log_level, json_lines=command.log_format == "json")
    # Each worker is a process of its own: its allocator is tuned like the server's.
    tune_malloc(command.malloc_arenas)
    try:
        trio.run(_serve_worker, command, slot)
    except BaseException as raised:
        exc = unwrap_group(raised)
        if not isinstance(exc, OSError | ValueError):
            raise
        # What serve alone would print (a busy port, Redis unreachable, ...).
        print(f"error: worker {slot.index}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


async def _serve_worker(command: ServeCommand, slot: WorkerSlot) -> None:
    config = replace(command.config, port=slot.port, reuse_port=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, config)
        slot.ready()
        await slot.stop_requested()
        nursery.cancel_scope.cancel()  # serve() stops gracefully when cancelled
