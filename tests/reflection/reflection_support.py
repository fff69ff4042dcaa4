"""What the reflection tests share (a unique module name: see tests/runtime/conftest.py)."""

from __future__ import annotations

#: What the ``served`` fixture (conftest.py) registers, besides reflection itself.
SERVED_SERVICES = ["grpc.health.v1.Health", "grpc.testing.TestService"]
REFLECTION_SERVICES = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
]
