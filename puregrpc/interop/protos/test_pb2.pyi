# protoc's --pyi_out types message-valued constructor arguments as a bare
# ``Mapping``, which mypy --strict rejects; added by puregrpc.protoc.regen.
# mypy: disable-error-code="type-arg"
from puregrpc.interop.protos import empty_pb2 as _empty_pb2
from puregrpc.interop.protos import messages_pb2 as _messages_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
