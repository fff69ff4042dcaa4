"""Per-call options: what a call asks for, and how it meets the channel's defaults.

A call's options come from two places: the channel's defaults
(``ChannelOptions(call_defaults=CallOptions(...))``) and the call itself,
given as one :class:`CallOptions` (``options=``), as keywords (``timeout=``,
``metadata=``, ``compression=``, ``wait_for_ready=``), or both, keywords
winning. :func:`resolve_call_options` is the one place they are merged:

* a field the call sets wins over the channel's default;
* metadata adds up: the channel's first, then the call's;
* what nobody sets takes the library default (no deadline, no compression,
  fail fast).

A service config's method config sits between the two (it wins over the
channel's defaults, the call wins over it), with one twist that
service_config.md prescribes: its ``timeout`` is a ceiling, so a call's own
timeout only counts when it is shorter.

The result is plain data, so a generated stub passes it through without
knowing which options exist: a new option is one field here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeAlias, TypedDict

from ..wire import Metadata, MetadataValue
from ._service_config import MethodConfig

#: Metadata a call accepts: a ``Metadata``, a mapping, or (key, value) pairs.
MetadataLike: TypeAlias = (
    Metadata | Mapping[str, MetadataValue] | Iterable[tuple[str, MetadataValue]]
)


def as_metadata(metadata: MetadataLike | None) -> Metadata | None:
    """``metadata`` as :class:`Metadata` (validated), or ``None``."""
    if metadata is None or isinstance(metadata, Metadata):
        return metadata
    return Metadata(metadata)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOptions:
    """What one call asks for; ``None`` (or empty) means "the channel's default".

    Frozen: derive variants with :func:`dataclasses.replace` or
    :meth:`merged`. Metadata given as a mapping or pairs is checked and
    stored as :class:`Metadata`.
    """

    #: Seconds the call may take, from when it is made (None: no deadline).
    timeout: float | None = None
    #: Request metadata: added after the channel's.
    metadata: MetadataLike | None = None
    #: Compress requests with this encoding ("gzip", "deflate"; "identity": off).
    compression: str | None = None
    #: Wait for a connection (True) or fail fast with UNAVAILABLE (False).
    wait_for_ready: bool | None = None

    def __post_init__(self) -> None:
        timeout = self.timeout
        if timeout is not None and (math.isnan(timeout) or timeout < 0):
            raise ValueError(f"a call's timeout must be a non-negative number, got {timeout!r}")
        if self.metadata is not None and not isinstance(self.metadata, Metadata):
            object.__setattr__(self, "metadata", as_metadata(self.metadata))

    def merged(self, override: CallOptions) -> CallOptions:
        """These options as defaults under ``override``: its set fields win, metadata adds up."""
        metadata = as_metadata(self.metadata)
        extra = as_metadata(override.metadata)
        if extra is not None:
            if metadata is None:
                metadata = extra
            else:
                metadata = metadata.copy()
                metadata.extend(extra)
        return CallOptions(
            timeout=self.timeout if override.timeout is None else override.timeout,
            metadata=metadata,
            compression=self.compression if override.compression is None else override.compression,
            wait_for_ready=(
                self.wait_for_ready if override.wait_for_ready is None else override.wait_for_ready
            ),
        )


class CallKeywords(TypedDict, total=False):
    """The keyword forms of :class:`CallOptions`, as calls and generated stubs take them."""

    timeout: float | None
    metadata: MetadataLike | None
    compression: str | None
    wait_for_ready: bool | None


#: No options at all: what a call that says nothing resolves against.
NO_OPTIONS = CallOptions()


@dataclass(frozen=True, slots=True)
class ResolvedCallOptions:
    """A call's options after the merge: every field decided."""

    timeout: float | None
    metadata: Metadata | None
    compression: str | None
    wait_for_ready: bool


_KEYWORDS = frozenset(CallKeywords.__annotations__)


def resolve_call_options(
    defaults: CallOptions,
    options: CallOptions | None,
    keywords: CallKeywords,
    method: MethodConfig | None = None,
) -> ResolvedCallOptions:
    """Merge the channel's ``defaults``, a call's ``options`` and its ``keywords`` (in that order).

    ``method``, the service config's entry for the call's method, comes
    between the defaults and the call (its timeout: the shorter of it and the
    call's own). Raises :class:`TypeError` for a keyword that is not a call option.
    """
    call = options if options is not None else NO_OPTIONS
    if keywords:
        unknown = keywords.keys() - _KEYWORDS
        if unknown:
            raise TypeError(f"unknown call option(s): {', '.join(sorted(unknown))}")
        call = call.merged(
            CallOptions(
                timeout=keywords.get("timeout"),
                metadata=keywords.get("metadata"),
                compression=keywords.get("compression"),
                wait_for_ready=keywords.get("wait_for_ready"),
            )
        )
    merged = call if defaults is NO_OPTIONS else defaults.merged(call)
    compression = merged.compression
    timeout = merged.timeout
    wait_for_ready = merged.wait_for_ready
    if method is not None:
        if method.timeout is not None:
            own = call.timeout
            timeout = method.timeout if own is None else min(own, method.timeout)
        if call.wait_for_ready is None and method.wait_for_ready is not None:
            wait_for_ready = method.wait_for_ready
    return ResolvedCallOptions(
        timeout=timeout,
        metadata=as_metadata(merged.metadata),
        compression=None if compression == "identity" else compression,
        wait_for_ready=bool(wait_for_ready),
    )
