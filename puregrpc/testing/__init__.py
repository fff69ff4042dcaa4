"""puregrpc.testing: what tests of puregrpc programs (and of puregrpc) use.

:mod:`puregrpc.testing.protos` holds a small ``puregrpc.testing.Echo``
service (``proto/puregrpc/testing/echo.proto``) with its generated modules:
all four call types over a one-field message, for tests and examples that
need a real protobuf service without defining one.
"""
