"""What the streaming-transfer benchmark's clients and servers share (standard library only).

Every client, whichever gRPC stack it runs on, is one process doing one
transfer and printing one line ``RESULT {json}``:

    python CLIENT upload   HOST PORT PATH         -> bytes, seconds, cpu_seconds, sha256, file_id
    python CLIENT download HOST PORT FILE_ID DEST -> bytes, seconds, cpu_seconds, sha256

Both clients do the same work around the RPC, so the figures compare the gRPC
stacks: uploads read the file in 1 MiB blocks, hash each block, and send it as
64 KiB ``FileChunk`` messages with contiguous offsets (the first one naming
the file); downloads hash each chunk and write 1 MiB batches to ``DEST``
(no fsync: the client's disk is not what is measured). ``seconds`` runs from
just before the call to the last byte written (downloads) or the response
(uploads, which includes the server's fsync and rename); ``cpu_seconds`` is
the client process's CPU time over the same span (all its threads).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

#: Bytes per FileChunk, both directions (the service's DownloadFile default).
CHUNK_SIZE = 64 * 1024
#: Bytes per file read or write on the clients (one thread hop on trio).
BLOCK_SIZE = 1 << 20
#: The name every benchmark upload is stored under.
UPLOAD_NAME = "bench-256MiB.bin"
#: Longest accepted filename (UTF-8 bytes), as in puregrpc_streaming.
MAX_FILENAME_BYTES = 255
#: Ids the servers hand out: 32 lowercase hex digits.
FILE_ID = re.compile(r"[0-9a-f]{32}")


def client_args(argv: list[str]) -> argparse.Namespace:
    """Parse a client's command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description="one streaming transfer, one RESULT line")
    commands = parser.add_subparsers(dest="command", required=True)
    upload = commands.add_parser("upload")
    upload.add_argument("host")
    upload.add_argument("port", type=int)
    upload.add_argument("path")
    download = commands.add_parser("download")
    download.add_argument("host")
    download.add_argument("port", type=int)
    download.add_argument("file_id")
    download.add_argument("dest")
    return parser.parse_args(argv)


def emit(**record: object) -> None:
    """Print the one result line the driver parses."""
    print("RESULT " + json.dumps(record), flush=True)


def filename_problem(filename: str) -> str | None:
    """Why ``filename`` is not a plain file name, or None (puregrpc_streaming's rules)."""
    if not filename:
        return "the first chunk must carry a filename"
    if "/" in filename or "\\" in filename:
        return f"filename {filename!r} contains a path separator"
    if ".." in filename:
        return f"filename {filename!r} contains '..'"
    if filename.strip() in ("", "."):
        return f"filename {filename!r} is not a file name"
    if any(ord(c) < 32 or ord(c) == 127 for c in filename):
        return f"filename {filename!r} contains control characters"
    if len(filename.encode()) > MAX_FILENAME_BYTES:
        return f"filename is longer than {MAX_FILENAME_BYTES} bytes"
    return None


def ready(port: int) -> None:
    """Tell the driver the server listens (``run.Server`` waits for this line)."""
    print(f"LISTENING {port}", flush=True)


def fail(message: str) -> None:
    """Exit a client with a message the driver shows."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)
