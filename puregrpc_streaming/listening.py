"""Listening sockets: bound before anything slow, accepted with a backoff.

:func:`bind` opens the listening sockets first thing, so that a busy
address is an error at once (naming the address), before the server spends
seconds seeding its dataset; connections that arrive meanwhile wait in the
backlog. :func:`accept_loop` accepts on one and hands each connection to a
handler; when ``accept`` fails (out of file descriptors: EMFILE, ENFILE,
ENOBUFS, ENOMEM) it waits, doubling the wait from
:data:`ACCEPT_BACKOFF_MIN` to :data:`ACCEPT_BACKOFF_MAX`, rather than
spinning, logs the first failure and the recovery (not every retry), and
goes on: the connections already open finish their calls, and new ones are
accepted as soon as descriptors are free again.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable

import trio

from puregrpc.server import open_tcp_listeners

__all__ = ["ACCEPT_BACKOFF_MAX", "ACCEPT_BACKOFF_MIN", "ListenError", "accept_loop", "bind"]

logger = logging.getLogger("puregrpc_streaming")

#: The first and the longest wait after a failed accept (seconds).
ACCEPT_BACKOFF_MIN = 0.01
ACCEPT_BACKOFF_MAX = 1.0


class ListenError(OSError):
    """The server cannot listen where it was told to (the message names the address)."""


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def bind(host: str, port: int, *, reuse_port: bool = False) -> list[trio.SocketListener]:
    """Listening sockets on ``host:port`` (port 0: a free one); :class:`ListenError` if not.

    ``reuse_port``: join the port's ``SO_REUSEPORT`` group (``serve --workers``).
    """
    try:
        return await open_tcp_listeners(port, host, reuse_port=reuse_port)
    except OSError as exc:
        where = _address(host, port)
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(
                f"cannot listen on {where}: the address is already in use (another server?)"
            ) from None
        if exc.errno == errno.EACCES:
            raise ListenError(f"cannot listen on {where}: permission denied") from None
        raise ListenError(f"cannot listen on {where}: {exc.strerror or exc}") from None


async def accept_loop(
    listener: trio.SocketListener,
    handle: Callable[[trio.SocketStream], Awaitable[object]],
    nursery: trio.Nursery,
) -> None:
    """Accept connections on ``listener`` until it closes or this is cancelled;
    each runs as ``handle(stream)`` in ``nursery``."""
    delay = 0.0
    failures = 0
    while True:
        try:
            stream = await listener.accept()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return
        except OSError as exc:
            failures += 1
            delay = min(max(delay * 2, ACCEPT_BACKOFF_MIN), ACCEPT_BACKOFF_MAX)
            if failures == 1:
                logger.error("accept failed: %s; retrying with a backoff", exc)
            await trio.sleep(delay)
            continue
        if failures:
            logger.warning("accepting again after %d failed attempt(s)", failures)
            failures, delay = 0, 0.0
        nursery.start_soon(handle, stream)
