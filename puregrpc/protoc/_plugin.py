"""The protoc plugin entry point: ``protoc-gen-puregrpc``.

protoc runs a plugin as a subprocess, writes a serialized
``CodeGeneratorRequest`` to its stdin and reads a ``CodeGeneratorResponse``
from its stdout (google/protobuf/compiler/plugin.proto). Errors meant for the
user travel in the response's ``error`` field; the exit status is non-zero
only when the plugin itself could not work (here: an unreadable request).
"""

from __future__ import annotations

import sys

from google.protobuf.compiler import plugin_pb2
from google.protobuf.message import DecodeError

from ._generator import generate


def main() -> int:
    """Read a request from stdin, write the response to stdout; return the exit status."""
    data = sys.stdin.buffer.read()
    request = plugin_pb2.CodeGeneratorRequest()
    try:
        request.ParseFromString(data)
    except DecodeError as exc:
        print(
            f"protoc-gen-puregrpc: stdin is not a CodeGeneratorRequest ({exc}); "
            "this program is meant to be run by protoc (--puregrpc_out=DIR)",
            file=sys.stderr,
        )
        return 1
    sys.stdout.buffer.write(generate(request).SerializeToString())
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
