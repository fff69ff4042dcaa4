"""Generated code of the standard gRPC protos: see puregrpc.protoc.regen."""
