"""Generated code of the channelz proto (grpc.channelz.v1): see puregrpc.protoc.regen."""
