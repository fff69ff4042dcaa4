"""puregrpc.interceptors: ready-made interceptors for servers, and a call log for clients.

* :class:`CallLogInterceptor`: one log line when a call starts (DEBUG) and
  one when it ends (status, duration, messages in and out; errors at WARNING);
* :class:`AuthInterceptor`: check the call's metadata (a bearer token, an API
  key) before the handler runs: UNAUTHENTICATED without valid credentials,
  PERMISSION_DENIED when the identity may not call the method;
* :class:`ExceptionMappingInterceptor`: map the application's exception types
  to status codes (``KeyError`` -> NOT_FOUND), instead of UNKNOWN.

For channels, :class:`ClientCallLogInterceptor` logs each call the client
makes (``Channel(..., interceptors=[ClientCallLogInterceptor()])``).

Pass the server ones to ``Server(..., interceptors=[...])``; the first is outermost, so
put the call log first to log what the others decided::

    Server(
        [GreeterServicer()],
        interceptors=[
            CallLogInterceptor(),
            AuthInterceptor(bearer_tokens({"s3cret": "alice"})),
            ExceptionMappingInterceptor({LookupError: StatusCode.NOT_FOUND}),
        ],
    )
"""

from .auth import Authenticator as Authenticator
from .auth import AuthInterceptor as AuthInterceptor
from .auth import Authorizer as Authorizer
from .auth import bearer_tokens as bearer_tokens
from .auth import identity_of as identity_of
from .call_log import CallLogInterceptor as CallLogInterceptor
from .client_call_log import ClientCallLogInterceptor as ClientCallLogInterceptor
from .error_mapping import ExceptionMappingInterceptor as ExceptionMappingInterceptor

__all__ = [
    "AuthInterceptor",
    "Authenticator",
    "Authorizer",
    "CallLogInterceptor",
    "ClientCallLogInterceptor",
    "ExceptionMappingInterceptor",
    "bearer_tokens",
    "identity_of",
]
