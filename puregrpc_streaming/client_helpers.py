"""Client helpers for streaming.v1: resumable downloads, resuming watches, uploads.

These are the reconnection best practice, on the client side:

* :func:`download_file` writes to ``PATH.part``; when the connection is lost
  it reconnects with exponential backoff and asks for the rest with
  ``start_offset`` = the bytes it already has. A later run finds the
  ``.part`` file and continues from its size. At the end it checks the size
  the server announced (and a sha256, when it knows one), and only then
  renames the file into place.
* :class:`EventWatcher` reconnects a WatchEvents stream the same way and
  sends metadata ``last-event-id`` so the server replays what was missed;
  when the server says some of it is gone (a ``gap`` event), the watcher
  tells its ``on_gap`` callback, or raises :class:`EventsLost`.
* :func:`upload_file` streams a file in chunks with contiguous offsets and
  checks the server's size and checksum against its own.

All file IO runs in worker threads (``trio.open_file``), so a transfer never
stalls the event loop.
"""

from __future__ import annotations

from ._client_common import DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE
from ._client_common import MAX_FRAME_SIZE as MAX_FRAME_SIZE
from ._client_common import RETRIED_READS as RETRIED_READS
from ._client_common import SERVICE_CONFIG as SERVICE_CONFIG
from ._client_common import RetryPolicy as RetryPolicy
from ._client_common import TransferError as TransferError
from ._client_common import client_tls_context as client_tls_context
from ._client_common import file_sha256 as file_sha256
from ._client_common import open_channel as open_channel
from ._client_common import part_path as part_path
from ._client_common import unwrap_group as unwrap_group
from ._client_download import DownloadResult as DownloadResult
from ._client_download import download_file as download_file
from ._client_upload import UploadResult as UploadResult
from ._client_upload import upload_file as upload_file
from ._client_watch import EventGap as EventGap
from ._client_watch import EventsLost as EventsLost
from ._client_watch import EventWatcher as EventWatcher

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_FRAME_SIZE",
    "RETRIED_READS",
    "SERVICE_CONFIG",
    "DownloadResult",
    "EventGap",
    "EventWatcher",
    "EventsLost",
    "RetryPolicy",
    "TransferError",
    "UploadResult",
    "client_tls_context",
    "download_file",
    "file_sha256",
    "open_channel",
    "part_path",
    "unwrap_group",
    "upload_file",
]
