"""The pieces of ``bench/run.py``, by responsibility (standard library only).

- ``env``: paths, cores, logging, installing h2load / venvs / grpc-go, ``--baseline`` trees,
  and the implementations measured;
- ``procs``: pinned processes (servers on core 0, load on core 1) and their CPU time;
- ``workloads``: the h2load and client workloads and the ``Runner`` that measures them;
- ``paired``: ``--baseline``'s paired before/after measurement and its report section;
- ``profiles``: cProfile runs of the puregrpc server and their summary;
- ``report``: medians, the tables and the targets of issue #6.
"""

import sys
from pathlib import Path

#: ``bench/impls`` holds ``common.py``, which the driver shares with every implementation.
_IMPLS = str(Path(__file__).resolve().parent.parent / "impls")
if _IMPLS not in sys.path:
    sys.path.insert(0, _IMPLS)
