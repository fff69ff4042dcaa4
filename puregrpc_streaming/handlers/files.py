"""UploadFile and DownloadFile over a :class:`~..backends.base.FileStore`."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

from puregrpc import Metadata, RpcError, StatusCode
from puregrpc.server import RequestIterator, ServicerContext

from ..access import owner_audience
from ..authentication import caller_of
from ..backends.base import (
    EventBus,
    FileIdError,
    FileNotFound,
    FileStore,
    StoredFile,
    UploadSessionBusy,
    UploadSessionMismatch,
    UploadSessionsFull,
    UploadSink,
)
from ..backends.upload_sessions import session_key
from ..faults import is_disk_full
from ..protos import streaming_pb2 as pb
from ._common import ServiceSettings, fail, invalid, metadata_text

logger = logging.getLogger("puregrpc_streaming.files")

#: Longest accepted filename, in UTF-8 bytes (a common file-system limit).
MAX_FILENAME_BYTES = 255
#: Request metadata naming a resumable upload session, and the answer's offset.
UPLOAD_ID = "upload-id"
#: Response metadata of DownloadFile: the stored file's sha256 and size.
FILE_SHA256 = "file-sha256"
FILE_SIZE = "file-size"
UPLOAD_OFFSET = "upload-offset"
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{8,128}")


def _host(context: ServicerContext) -> str:
    host, _, port = context.peer().rpartition(":")
    return host if host and port.isdigit() else context.peer()


def check_filename(filename: str) -> str:
    """Return ``filename`` if it is a plain file name; INVALID_ARGUMENT otherwise."""
    if not filename:
        invalid("the first chunk must carry a filename")
    if "/" in filename or "\\" in filename:
        invalid(f"filename {filename!r} contains a path separator")
    if ".." in filename:
        invalid(f"filename {filename!r} contains '..'")
    if filename.strip() in ("", "."):
        invalid(f"filename {filename!r} is not a file name")
    if any(ord(c) < 32 or ord(c) == 127 for c in filename):
        invalid(f"filename {filename!r} contains control characters")
    if len(filename.encode()) > MAX_FILENAME_BYTES:
        invalid(f"filename is longer than {MAX_FILENAME_BYTES} bytes")
    return filename


class FileHandlers:
    """Uploads into and downloads from the file store; uploads announce themselves on the bus."""

    def __init__(self, store: FileStore, events: EventBus, settings: ServiceSettings) -> None:
        """Serve ``store``; publish ``file.uploaded`` on ``events``."""
        self._store = store
        self._events = events
        self._settings = settings

    async def upload(
        self, requests: RequestIterator[pb.FileChunk], context: ServicerContext
    ) -> pb.UploadResponse:
        """Receive chunks with contiguous offsets into a temporary file, then commit it.

        Whatever ends the call early (a bad chunk, the quota, the client
        cancelling or disconnecting) aborts the upload, which deletes the
        temporary file before the handler returns.

        Resumable uploads: with metadata ``upload-id: ID`` (8..128 letters,
        digits, ``-`` or ``_``, chosen by the client), the server first
        answers response metadata ``upload-offset: N``, the bytes it already
        holds for this caller's session ID (0 for a new one), and the
        client sends its chunks from offset N. A call of a session that
        fails short of the quota keeps what was received (an hour by
        default, see :mod:`~..backends.upload_sessions`); the commit's
        sha256 covers the whole file. Two calls on one session at once:
        ABORTED; a session of another file: FAILED_PRECONDITION.
        """
        limit = self._settings.max_upload_bytes
        sink: UploadSink | None = None
        filename = ""
        declared = 0
        session = await self._open_session(context)
        try:
            async for chunk in requests:
                if sink is None:
                    filename = (
                        check_filename(chunk.filename)
                        if session is None or chunk.offset == 0 or chunk.filename
                        else ""
                    )
                    declared = chunk.total_size
                    if declared < 0:
                        invalid(f"total_size {declared} is negative")
                    if declared > limit:
                        fail(
                            StatusCode.RESOURCE_EXHAUSTED,
                            f"file of {declared} bytes exceeds the upload limit of {limit} bytes",
                        )
                    sink = await self._begin(session, filename, declared)
                    filename = filename or sink.filename
                elif chunk.filename and chunk.filename != filename:
                    invalid(
                        f"chunk at offset {chunk.offset} names {chunk.filename!r}, "
                        f"but this upload is {filename!r}"
                    )
                if chunk.offset != sink.size:
                    invalid(
                        f"chunk at offset {chunk.offset}, expected offset {sink.size} "
                        "(offsets must be contiguous from 0)"
                    )
                if sink.size + len(chunk.content) > limit:
                    fail(
                        StatusCode.RESOURCE_EXHAUSTED,
                        f"upload exceeds the limit of {limit} bytes",
                    )
                await sink.write(chunk.content)
            if sink is None:
                invalid("no chunks received: an upload needs at least one chunk with a filename")
            if declared and sink.size != declared:
                invalid(f"upload ended after {sink.size} of the announced {declared} bytes")
            stored = await sink.commit()
        except RpcError as exc:
            if sink is not None:
                # A session keeps its bytes unless the quota was the problem.
                if session is not None and exc.code is not StatusCode.RESOURCE_EXHAUSTED:
                    await sink.suspend()
                else:
                    await sink.abort()
            raise
        except BaseException as exc:
            if sink is not None:
                # A full disk keeps nothing, whatever the session: the bytes
                # would only take the space others need.
                keep = session is not None and not is_disk_full(exc)
                await (sink.suspend() if keep else sink.abort())
            raise
        finally:
            if session is not None:
                self._store.release_session(session)
        logger.debug(
            "stored %r as %s: %d bytes, sha256 %s",
            stored.filename,
            stored.file_id,
            stored.size,
            stored.checksum,
        )
        # For the uploader and administrators only (see puregrpc_streaming.access).
        caller = caller_of(context)
        await self._events.publish(
            "file.uploaded",
            {
                "file_id": stored.file_id,
                "filename": stored.filename,
                "size": stored.size,
                "checksum": stored.checksum,
                "user_id": caller.user_id,
            },
            audience=owner_audience(caller),
        )
        return pb.UploadResponse(file_id=stored.file_id, size=stored.size, checksum=stored.checksum)

    async def _open_session(self, context: ServicerContext) -> str | None:
        """The session key of metadata ``upload-id`` (answering ``upload-offset``), or None."""
        upload_id = metadata_text(context, UPLOAD_ID)
        if upload_id is None:
            return None
        if not _UPLOAD_ID.fullmatch(upload_id):
            invalid(f"metadata {UPLOAD_ID} must be 8..128 letters, digits, '-' or '_'")
        caller = caller_of(context)
        # An anonymous caller is a new one on each connection, and a session
        # must outlive its connection: its key is the client's address and
        # the upload id (random in the client helpers), not the caller.
        owner = f"user:{caller.user_id}" if not caller.anonymous else f"peer:{_host(context)}"
        key = session_key(owner, upload_id)
        try:
            offset = await self._store.claim_session(key)
        except UploadSessionBusy as exc:
            fail(StatusCode.ABORTED, f"upload {upload_id!r}: {exc}")
        await context.send_initial_metadata(Metadata([(UPLOAD_OFFSET, str(offset))]))
        return key

    async def _begin(self, session: str | None, filename: str, declared: int) -> UploadSink:
        if session is None:
            return await self._store.begin_upload(filename)
        try:
            return await self._store.resume_upload(session, filename, declared)
        except UploadSessionMismatch as exc:
            fail(StatusCode.FAILED_PRECONDITION, str(exc))
        except UploadSessionsFull as exc:
            fail(StatusCode.RESOURCE_EXHAUSTED, str(exc))

    async def _find(self, file_id: str) -> StoredFile:
        try:
            return await self._store.stat(file_id)
        except FileIdError as exc:
            invalid(str(exc))
        except FileNotFound as exc:
            fail(StatusCode.NOT_FOUND, str(exc))

    async def download(
        self, request: pb.DownloadRequest, context: ServicerContext
    ) -> AsyncIterator[pb.FileChunk]:
        """Stream the file from ``start_offset`` in chunks of ``chunk_size`` bytes.

        One chunk is read only after the previous one was handed to the
        transport, which waits while the client's flow-control window is
        closed: a slow client holds the server at about one chunk in memory,
        and a cancelled download reads nothing more. The response headers
        carry the stored file's sha256 (metadata ``file-sha256``) and size
        (``file-size``), so a client can check what it expects before any
        byte arrives.
        """
        start = request.start_offset
        if start < 0:
            invalid(f"start_offset {start} is negative")
        stored = await self._find(request.file_id)
        if start > stored.size:
            fail(
                StatusCode.OUT_OF_RANGE,
                f"start_offset {start} is beyond the end of the file ({stored.size} bytes)",
            )
        await context.send_initial_metadata(
            Metadata([(FILE_SHA256, stored.checksum), (FILE_SIZE, str(stored.size))])
        )
        if start == stored.size:
            return
        try:
            reader = await self._store.open(request.file_id, start)
        except FileNotFound as exc:
            fail(StatusCode.NOT_FOUND, str(exc))
        try:
            offset = start
            chunk_size = self._settings.chunk_size
            while offset < stored.size:
                data = await reader.read(min(chunk_size, stored.size - offset))
                if not data:
                    fail(
                        StatusCode.DATA_LOSS,
                        f"file {stored.file_id} ended at {offset} of {stored.size} bytes",
                    )
                yield pb.FileChunk(
                    content=data, offset=offset, total_size=stored.size, filename=stored.filename
                )
                offset += len(data)
        finally:
            await reader.aclose()
