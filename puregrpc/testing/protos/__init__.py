"""Generated code of proto/puregrpc/testing/echo.proto; see puregrpc.protoc.regen."""
