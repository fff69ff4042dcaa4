"""Authentication and authorization from a call's metadata.

:class:`AuthInterceptor` asks an *authenticator* who the caller is, from the
call's metadata (and method), before the handler runs:

* no identity (no credentials, or wrong ones): the call ends UNAUTHENTICATED
  and the handler never runs;
* an identity the *authorizer* refuses for this method: PERMISSION_DENIED;
* otherwise the handler runs, and finds the identity with
  :func:`identity_of` ``(context)``.

``bearer_tokens`` makes an authenticator for ``authorization: Bearer <token>``
metadata from a table of tokens, compared in constant time. Any coroutine
function ``(metadata, method) -> identity | None`` is an authenticator
(checking an API key, a JWT, a client certificate's name...), and any
function ``(identity, method) -> bool`` an authorizer. Methods that must stay
open (health checks, reflection) are listed in ``exempt``, by full path or
by service (``"grpc.health.v1.Health"``).
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from ..runtime import Method
from ..server import ServerCall, ServerContinuation, ServicerContext
from ..wire import Metadata, RpcError, StatusCode

__all__ = ["AuthInterceptor", "Authenticator", "Authorizer", "bearer_tokens", "identity_of"]

#: Who is calling, from the call's metadata; ``None`` when the credentials are missing or bad.
Authenticator = Callable[[Metadata, Method[Any, Any]], Awaitable[object | None]]
#: Whether an identity may call a method (plain or coroutine function).
Authorizer = Callable[[object, Method[Any, Any]], bool | Awaitable[bool]]

#: The key of the identity in ``context.state``.
_IDENTITY_KEY = "puregrpc.identity"


def identity_of(context: ServicerContext) -> object | None:
    """The identity :class:`AuthInterceptor` authenticated for this call, if any."""
    return context.state.get(_IDENTITY_KEY)


def bearer_tokens(tokens: Mapping[str, object]) -> Authenticator:
    """An authenticator accepting ``authorization: Bearer <token>`` for the tokens given.

    ``tokens`` maps each valid token to the identity it stands for. Every
    token is compared in constant time, so the time taken does not tell
    how much of a guess was right.
    """
    table = [(token.encode(), identity) for token, identity in tokens.items()]
    if any(not token for token, _ in table):
        raise ValueError("an empty bearer token would let anyone in")

    async def authenticate(metadata: Metadata, method: Method[Any, Any]) -> object | None:
        value = metadata.get("authorization")
        if not isinstance(value, str):
            return None
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        offered = token.strip().encode()
        found: object | None = None
        for known, identity in table:
            # No early exit: every token is compared, whichever matches.
            if hmac.compare_digest(known, offered):
                found = identity
        return found

    return authenticate


class AuthInterceptor:
    """Refuses calls without valid credentials (UNAUTHENTICATED) or rights (PERMISSION_DENIED).

    ``realm`` names the credentials wanted in the UNAUTHENTICATED message
    (the client's developer reads it); the message never says whether a
    token was unknown or malformed.
    """

    def __init__(
        self,
        authenticate: Authenticator,
        *,
        authorize: Authorizer | None = None,
        exempt: Iterable[str] = (),
        realm: str = "a bearer token in the 'authorization' metadata",
    ) -> None:
        self.authenticate = authenticate
        self.authorize = authorize
        self.exempt = frozenset(name.strip("/") for name in exempt)
        self.realm = realm

    def is_exempt(self, method: Method[Any, Any]) -> bool:
        """Whether ``method`` is served without credentials."""
        return method.path.strip("/") in self.exempt or method.service in self.exempt

    async def intercept(
        self, call: ServerCall[object, object], proceed: ServerContinuation
    ) -> None:
        """Authenticate, authorize, then run the call."""
        method = call.method
        if self.is_exempt(method):
            await proceed(call)
            return
        identity = await self.authenticate(call.metadata, method)
        if identity is None:
            raise RpcError(StatusCode.UNAUTHENTICATED, f"{method.path} needs {self.realm}")
        if self.authorize is not None:
            allowed = self.authorize(identity, method)
            if inspect.isawaitable(allowed):
                allowed = await allowed
            if not allowed:
                raise RpcError(
                    StatusCode.PERMISSION_DENIED, f"{identity} may not call {method.path}"
                )
        call.context.state[_IDENTITY_KEY] = identity
        await proceed(call)
