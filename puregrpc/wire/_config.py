"""Window sizes and limits of one connection: :class:`ConnectionConfig`."""

from __future__ import annotations

from dataclasses import dataclass

from ._framing import DEFAULT_MAX_RECEIVE_MESSAGE_SIZE
from ._metadata import DEFAULT_MAX_METADATA_SIZE

#: Default receive window we advertise per stream (SETTINGS_INITIAL_WINDOW_SIZE).
DEFAULT_STREAM_WINDOW = 1024 * 1024
#: Default receive window for the whole connection (raised by WINDOW_UPDATE on
#: stream 0 right after the preface, as grpc-go and grpcio do, so that one
#: stream's unconsumed bytes cannot starve the others).
DEFAULT_CONNECTION_WINDOW = 16 * 1024 * 1024
#: RFC 9113 §6.9.2: every connection starts with this window, whatever SETTINGS say.
RFC_INITIAL_WINDOW = 65_535
#: RFC 9113 §6.9.1: the largest window a peer may hold.
MAX_WINDOW = 2**31 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionConfig:
    """Limits and window sizes of one connection; the defaults suit most users."""

    #: Receive window per stream we advertise (SETTINGS_INITIAL_WINDOW_SIZE).
    stream_window: int = DEFAULT_STREAM_WINDOW
    #: Receive window of the whole connection.
    connection_window: int = DEFAULT_CONNECTION_WINDOW
    #: Largest DATA frame payload we accept (SETTINGS_MAX_FRAME_SIZE).
    max_frame_size: int = 16_384
    #: Calls the peer may open at once (SETTINGS_MAX_CONCURRENT_STREAMS);
    #: meaningful for servers.
    max_concurrent_streams: int = 1024
    #: Largest metadata block we accept per call (SETTINGS_MAX_HEADER_LIST_SIZE);
    #: a call over it ends with RESOURCE_EXHAUSTED.
    max_header_list_size: int = DEFAULT_MAX_METADATA_SIZE
    #: Largest message we accept, after decompression; larger ones end the call
    #: with RESOURCE_EXHAUSTED.
    max_receive_message_size: int = DEFAULT_MAX_RECEIVE_MESSAGE_SIZE
    #: Largest message we agree to send; ``None`` for no limit.
    max_send_message_size: int | None = None
    #: Fraction of a window that must be consumed before we grant it back:
    #: 0.5 means one WINDOW_UPDATE per half window.
    grant_ratio: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.stream_window <= MAX_WINDOW:
            raise ValueError(f"stream_window must be 1..{MAX_WINDOW}, got {self.stream_window}")
        if not RFC_INITIAL_WINDOW <= self.connection_window <= MAX_WINDOW:
            raise ValueError(
                f"connection_window must be {RFC_INITIAL_WINDOW}..{MAX_WINDOW}, "
                f"got {self.connection_window}"
            )
        if not 16_384 <= self.max_frame_size <= 16_777_215:
            raise ValueError(f"max_frame_size must be 16384..16777215, got {self.max_frame_size}")
        if not 0 < self.grant_ratio <= 1:
            raise ValueError(f"grant_ratio must be in (0, 1], got {self.grant_ratio}")
