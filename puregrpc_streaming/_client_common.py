"""What the client helpers share: retry policy, errors, TLS, channels, hashing."""

from __future__ import annotations

import hashlib
import random
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from puregrpc import StatusCode
from puregrpc.client import (
    BackoffPolicy,
    CallOptions,
    Channel,
    ChannelOptions,
    ClientInterceptor,
)
from puregrpc.wire import ConnectionConfig

#: Upload chunk size: the top of the 16-64 KiB range the service recommends.
DEFAULT_CHUNK_SIZE = 64 * 1024

#: Hashing reads files in blocks this large.
_HASH_BLOCK = 1 << 20

#: The largest DATA frame the helpers' channel accepts (SETTINGS_MAX_FRAME_SIZE),
#: as the service's server does for itself: a 64 KiB chunk then comes as one
#: frame, not four of HTTP/2's default 16 KiB, and each frame costs the
#: receive loop about the same whatever its size (a download's client CPU:
#: 0.127 -> 0.102 s per 64 MiB with the minimal client).
MAX_FRAME_SIZE = 1 << 20


#: The reads the channel itself retries (gRFC A6, through the service config)
#: while no response has arrived: repeating them is harmless. Once a stream
#: has delivered something, A6 commits it, and the helpers' own loops resume
#: it from where it stopped (download offset, last event id), which no
#: generic retry can do.
RETRIED_READS = ("GetData", "DownloadFile", "WatchEvents", "ListLargeDataset")

#: The helpers' channel service config: those reads retried on UNAVAILABLE.
SERVICE_CONFIG: dict[str, object] = {
    "methodConfig": [
        {
            "name": [
                {"service": "streaming.v1.StreamingService", "method": method}
                for method in RETRIED_READS
            ],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.1s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


class TransferError(Exception):
    """A transfer finished but its result is wrong (size or checksum mismatch)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When and how often a stream is reopened after a transient failure.

    Waits grow exponentially from ``initial_backoff`` (times ``multiplier``
    per failure, up to ``max_backoff``, randomised by ``jitter``). Progress
    (a chunk or an event received) resets the count, so ``attempts`` bounds
    consecutive failures, not the reconnections of a long transfer.
    """

    #: Consecutive failed attempts tolerated before giving up.
    attempts: int = 8
    initial_backoff: float = 0.2
    multiplier: float = 2.0
    max_backoff: float = 5.0
    #: Relative randomisation of each wait (0.2 = +-20%).
    jitter: float = 0.2
    #: Status codes worth another attempt: the connection or server went away.
    retryable: frozenset[StatusCode] = field(
        default_factory=lambda: frozenset(
            {StatusCode.UNAVAILABLE, StatusCode.ABORTED, StatusCode.INTERNAL, StatusCode.UNKNOWN}
        )
    )

    def delay(self, failures: int) -> float:
        """The wait before the next attempt after ``failures`` consecutive failures."""
        base = min(self.initial_backoff * self.multiplier ** max(failures - 1, 0), self.max_backoff)
        return base * (1 + random.uniform(-self.jitter, self.jitter))


def client_tls_context(
    ca_file: Path | None, *, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A TLS client context trusting ``ca_file`` (or the system store when ``None``).

    With ``cert`` (and ``key``, unless the key is in the same PEM) the client
    presents that certificate: the server's mutual TLS takes the user id
    from it.
    """
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    if cert is not None:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load client certificate {cert} / key {key}: {exc}") from exc
    elif key is not None:
        raise ValueError("a client key needs its certificate (tls_cert)")
    return context


def unwrap_group(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups, else ``exc``.

    trio nurseries wrap what leaves them in an :class:`ExceptionGroup` even
    when only one task failed; callers want the :class:`RpcError` itself.
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@asynccontextmanager
async def open_channel(
    target: str,
    *,
    tls_ca: Path | None = None,
    tls: bool = False,
    server_name: str | None = None,
    token: str | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    interceptors: Sequence[ClientInterceptor] = (),
) -> AsyncIterator[Channel]:
    """A channel to ``target`` (``HOST:PORT``), over TLS if ``tls``, ``tls_ca`` or ``tls_cert``.

    ``token`` goes with every call as ``authorization: Bearer <token>``;
    ``tls_cert``/``tls_key`` are the client certificate of mutual TLS.
    Errors raised in the block come out as themselves, not wrapped in the
    exception group of the channel's nursery. The channel's own reconnection
    backoff is kept short (0.1 s growing to 2 s) because the helpers here
    pace their resumptions themselves; a connection attempt is given 5 s.
    The channel retries the reads of :data:`RETRIED_READS` that fail
    UNAVAILABLE before any response (:data:`SERVICE_CONFIG`). It accepts
    DATA frames up to :data:`MAX_FRAME_SIZE`. ``interceptors`` wrap every
    call (the first outermost).
    """
    if token is not None and (not token or any(c.isspace() for c in token)):
        raise ValueError("a bearer token must be non-empty and without spaces")
    defaults = CallOptions(metadata=[("authorization", f"Bearer {token}")] if token else None)
    options = ChannelOptions(
        backoff=BackoffPolicy(initial_backoff=0.1, max_backoff=2.0, min_connect_timeout=5.0),
        call_defaults=defaults,
        service_config=SERVICE_CONFIG,
        connection=ConnectionConfig(max_frame_size=MAX_FRAME_SIZE),
    )
    secure = tls or tls_ca is not None or tls_cert is not None
    ssl_context = client_tls_context(tls_ca, cert=tls_cert, key=tls_key) if secure else None
    try:
        async with Channel(
            target,
            ssl_context=ssl_context,
            options=options,
            server_hostname=server_name,
            interceptors=interceptors,
        ) as channel:
            yield channel
    except BaseExceptionGroup as group:
        # The channel's nursery wraps an error of the block in a group.
        inner = unwrap_group(group)
        if inner is group:
            raise
        raise inner from None


def part_path(dest: Path) -> Path:
    """Where a download to ``dest`` keeps its bytes until it is complete."""
    return dest.with_name(dest.name + ".part")


async def file_sha256(path: Path) -> str:
    """The lowercase hex sha256 of a file, hashed in a worker thread."""

    def digest() -> str:
        hasher = hashlib.sha256()
        with path.open("rb") as file:
            while block := file.read(_HASH_BLOCK):
                hasher.update(block)
        return hasher.hexdigest()

    return await trio.to_thread.run_sync(digest)
