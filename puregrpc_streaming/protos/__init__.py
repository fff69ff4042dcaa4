"""Generated protobuf and puregrpc code for streaming.v1 (see puregrpc/protoc/regen.py)."""
