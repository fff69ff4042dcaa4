"""The standard gRPC interop test service (grpc/grpc doc/interop-test-descriptions.md).

``python -m puregrpc.interop.server`` serves ``grpc.testing.TestService``;
``python -m puregrpc.interop.client`` runs the test cases against any server.
:data:`CASES` are those cases as functions, for test suites that drive them
in-process; :class:`MessageFlags` says how a case sees per-message compression.
"""

from ._cases import CASES as CASES
from ._cases import SPECIAL_STATUS_MESSAGE as SPECIAL_STATUS_MESSAGE
from ._cases import CaseContext as CaseContext
from ._cases import InteropFailure as InteropFailure
from ._cases import MessageFlags as MessageFlags

__all__ = ["CASES", "SPECIAL_STATUS_MESSAGE", "CaseContext", "InteropFailure", "MessageFlags"]
