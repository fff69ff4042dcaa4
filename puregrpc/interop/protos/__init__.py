"""Generated code of the standard interop protos: see puregrpc.protoc.regen."""
