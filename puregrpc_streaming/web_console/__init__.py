"""The browser console of the streaming service (``puregrpc-streaming serve --web``).

A single page served by the streaming server itself, on its own port, that
calls the service over gRPC-Web: live WatchEvents with filters, GetData,
ListLargeDataset in pages with resume, DownloadFile with a progress bar and
a sha256 check, and the server's health. The RPCs that stream from the
client (UploadFile, CollectMetrics, BatchProcess, Chat, SyncData,
InteractiveQuery) cannot run in a browser; the page names the
``puregrpc-streaming`` commands for them.

:data:`STATIC_DIR` holds the built page (``index.html``, ``console.css``,
``console.js``), shipped in the package so that no npm is needed to serve
it. Its sources are ``web/console/`` in the repository: TypeScript, the
clients protoc-gen-es generated from ``streaming.proto`` and ``health.proto``,
connect-web's gRPC-Web transport, bundled by esbuild (``make web``;
docs/grpc-web.md).
"""

from __future__ import annotations

from pathlib import Path

from puregrpc.web import StaticSite

__all__ = ["STATIC_DIR", "console_site"]

#: The built console: what ``make web`` writes and the server serves.
STATIC_DIR = Path(__file__).parent / "static"


def console_site() -> StaticSite:
    """The console's pages, read from :data:`STATIC_DIR` (``/`` is its ``index.html``)."""
    return StaticSite.from_directory(STATIC_DIR)
