"""ListLargeDataset (cursor pagination) and InteractiveQuery (read-only SQL)."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import AsyncIterator

from puregrpc.server import RequestIterator, ServicerContext

from ..authentication import caller_of
from ..backends.base import DATASET_FIELDS, DatasetStore, QueryError, QueryLimits
from ..filters import FilterError, parse_filter
from ..protos import streaming_pb2 as pb
from ._common import MAX_PAGE_SIZE, ServiceSettings, invalid

logger = logging.getLogger("puregrpc_streaming.dataset")

#: Cursors are this prefix and a row id; a cursor of the first version
#: (base64 of ``dataset:<id>``) is still read.
CURSOR_PREFIX = "ds1-"
_LEGACY_PREFIX = b"dataset:"
#: InteractiveQuery rows per query when the request says 0, and the most it may ask.
DEFAULT_QUERY_ROWS = 1_000
MAX_QUERY_ROWS = 10_000
MAX_QUERY_LENGTH = 100_000


def encode_cursor(row_id: int) -> str:
    """The opaque cursor that resumes right after ``row_id``.

    One string concatenation: every row of a listing carries its cursor
    (the proto gives each DataItem one), so it must cost next to nothing.
    """
    return f"{CURSOR_PREFIX}{row_id}"


def decode_cursor(cursor: str) -> int:
    """The row id a cursor resumes after (empty: 0); INVALID_ARGUMENT if it is not ours."""
    if not cursor:
        return 0
    if cursor.startswith(CURSOR_PREFIX):
        digits = cursor.removeprefix(CURSOR_PREFIX).encode()
    else:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            invalid(f"start_cursor {cursor!r} is not a cursor this server issued")
        if not raw.startswith(_LEGACY_PREFIX):
            invalid(f"start_cursor {cursor!r} is not a cursor this server issued")
        digits = raw.removeprefix(_LEGACY_PREFIX)
    if not digits.isdigit() or len(digits) > 19 or not digits.isascii():
        invalid(f"start_cursor {cursor!r} is not a cursor this server issued")
    return int(digits)


class DatasetHandlers:
    """Serves the dataset store."""

    def __init__(self, dataset: DatasetStore, settings: ServiceSettings) -> None:
        """Serve ``dataset``."""
        self._dataset = dataset
        self._settings = settings

    async def list(
        self, request: pb.ListRequest, context: ServicerContext
    ) -> AsyncIterator[pb.DataItem]:
        """Stream rows in id order, one database page at a time.

        The next page is fetched only once every row of the previous one was
        handed to the transport, so memory stays at one page whatever the
        table size, a slow client slows the fetching, and a cancelled list
        fetches nothing more. The filter (fields ``id``, ``category``,
        ``value``) runs in the database (:mod:`..filter_sql`): a page holds
        matching rows only, and a filter that matches nothing costs no
        Python per row.
        """
        page_size = request.page_size or self._settings.batch_size
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            invalid(f"page_size must be 1..{MAX_PAGE_SIZE}, got {request.page_size}")
        after = decode_cursor(request.start_cursor)
        try:
            where = parse_filter(request.filter, fields=DATASET_FIELDS)
        except FilterError as exc:
            invalid(f"bad filter: {exc}")
        dataset = self._dataset
        item = pb.DataItem
        prefix = CURSOR_PREFIX
        while True:
            rows = await dataset.page(after, page_size, where)
            for row_id, category, value, data in rows:
                yield item(
                    id=row_id, data=data, cursor=f"{prefix}{row_id}", category=category, value=value
                )
            if len(rows) < page_size:
                return
            after = rows[-1][0]

    async def query(
        self, requests: RequestIterator[pb.QueryRequest], context: ServicerContext
    ) -> AsyncIterator[pb.QueryResponse]:
        """Answer each query with its rows (JSON objects), then ``complete``.

        Queries read the dataset table only (an administrator's, every
        table). The last response of a query has ``complete`` set, and
        ``truncated`` when ``max_rows`` cut it short. A refused or failed
        query (not a SELECT, another table, a syntax error, a row over the
        row limit, over the time limit) answers ``error`` with its
        ``error_code`` and ``complete`` (after the rows already sent, when
        it failed midway); the stream stays open for the next query. Rows
        are fetched and sent a batch at a time: memory stays at one batch,
        whatever the result's size.
        """
        caller = caller_of(context)
        settings = self._settings
        async with self._dataset.query_session(all_tables=caller.is_admin) as session:
            async for request in requests:
                max_rows = request.max_rows or DEFAULT_QUERY_ROWS
                if not 1 <= max_rows <= MAX_QUERY_ROWS:
                    yield _refusal(f"max_rows must be 1..{MAX_QUERY_ROWS}, got {request.max_rows}")
                    continue
                if len(request.query) > MAX_QUERY_LENGTH:
                    yield _refusal(f"query is longer than {MAX_QUERY_LENGTH} characters")
                    continue
                limits = QueryLimits(
                    max_rows=max_rows,
                    time_limit=settings.query_timeout,
                    max_row_bytes=settings.max_query_row_bytes,
                )
                try:
                    async with session.execute(request.query, limits) as cursor:
                        while rows := await cursor.fetch():
                            for row in rows:
                                yield pb.QueryResponse(data=row)
                        truncated = cursor.truncated
                except QueryError as exc:
                    logger.debug("query from %s refused: %s", context.peer(), exc)
                    yield _refusal(str(exc), exc.code)
                    continue
                yield pb.QueryResponse(complete=True, truncated=truncated)


def _refusal(message: str, code: str = "INVALID_ARGUMENT") -> pb.QueryResponse:
    return pb.QueryResponse(error=message, error_code=code, complete=True)
