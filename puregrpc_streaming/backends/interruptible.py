"""Worker threads that a cancelled call stops at once: :func:`run_interruptible`.

``trio.to_thread.run_sync`` cannot stop a thread: when the calling task is
cancelled it either waits for the thread to finish (the default) or
abandons it, and in both cases the thread keeps its slot of the capacity
limiter until its function returns. A statement of InteractiveQuery that
runs for its whole time limit after its client cancelled, hung up or ran
out of deadline would hold one of the few query threads all that time, and
a handful of cancelled slow queries would keep every other query waiting.

:func:`run_interruptible` runs a blocking function in a worker thread under
a limiter, like ``trio.to_thread.run_sync``; when the calling task is
cancelled meanwhile it calls ``interrupt()`` (from the trio thread) and then
waits for the function to return, which the interruption makes quick, and
raises :class:`trio.Cancelled`. The thread is never abandoned, so whatever
it uses (a database connection) is not touched by two threads at once and
the limiter's slot is free again when the cancellation has propagated.

The interrupt functions of the query sessions: ``sqlite3.Connection.interrupt``
(SQLite checks the flag between VM instructions; the statement fails with
"interrupted") and, for PostgreSQL, a cancel request sent over a new
connection (``psycopg.Connection.cancel_safe``), which must not block the
event loop and so runs in a thread of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import trio

__all__ = ["run_interruptible"]

T = TypeVar("T")


async def run_interruptible(
    fn: Callable[[], T], *, limiter: trio.CapacityLimiter, interrupt: Callable[[], object]
) -> T:
    """``fn()`` in a worker thread of ``limiter``; a cancellation calls ``interrupt()``.

    ``interrupt`` runs in the trio thread while ``fn`` may still be
    running (or has just returned): it must be quick, thread-safe and
    harmless if called twice, and make ``fn`` return soon. Waiting for a
    slot of ``limiter`` is cancellable as usual.
    Returns what ``fn`` returned; raises what it raised, or
    :class:`trio.Cancelled` if the call was cancelled before it returned.
    """
    task = trio.lowlevel.current_task()
    token = trio.lowlevel.current_trio_token()
    placeholder = object()  # borrows the slot, for the thread's whole life
    await limiter.acquire_on_behalf_of(placeholder)
    try:
        result: list[T] = []
        failure: list[BaseException] = []

        def work() -> None:
            try:
                result.append(fn())
            except BaseException as exc:  # re-raised in the calling task
                failure.append(exc)

        def done(_: object) -> None:
            token.run_sync_soon(trio.lowlevel.reschedule, task)

        def abort(_: object) -> trio.lowlevel.Abort:
            # The task stays blocked until the thread reports: the slot,
            # and the resources fn uses, are the thread's until then.
            interrupt()
            return trio.lowlevel.Abort.FAILED

        trio.lowlevel.start_thread_soon(work, done)
        await trio.lowlevel.wait_task_rescheduled(abort)
    finally:
        limiter.release_on_behalf_of(placeholder)
    # Cancelled while the thread ran: its outcome (most likely "interrupted")
    # belongs to a call that is over.
    await trio.lowlevel.checkpoint_if_cancelled()
    if failure:
        raise failure[0]
    return result[0]
