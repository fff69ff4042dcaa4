"""Who is calling: :class:`Identity`, and the token tables that define callers.

A caller is authenticated one of two ways (see :mod:`.authentication`):

* a **bearer token** (``authorization: Bearer <token>`` metadata) found in
  the server's token table, which maps each token to a user id and roles;
* a **client certificate** (mutual TLS): the user id is the certificate's
  subject common name, or its first subject alternative name.

With neither configured, the server runs in *open development mode*:
callers are anonymous, and each connection is an anonymous caller of its
own (:func:`anonymous_on`), so what one anonymous client does (its file,
metrics and batch events) is not another's to see.

Token tables come from a file (``serve --tokens FILE``) or from flags
(``serve --token TOKEN:USER[:ROLE,...]``). A file is either lines of the
flag's form::

    # token:user:roles (roles optional, comma-separated)
    4f1c...e9:ann:admin
    77ab...03:bob

or, when its name ends in ``.toml``, TOML::

    [[tokens]]
    token = "4f1c...e9"
    user = "ann"
    roles = ["admin"]

Role ``admin`` sees every event and may read every table through
InteractiveQuery (:mod:`.access`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = [
    "ADMIN_ROLE",
    "ANONYMOUS",
    "Identity",
    "TokenTableError",
    "anonymous_on",
    "load_token_file",
    "parse_token_spec",
    "with_admins",
]

#: The role that sees everything.
ADMIN_ROLE = "admin"

#: A user id or role: 1..128 printable characters without ``:``, ``,`` or spaces.
_NAME = re.compile(r"[^\x00-\x20\x7f:,]{1,128}")
#: A token: 8..512 printable characters without spaces or ``:``.
_TOKEN = re.compile(r"[^\x00-\x20\x7f:]{8,512}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """An authenticated caller, or the anonymous one."""

    #: The user id ("" for the anonymous caller).
    user_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    #: How it was established: ``"token"``, ``"certificate"`` or ``"anonymous"``.
    source: str = "token"
    #: For an anonymous caller: its connection, by an id no other connection
    #: of the server's life has ("" for :data:`ANONYMOUS`, which is nobody's).
    connection: str = ""

    @property
    def anonymous(self) -> bool:
        """True for the caller of open development mode (no credentials checked)."""
        return self.source == "anonymous"

    @property
    def is_admin(self) -> bool:
        """True if the caller has the ``admin`` role."""
        return ADMIN_ROLE in self.roles

    def __str__(self) -> str:
        return "anonymous" if self.anonymous else f"user {self.user_id!r}"


#: An anonymous caller whose connection is unknown: what it publishes about
#: its own work is seen by administrators only.
ANONYMOUS = Identity(user_id="", source="anonymous")


def anonymous_on(connection: str) -> Identity:
    """The anonymous caller of open development mode on ``connection`` (a unique id)."""
    return Identity(user_id="", source="anonymous", connection=connection)


class TokenTableError(ValueError):
    """A token file or ``--token`` flag that cannot be used (the message says where)."""


def _check(kind: str, value: str, pattern: re.Pattern[str], where: str) -> str:
    if not pattern.fullmatch(value):
        rule = (
            "8..512 printable characters without spaces or ':'"
            if pattern is _TOKEN
            else "1..128 printable characters without spaces, ':' or ','"
        )
        raise TokenTableError(f"{where}: {kind} must be {rule}")
    return value


def _entry(token: str, user: str, roles: Iterable[str], where: str) -> tuple[str, Identity]:
    _check("the token", token, _TOKEN, where)
    _check("the user id", user, _NAME, where)
    checked = frozenset(_check("a role", role, _NAME, where) for role in roles)
    return token, Identity(user_id=user, roles=checked, source="token")


def parse_token_spec(spec: str, where: str = "--token") -> tuple[str, Identity]:
    """``TOKEN:USER`` or ``TOKEN:USER:ROLE,ROLE`` as (token, identity)."""
    parts = spec.strip().split(":")
    if len(parts) not in (2, 3):
        raise TokenTableError(f"{where}: expected TOKEN:USER or TOKEN:USER:ROLES")
    roles = [r.strip() for r in parts[2].split(",") if r.strip()] if len(parts) == 3 else []
    return _entry(parts[0], parts[1], roles, where)


def _add(table: dict[str, Identity], entry: tuple[str, Identity], where: str) -> None:
    token, identity = entry
    if token in table:
        raise TokenTableError(f"{where}: this token is already given to {table[token]}")
    table[token] = identity


def _from_lines(text: str, name: str) -> dict[str, Identity]:
    table: dict[str, Identity] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{name}:{number}"
        _add(table, parse_token_spec(line, where), where)
    return table


def _from_toml(text: str, name: str) -> dict[str, Identity]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TokenTableError(f"{name}: not valid TOML: {exc}") from None
    entries = document.get("tokens", [])
    if not isinstance(entries, list):
        raise TokenTableError(f"{name}: 'tokens' must be an array of tables ([[tokens]])")
    table: dict[str, Identity] = {}
    for index, entry in enumerate(entries):
        where = f"{name}: tokens[{index}]"
        if not isinstance(entry, dict):
            raise TokenTableError(f"{where}: must be a table with token, user and roles")
        token, user, roles = entry.get("token"), entry.get("user"), entry.get("roles", [])
        if not isinstance(token, str) or not isinstance(user, str):
            raise TokenTableError(f"{where}: needs string keys 'token' and 'user'")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise TokenTableError(f"{where}: 'roles' must be a list of strings")
        _add(table, _entry(token, user, roles, where), where)
    return table


def load_token_file(path: Path) -> dict[str, Identity]:
    """The token table of ``path`` (``token:user:roles`` lines, or TOML if it ends in .toml)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenTableError(f"cannot read token file {path}: {exc}") from None
    table = _from_toml(text, str(path)) if path.suffix == ".toml" else _from_lines(text, str(path))
    if not table:
        raise TokenTableError(f"token file {path} defines no tokens")
    return table


def with_admins(table: Mapping[str, Identity], admins: Iterable[str]) -> dict[str, Identity]:
    """``table`` with the ``admin`` role added to every identity whose user is in ``admins``."""
    wanted = frozenset(admins)
    return {
        token: replace(identity, roles=identity.roles | {ADMIN_ROLE})
        if identity.user_id in wanted
        else identity
        for token, identity in table.items()
    }
