"""protoc with the puregrpc plugin: what ``python -m puregrpc.protoc`` runs.

Runs the protoc bundled with grpcio-tools (``grpc_tools.protoc``), so no
system protoc is needed, with two additions to the arguments:

* ``--plugin=protoc-gen-puregrpc=...``: a small executable wrapper, written
  to a temporary directory, that runs our plugin with *this* interpreter
  (``sys.executable``), so ``--puregrpc_out=DIR`` works even when the
  ``protoc-gen-puregrpc`` script is not on ``PATH``;
* ``-I<grpc_tools>/_proto``, last, so imports of the well-known types
  (``google/protobuf/empty.proto``...) resolve, as ``grpc_tools.protoc`` does.

Example::

    python -m puregrpc.protoc -I proto --python_out=out --pyi_out=out \\
        --puregrpc_out=out proto/helloworld.proto
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import puregrpc

_MISSING_TOOLS = (
    "python -m puregrpc.protoc needs grpcio-tools, which provides protoc: "
    "pip install grpcio-tools (or run protoc yourself with "
    "--plugin=protoc-gen-puregrpc=$(which protoc-gen-puregrpc))"
)


def _write_wrapper(directory: Path) -> Path:
    """Write the plugin executable protoc will run; return its path."""
    # The package may be importable only through this process's sys.path
    # (a source checkout): hand the wrapper the directory holding it.
    package_root = str(Path(puregrpc.__file__).resolve().parent.parent)
    code = "import sys; from puregrpc.protoc import plugin_main; sys.exit(plugin_main())"
    if os.name == "nt":
        path = directory / "protoc-gen-puregrpc.cmd"
        path.write_text(
            f'@echo off\r\nset "PYTHONPATH={package_root};%PYTHONPATH%"\r\n'
            f'"{sys.executable}" -c "{code}"\r\n'
        )
        return path
    path = directory / "protoc-gen-puregrpc"
    path.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH={shlex.quote(package_root)}"${{PYTHONPATH:+:$PYTHONPATH}}"\n'
        "export PYTHONPATH\n"
        f"exec {shlex.quote(sys.executable)} -c {shlex.quote(code)}\n"
    )
    path.chmod(0o755)
    return path


def run_protoc(arguments: Sequence[str]) -> int:
    """Run protoc with ``arguments`` (as on its command line); return its exit status."""
    try:
        from grpc_tools import protoc
    except ImportError:
        print(_MISSING_TOOLS, file=sys.stderr)
        return 2
    include = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory(prefix="puregrpc-protoc-") as directory:
        wrapper = _write_wrapper(Path(directory))
        argv = [
            "protoc",
            f"--plugin=protoc-gen-puregrpc={wrapper}",
            *arguments,
            f"-I{include}",
        ]
        status: int = protoc.main(argv)
        return status
