"""Worker processes: one port served by N processes, supervised.

One Python process runs on one core. :func:`run_workers` runs N worker
processes, each a full trio server built by a factory the caller gives, all
accepting on one port; the process that calls it only supervises::

    def make_server() -> Server:          # importable: it runs in each worker
        return Server([GreeterService()])

    if __name__ == "__main__":
        raise SystemExit(run_workers(make_server, port=50051, workers=4))

Theory of operation
-------------------
*The port.* Each worker opens its own listening socket with ``SO_REUSEPORT``
(:mod:`._listen`); the kernel spreads new connections over the workers'
sockets by a hash of their addresses, so the load is shared evenly without
a common accept queue (where whichever process wakes first takes the
connection, usually the same one). A worker that dies closes only its
socket: the connections queued on it but not yet accepted are reset, every
other worker goes on accepting. The supervisor holds one more socket of the
group, bound but never listening (:func:`.reserve_port`): it receives no
connections, but it keeps the port (port 0 is resolved once, here) for the
workers started later.

*The workers.* Each is a ``spawn``-ed :mod:`multiprocessing` process (no
fork of a running trio program and its threads), so the factory and the
worker function must be importable. A worker reports that it listens
through a pipe (:meth:`WorkerSlot.ready`); the same pipe is its lifeline: when
the supervisor is gone, however it ended, the worker's end reads EOF and
the worker stops (:meth:`WorkerSlot.stop_requested`), so no worker outlives
it for long.

*Restarts.* At the first start, a worker that exits before it listens
ends the supervisor (:class:`WorkerStartError`): a busy address or a bad
configuration would only fail again. Later, a worker that exits is started
again after a delay that doubles with each exit in a row
(:class:`WorkerBackoff`), reset once a worker has run
:attr:`WorkerBackoff.stable_after` seconds; every exit and restart is logged.

*Stopping.* Cancelling :func:`supervise_workers` (``run_workers`` does on
SIGTERM or SIGINT) sends SIGTERM to every worker; each stops as
``Server.stop(grace)`` does (GOAWAY, calls in flight get the grace period);
a worker still running ``stop_timeout`` seconds later is killed.

::

    spawn --> starting --ready--> serving --exit--> backoff --> spawn
                 |                                    ^
                 +--exit--> (first start: WorkerStartError; later: backoff)

    cancelled, in any state: SIGTERM, wait, SIGKILL
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import trio

from ._listen import reserve_port
from ._server import Server

__all__ = [
    "WorkerBackoff",
    "WorkerSlot",
    "WorkerStartError",
    "run_workers",
    "supervise_workers",
]

logger = logging.getLogger("puregrpc.server.workers")


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerBackoff:
    """How soon a worker that exited is started again."""

    #: Seconds before the first restart.
    initial: float = 0.1
    #: The longest wait: the delay doubles with each exit in a row up to this.
    maximum: float = 10.0
    #: A worker that ran this many seconds resets the delay to ``initial``.
    stable_after: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"need 0 < initial <= maximum, got {self.initial}, {self.maximum}")


class WorkerStartError(ChildProcessError):
    """A worker exited before it listened, at the first start: it would fail again."""


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """What a worker process is told: which worker it is, where to listen, how to report.

    The worker binds ``host:port`` with ``reuse_port=True``, calls
    :meth:`ready` once it accepts, serves until :meth:`stop_requested`
    returns, then stops gracefully.
    """

    #: 0..N-1: which of the N workers (a restarted worker keeps its index).
    index: int
    host: str
    port: int
    #: The worker's end of the pipe to the supervisor.
    channel: Connection

    def ready(self) -> None:
        """Tell the supervisor that this worker listens (call once)."""
        self.channel.send_bytes(b"ready")

    async def stop_requested(self) -> None:
        """Return on SIGTERM or SIGINT, or when the supervisor is gone.

        The signal handlers are installed when this is first awaited; a
        signal before that ends the worker at once (it serves nothing yet).
        Once this returns, SIGTERM and SIGINT are ignored: the graceful stop
        that follows is not cut short by a second signal (a terminal's Ctrl-C
        reaches the supervisor too, which then sends SIGTERM; the supervisor
        kills a worker whose stop takes too long).
        """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:

                async def orphaned() -> None:
                    # The supervisor never writes: readable means EOF, it is gone.
                    await trio.lowlevel.wait_readable(self.channel.fileno())
                    logger.warning("worker %d: the supervisor is gone, stopping", self.index)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(orphaned)
                async for signum in signals:
                    logger.info("worker %d: %s, stopping", self.index, signal.Signals(signum).name)
                    break
                nursery.cancel_scope.cancel()


#: What a worker process runs: ``target(slot)``, importable (it is pickled by name).
WorkerTarget = Callable[[WorkerSlot], None]


class _Pool:
    """The N worker processes of :func:`supervise_workers`."""

    def __init__(
        self,
        target: WorkerTarget,
        *,
        host: str,
        port: int,
        backoff: WorkerBackoff,
        stop_timeout: float,
    ) -> None:
        self._target = target
        self._host = host
        self._port = port
        self._backoff = backoff
        self._stop_timeout = stop_timeout
        self._context = multiprocessing.get_context("spawn")
        #: Worker index -> pid of its current process.
        self.pids: dict[int, int] = {}
        #: Every worker has listened once (from then on, exits are restarted).
        self.serving = False

    def _spawn(self, index: int) -> tuple[BaseProcess, Connection]:
        ours, theirs = self._context.Pipe(duplex=True)
        slot = WorkerSlot(index, self._host, self._port, theirs)
        process = self._context.Process(
            target=self._target, args=(slot,), name=f"puregrpc-worker-{index}", daemon=False
        )
        try:
            process.start()
        finally:
            theirs.close()  # the worker holds its own copy; EOF on ours = the worker is gone
        assert process.pid is not None
        self.pids[index] = process.pid
        return process, ours

    async def run_slot(self, index: int, on_first_ready: Callable[[], None]) -> None:
        """Keep worker ``index`` running; ``on_first_ready()`` once it first listens."""
        delay = self._backoff.initial
        reported = False
        while True:
            process, channel = self._spawn(index)
            born = trio.current_time()
            logger.info("worker %d started (pid %d)", index, process.pid)
            try:
                if await _until_ready(channel):
                    logger.info("worker %d (pid %d) listening", index, process.pid)
                    if not reported:
                        on_first_ready()
                        reported = True
                    await trio.lowlevel.wait_readable(process.sentinel)
                else:
                    # Its pipe closed first: let it finish exiting (its traceback).
                    await _exited(process, 5.0)
            finally:
                with trio.CancelScope(shield=True):
                    await self._stop(process)
                    channel.close()
            lived = trio.current_time() - born
            if not reported and not self.serving:
                # At the first start a worker that cannot listen (a busy
                # address, a bad configuration) would fail again: say so now.
                raise WorkerStartError(
                    f"worker {index} (pid {process.pid}) exited before it listened "
                    f"({_describe_exit(process.exitcode)}); its log says why"
                )
            if lived >= self._backoff.stable_after:
                delay = self._backoff.initial
            logger.warning(
                "worker %d (pid %d) exited after %.1f s (%s); restarting in %.2f s",
                index,
                process.pid,
                lived,
                _describe_exit(process.exitcode),
                delay,
            )
            await trio.sleep(delay)
            delay = min(delay * 2, self._backoff.maximum)

    async def _stop(self, process: BaseProcess) -> None:
        """End ``process``: SIGTERM (graceful), then SIGKILL after the timeout."""
        if process.is_alive():
            process.terminate()
            if not await _exited(process, self._stop_timeout):
                logger.error("worker pid %d did not stop in time: killing it", process.pid)
                process.kill()
                await _exited(process, 5.0)
        process.join()


async def _exited(process: BaseProcess, seconds: float) -> bool:
    """Whether ``process`` exits within ``seconds``: joined in a thread.

    Not waited on its sentinel: a second wait on the sentinel, after one
    that woke or was cancelled, was seen to miss the exit.
    """
    await trio.to_thread.run_sync(process.join, seconds)
    return process.exitcode is not None


async def _until_ready(channel: Connection) -> bool:
    """Whether the worker reported ready (False: it exited first)."""
    await trio.lowlevel.wait_readable(channel.fileno())
    try:
        return channel.recv_bytes() == b"ready"
    except (EOFError, OSError):
        return False


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


async def supervise_workers(
    target: WorkerTarget,
    *,
    workers: int,
    host: str = "127.0.0.1",
    port: int = 0,
    backoff: WorkerBackoff | None = None,
    stop_timeout: float = 10.0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``workers`` processes of ``target`` on ``host:port`` until cancelled.

    ``target(slot)`` runs in each worker process (see :class:`WorkerSlot`;
    :func:`run_workers` has one for :class:`~puregrpc.server.Server`
    factories). ``task_status.started(port)`` once every worker listens.
    Cancelled, it stops every worker (SIGTERM, then SIGKILL after
    ``stop_timeout`` seconds) and returns when all have exited. A worker that
    exits before it first listens, before every worker has, raises
    :class:`WorkerStartError` (the others are stopped); later exits are
    restarted.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    with reserve_port(host, port) as held:
        bound = held.getsockname()[1]
        pool = _Pool(
            target,
            host=host,
            port=bound,
            backoff=backoff if backoff is not None else WorkerBackoff(),
            stop_timeout=stop_timeout,
        )
        listening = trio.Event()
        waiting = set(range(workers))

        def first_ready(index: int) -> None:
            waiting.discard(index)
            if not waiting:
                listening.set()

        try:
            async with trio.open_nursery() as nursery:
                # All started at once: each takes a while to import and bind.
                for index in range(workers):
                    nursery.start_soon(pool.run_slot, index, functools.partial(first_ready, index))
                await listening.wait()
                pool.serving = True
                logger.info("%d workers serving on %s", workers, _address(host, bound))
                task_status.started(bound)
        except BaseExceptionGroup as group:
            # One worker (or several) that could not start: that error, bare.
            failed, rest = group.split(WorkerStartError)
            if failed is None or rest is not None:
                raise
            raise _leaves(failed)[0] from None


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return leaves


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ----------------------------------------------------------- for Server factories


def run_workers(
    factory: Callable[[], Server],
    *,
    workers: int,
    host: str = "127.0.0.1",
    port: int = 0,
    grace: float = 5.0,
    backoff: WorkerBackoff | None = None,
    on_listening: Callable[[int], None] | None = None,
) -> int:
    """Serve ``factory()``'s :class:`~puregrpc.server.Server` in ``workers`` processes.

    Blocks until SIGTERM or SIGINT, then drains every worker (each stops
    with ``grace``) and returns the exit status, 0; 1 if a worker could not
    start (:class:`WorkerStartError`, logged). ``factory`` runs in each
    worker process and must be importable (a module-level function);
    ``on_listening(port)`` runs here once every worker listens.
    """
    target = functools.partial(_serve_server, factory, grace)
    return trio.run(
        functools.partial(
            _supervise_until_signal,
            target,
            workers=workers,
            host=host,
            port=port,
            backoff=backoff,
            stop_timeout=grace + 5.0,
            on_listening=on_listening,
        )
    )


async def _supervise_until_signal(
    target: WorkerTarget,
    *,
    workers: int,
    host: str,
    port: int,
    backoff: WorkerBackoff | None,
    stop_timeout: float,
    on_listening: Callable[[int], None] | None,
) -> int:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        try:
            async with trio.open_nursery() as nursery:
                bound = await nursery.start(
                    functools.partial(
                        supervise_workers,
                        target,
                        workers=workers,
                        host=host,
                        port=port,
                        backoff=backoff,
                        stop_timeout=stop_timeout,
                    )
                )
                if on_listening is not None:
                    on_listening(bound)
                async for signum in signals:
                    logger.info("%s: stopping the workers", signal.Signals(signum).name)
                    break
                nursery.cancel_scope.cancel()
        except WorkerStartError as exc:
            logger.error("%s", exc)
            return 1
    return 0


def _serve_server(factory: Callable[[], Server], grace: float, slot: WorkerSlot) -> None:
    """A worker process of :func:`run_workers`: serve ``factory()`` until told to stop."""
    trio.run(_serve_server_async, factory, grace, slot)


async def _serve_server_async(
    factory: Callable[[], Server], grace: float, slot: WorkerSlot
) -> None:
    server = factory()
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(server.serve, slot.host, slot.port, reuse_port=True))
        slot.ready()
        await slot.stop_requested()
        await server.stop(grace=grace)
