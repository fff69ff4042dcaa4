"""``python -m puregrpc.protoc [protoc arguments]``: protoc with the puregrpc plugin.

See :func:`puregrpc.protoc.run_protoc` for what is added to the arguments.

Example::

    python -m puregrpc.protoc -I proto --python_out=out --pyi_out=out \\
        --puregrpc_out=out proto/helloworld.proto
"""

from __future__ import annotations

import sys

from ._runner import run_protoc


def main() -> int:
    """The command line: ``python -m puregrpc.protoc [protoc arguments]``."""
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    return run_protoc(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
