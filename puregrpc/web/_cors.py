"""CORS for gRPC-Web (PROTOCOL-WEB.md, CORS preflight; the Fetch standard's CORS protocol).

A browser page may call a server of another origin only if the server says
so. For gRPC-Web requests (a POST with a non-safelisted content-type and
custom headers) the browser first sends a *preflight* ``OPTIONS`` naming the
method and headers it wants; the server answers which it allows. The actual
response then names the origin allowed to read it
(``Access-Control-Allow-Origin``) and the response headers the page may see
(``Access-Control-Expose-Headers``: by default a page sees none of
``grpc-status``, ``grpc-message`` or custom metadata).

Same-origin requests need none of this and are always served. A request
without ``Origin`` is not from a browser page (or is same-origin): served.
A cross-origin request from an origin not allowed is refused
(PERMISSION_DENIED), not only hidden from the page: the call never runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Headers a gRPC-Web client sends besides custom metadata (allowed in preflights).
WEB_REQUEST_HEADERS = (
    b"content-type",
    b"x-grpc-web",
    b"x-user-agent",
    b"grpc-timeout",
    b"grpc-accept-encoding",
    b"grpc-encoding",
    b"connect-protocol-version",
)
#: Response headers every page may read (custom initial metadata is added per call).
WEB_EXPOSED_HEADERS = (b"grpc-status", b"grpc-message", b"grpc-status-details-bin")
#: How long a browser may cache a preflight answer, in seconds.
PREFLIGHT_MAX_AGE = b"7200"


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Which origins besides the server's own may call it from a browser page.

    ``allowed_origins`` holds origins as browsers send them
    (``https://app.example.com``, scheme and host and a non-default port),
    or ``"*"`` for any origin.
    """

    allowed_origins: frozenset[str] = frozenset()

    @classmethod
    def of(cls, origins: Iterable[str]) -> CorsPolicy:
        """A policy allowing ``origins`` (each normalised: lower-case, no trailing ``/``)."""
        return cls(frozenset(origin.strip().rstrip("/").lower() for origin in origins))

    def allows(self, origin: bytes | None, *, scheme: str, authority: str) -> bool:
        """May a request from ``origin`` to ``scheme://authority`` be served?"""
        if origin is None:
            return True
        text = origin.decode("latin-1").strip().lower()
        if text == f"{scheme}://{authority}".lower():
            return True  # same origin
        return "*" in self.allowed_origins or text in self.allowed_origins

    def response_headers(
        self, origin: bytes | None, *, metadata_names: Sequence[bytes] = ()
    ) -> list[tuple[bytes, bytes]]:
        """CORS fields of an actual response to an allowed request (none without ``Origin``)."""
        if origin is None:
            return []
        exposed = b", ".join((*WEB_EXPOSED_HEADERS, *metadata_names))
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", exposed),
            (b"vary", b"origin"),
        ]

    def preflight_headers(
        self,
        origin: bytes | None,
        requested_headers: bytes | None,
        *,
        scheme: str,
        authority: str,
    ) -> list[tuple[bytes, bytes]] | None:
        """The fields of the answer to a preflight ``OPTIONS``; None when the origin is refused.

        Allowed: POST (and OPTIONS); the gRPC-Web headers and whatever custom
        metadata the preflight asks for (PROTOCOL-WEB.md: "to whatever the
        preflight request carries").
        """
        if origin is None or not self.allows(origin, scheme=scheme, authority=authority):
            return None
        asked = [
            name.strip().lower() for name in (requested_headers or b"").split(b",") if name.strip()
        ]
        allowed = list(WEB_REQUEST_HEADERS)
        allowed += [name for name in asked if name not in allowed]
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-allow-methods", b"POST, OPTIONS"),
            (b"access-control-allow-headers", b", ".join(allowed)),
            (b"access-control-max-age", PREFLIGHT_MAX_AGE),
            (b"vary", b"origin"),
        ]
