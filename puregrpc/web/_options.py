"""How a server serves gRPC-Web."""

from __future__ import annotations

from dataclasses import dataclass

from ._cors import CorsPolicy
from ._static import StaticSite


@dataclass(frozen=True, slots=True, kw_only=True)
class WebOptions:
    """gRPC-Web settings of a :class:`~puregrpc.server.Server` (``ServerOptions.grpc_web``).

    gRPC-Web is served on the same port as native gRPC: over HTTP/2 beside
    native calls, and over HTTP/1.1 (told apart from HTTP/2 by the first
    bytes of a connection).
    """

    #: Origins besides the server's own whose pages may call it
    #: (``"https://app.example.com"``; ``"*"``: any). Same-origin pages and
    #: clients that send no ``Origin`` are always served.
    allowed_origins: tuple[str, ...] = ()
    #: Serve HTTP/1.1 connections (False: every connection is HTTP/2).
    http1: bool = True
    #: An HTTP/1.1 connection must deliver each request head within this many
    #: seconds of opening or of its previous response (slow-header attacks
    #: and idle keep-alive connections are closed).
    request_head_timeout: float = 10.0
    #: Files served to ``GET`` and ``HEAD`` on the same port, over HTTP/1.1
    #: and HTTP/2 (None: those get 404).
    site: StaticSite | None = None

    def __post_init__(self) -> None:
        if not self.request_head_timeout > 0:
            raise ValueError(
                f"WebOptions.request_head_timeout must be positive, got {self.request_head_timeout}"
            )

    @property
    def cors(self) -> CorsPolicy:
        """The CORS policy of :attr:`allowed_origins`."""
        return CorsPolicy.of(self.allowed_origins)
