# protoc's --pyi_out types message-valued constructor arguments as a bare
# ``Mapping``, which mypy --strict rejects; added by puregrpc.protoc.regen.
# mypy: disable-error-code="type-arg"
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EchoRequest(_message.Message):
    __slots__ = ("message", "count", "payload")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    message: str
    count: int
    payload: bytes
    def __init__(self, message: _Optional[str] = ..., count: _Optional[int] = ..., payload: _Optional[bytes] = ...) -> None: ...

class EchoReply(_message.Message):
    __slots__ = ("message", "index", "payload")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    message: str
    index: int
    payload: bytes
    def __init__(self, message: _Optional[str] = ..., index: _Optional[int] = ..., payload: _Optional[bytes] = ...) -> None: ...
