"""One clear error when puregrpc is used outside trio.

puregrpc's channels and servers own trio nurseries, cancel scopes and
sockets; under asyncio (or with no event loop at all) trio's own functions
fail with errors that name trio's internals. The entry points call
:func:`require_trio` first, so the user reads what is wrong and what to do.
"""

from __future__ import annotations

import sniffio


def require_trio(what: str) -> None:
    """Raise :class:`RuntimeError` unless running in a trio task; ``what`` names the caller."""
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise RuntimeError(
            f"puregrpc runs on trio: {what} must be used from a task under trio.run(...)"
        ) from None
    if library != "trio":
        raise RuntimeError(
            f"puregrpc runs on trio, but {what} was used from {library}: run it under "
            "trio.run(...) (in a thread of its own if the program's loop is asyncio), "
            "or use puregrpc.blocking.BlockingChannel from synchronous code"
        )
