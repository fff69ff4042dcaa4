"""The C allocator's settings for a long-running ``serve`` process (glibc's malloc).

Why the server needs them. Its worker threads (the SQL, query and file
threads, 16 by default with ``--sql-threads`` and its siblings, and the
event log's writer) allocate and free in bursts: a 1 MiB write batch of an
upload, the blocks of a download, a SQLite connection's page cache filled
and dropped with the connection. Two defaults of glibc's malloc turn those
bursts into memory that is never given back:

* **An arena per thread.** glibc gives a thread that finds the arenas busy
  an arena of its own, up to 8 per core. Memory freed goes back to the arena
  it came from, to be reused by the threads on that arena only, and an arena
  returns memory to the system from its top alone: each arena keeps the
  high-water mark of its threads.
* **A sliding mmap threshold.** Blocks from 128 KiB up are mapped with
  ``mmap`` and unmapped when freed, until one is freed: then the threshold
  rises to that block's size (up to 32 MiB), and every later 1 MiB batch
  comes from an arena instead.

Measured in the soak (``bench/soak.py``, 50 tasks, 5 minutes, the server's
``mallinfo2``): with glibc's defaults the arenas grew from 46 to 83 MiB while
12-20 MiB of them were in use, and RSS grew 17% after the warm-up; with two
arenas and a fixed 256 KiB threshold they stayed at 27-34 MiB.

:func:`tune_malloc` sets both (``mallopt`` ``M_ARENA_MAX`` and
``M_MMAP_THRESHOLD``; a fixed threshold also stops the sliding). It acts on
the whole process, so ``serve`` calls it first, before any thread starts;
the library's :func:`~puregrpc_streaming.server.serve` does not (the process
is its caller's). Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["DEFAULT_ARENAS", "MMAP_THRESHOLD", "tune_malloc"]

#: Arenas for the whole process by default (``--malloc-arenas``).
DEFAULT_ARENAS = 2
#: Blocks this large and larger are always mapped on their own, and unmapped
#: when freed (upload batches, download blocks): no arena keeps them.
MMAP_THRESHOLD = 256 * 1024

# mallopt(3) parameters (glibc's malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_malloc(arenas: int = DEFAULT_ARENAS) -> bool:
    """Limit glibc's malloc to ``arenas`` arenas and fix its mmap threshold.

    Returns whether both took effect: False elsewhere than glibc, or with
    ``arenas`` 0 (glibc's own defaults kept). Call it before threads start:
    arenas already made stay.
    """
    if arenas <= 0 or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 for a value it refuses.
    return bool(mallopt(_M_ARENA_MAX, arenas)) & bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
