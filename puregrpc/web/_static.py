"""Static pages served beside gRPC-Web on the same port: GET and HEAD, without I/O.

Theory of operation
===================

A :class:`StaticSite` is a fixed table, path -> :class:`StaticFile` (the
bytes, their content type and a strong ETag made from them), built once
when the server is configured (``WebOptions.site``). Both HTTP drivers ask
it the same question, :meth:`StaticSite.answer`, for a request that is not a
gRPC-Web call (a ``GET`` or ``HEAD``), and send the :class:`PageAnswer` it
returns:

==========================  ================================================
``GET /`` (or ``/dir/``)    that directory's ``index.html``
``GET /path`` of the table  200, the bytes, Content-Type, Content-Length,
                            ETag, ``cache-control: no-cache`` (browsers
                            revalidate, so a new build is seen at once)
``If-None-Match`` its ETag  304, no body
``HEAD``                    the same head, no body (RFC 9110 §9.3.2)
another path                404, a short text body
==========================  ================================================

The query string is ignored; a path is matched exactly (no percent-decoding
and no ``..``: the table holds every name that exists, so nothing outside it
can be reached). Other methods are refused by the drivers with 405. Native
gRPC never comes here: only requests the gRPC parsers refuse are looked at.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Content types of the suffixes a page uses, whatever the platform's
#: mimetypes database says (it varies, and JavaScript must be text/javascript
#: for a module script to load).
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".map": "application/json",
}

#: Fields every page answer carries: the browser must not guess a type
#: (RFC 9110 leaves sniffing to it; ``nosniff`` stops it), and the page may
#: load only what its own origin serves.
_PAGE_FIELDS = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
)


def content_type_of(name: str) -> str:
    """The Content-Type for a file called ``name`` (by its suffix)."""
    suffix = Path(name).suffix.lower()
    known = _CONTENT_TYPES.get(suffix)
    if known is not None:
        return known
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticFile:
    """One file of a :class:`StaticSite`."""

    #: The bytes served.
    body: bytes
    #: The Content-Type sent with them.
    content_type: str
    #: A strong validator of ``body`` (quoted, RFC 9110 §8.8.3); made from it.
    etag: bytes = field(default=b"")

    def __post_init__(self) -> None:
        if not self.etag:
            digest = hashlib.sha256(self.body).hexdigest()[:32]
            object.__setattr__(self, "etag", f'"{digest}"'.encode("ascii"))


@dataclass(frozen=True, slots=True, kw_only=True)
class PageAnswer:
    """What to send for a GET or HEAD: a status, header fields, a body."""

    #: The HTTP status (200, 304 or 404).
    status: int
    #: The fields besides ``:status``, content-length included.
    fields: tuple[tuple[bytes, bytes], ...]
    #: The body (sent for GET only: a HEAD answer has the same fields and none).
    body: bytes


class StaticSite:
    """Files a server sends to ``GET`` and ``HEAD``, next to its gRPC and gRPC-Web calls.

    ``files`` maps absolute paths (``"/index.html"``, ``"/app.js"``) to their
    files; ``/`` and any path ending in ``/`` serve that directory's
    ``index.html``. Build one from a directory with :meth:`from_directory`.
    """

    def __init__(self, files: Mapping[str, StaticFile]) -> None:
        for path in files:
            if not path.startswith("/") or path.endswith("/"):
                raise ValueError(f"a static path starts with '/' and names a file, got {path!r}")
        self._files: dict[bytes, StaticFile] = {
            path.encode("utf-8"): file for path, file in files.items()
        }

    @classmethod
    def from_directory(cls, directory: Path) -> StaticSite:
        """Every file under ``directory`` (read now), at its relative path."""
        files: dict[str, StaticFile] = {}
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                name = "/" + path.relative_to(directory).as_posix()
                files[name] = StaticFile(body=path.read_bytes(), content_type=content_type_of(name))
        if not files:
            raise ValueError(f"no files to serve in {directory}")
        return cls(files)

    @property
    def paths(self) -> list[str]:
        """The paths served, sorted."""
        return sorted(path.decode("utf-8") for path in self._files)

    def answer(self, target: bytes, if_none_match: bytes | None = None) -> PageAnswer:
        """The answer to a GET (or HEAD) of request target ``target``."""
        path = target.split(b"?", 1)[0].split(b"#", 1)[0]
        if path.endswith(b"/"):
            path += b"index.html"
        file = self._files.get(path)
        if file is None:
            text = b"not found: this server has no page at that path\n"
            fields: tuple[tuple[bytes, bytes], ...] = (
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(text)).encode("ascii")),
                *_PAGE_FIELDS,
            )
            return PageAnswer(status=404, fields=fields, body=text)
        validators: tuple[tuple[bytes, bytes], ...] = (
            (b"etag", file.etag),
            (b"cache-control", b"no-cache"),
        )
        if if_none_match is not None and _matches(if_none_match, file.etag):
            return PageAnswer(status=304, fields=validators, body=b"")
        fields = (
            (b"content-type", file.content_type.encode("ascii")),
            (b"content-length", str(len(file.body)).encode("ascii")),
            *validators,
            *_PAGE_FIELDS,
        )
        return PageAnswer(status=200, fields=fields, body=file.body)


def _matches(if_none_match: bytes, etag: bytes) -> bool:
    """Whether an If-None-Match list names ``etag`` (weak comparison, RFC 9110 §13.1.2)."""
    for candidate in if_none_match.split(b","):
        candidate = candidate.strip()
        if candidate == b"*" or candidate.removeprefix(b"W/") == etag:
            return True
    return False
