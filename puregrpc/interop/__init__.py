"""The standard gRPC interop test service."""
