# protoc's --pyi_out types message-valued constructor arguments as a bare
# ``Mapping``, which mypy --strict rejects; added by puregrpc.protoc.regen.
# mypy: disable-error-code="type-arg"
import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FileChunk(_message.Message):
    __slots__ = ("content", "offset", "total_size", "filename")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    offset: int
    total_size: int
    filename: str
    def __init__(self, content: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_size: _Optional[int] = ..., filename: _Optional[str] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("file_id", "start_offset")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    START_OFFSET_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    start_offset: int
    def __init__(self, file_id: _Optional[str] = ..., start_offset: _Optional[int] = ...) -> None: ...

class UploadResponse(_message.Message):
    __slots__ = ("file_id", "size", "checksum")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    size: int
    checksum: str
    def __init__(self, file_id: _Optional[str] = ..., size: _Optional[int] = ..., checksum: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("id", "type", "payload", "timestamp")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    payload: bytes
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., payload: _Optional[bytes] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("event_types", "filter")
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    event_types: _containers.RepeatedScalarFieldContainer[str]
    filter: str
    def __init__(self, event_types: _Optional[_Iterable[str]] = ..., filter: _Optional[str] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("user_id", "room_id", "content", "timestamp")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    room_id: str
    content: str
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., room_id: _Optional[str] = ..., content: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Metric(_message.Message):
    __slots__ = ("name", "value", "labels", "timestamp")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    labels: _containers.ScalarMap[str, str]
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., labels: _Optional[_Mapping[str, str]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MetricsSummary(_message.Message):
    __slots__ = ("total_count", "aggregates")
    class AggregatesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    AGGREGATES_FIELD_NUMBER: _ClassVar[int]
    total_count: int
    aggregates: _containers.ScalarMap[str, float]
    def __init__(self, total_count: _Optional[int] = ..., aggregates: _Optional[_Mapping[str, float]] = ...) -> None: ...

class GetDataRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class GetDataResponse(_message.Message):
    __slots__ = ("key", "value", "version", "updated_at")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    version: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., version: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("start_cursor", "page_size", "filter")
    START_CURSOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    start_cursor: str
    page_size: int
    filter: str
    def __init__(self, start_cursor: _Optional[str] = ..., page_size: _Optional[int] = ..., filter: _Optional[str] = ...) -> None: ...

class DataItem(_message.Message):
    __slots__ = ("id", "data", "cursor", "category", "value")
    ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    id: int
    data: bytes
    cursor: str
    category: str
    value: float
    def __init__(self, id: _Optional[int] = ..., data: _Optional[bytes] = ..., cursor: _Optional[str] = ..., category: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class ProcessRequest(_message.Message):
    __slots__ = ("item_id", "operation", "payload")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    operation: str
    payload: bytes
    def __init__(self, item_id: _Optional[str] = ..., operation: _Optional[str] = ..., payload: _Optional[bytes] = ...) -> None: ...

class ItemFailure(_message.Message):
    __slots__ = ("item_id", "index", "error")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    index: int
    error: str
    def __init__(self, item_id: _Optional[str] = ..., index: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class ProcessResponse(_message.Message):
    __slots__ = ("total", "succeeded", "failed", "failures", "results")
    class ResultsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    total: int
    succeeded: int
    failed: int
    failures: _containers.RepeatedCompositeFieldContainer[ItemFailure]
    results: _containers.ScalarMap[str, str]
    def __init__(self, total: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., failures: _Optional[_Iterable[_Union[ItemFailure, _Mapping]]] = ..., results: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SyncRequest(_message.Message):
    __slots__ = ("key", "value", "base_version", "delete", "change_id")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    base_version: int
    delete: bool
    change_id: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., base_version: _Optional[int] = ..., delete: _Optional[bool] = ..., change_id: _Optional[str] = ...) -> None: ...

class SyncResponse(_message.Message):
    __slots__ = ("kind", "key", "value", "version", "deleted", "change_id", "message")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[SyncResponse.Kind]
        ACK: _ClassVar[SyncResponse.Kind]
        CONFLICT: _ClassVar[SyncResponse.Kind]
        CHANGE: _ClassVar[SyncResponse.Kind]
    KIND_UNSPECIFIED: SyncResponse.Kind
    ACK: SyncResponse.Kind
    CONFLICT: SyncResponse.Kind
    CHANGE: SyncResponse.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    kind: SyncResponse.Kind
    key: str
    value: bytes
    version: int
    deleted: bool
    change_id: str
    message: str
    def __init__(self, kind: _Optional[_Union[SyncResponse.Kind, str]] = ..., key: _Optional[str] = ..., value: _Optional[bytes] = ..., version: _Optional[int] = ..., deleted: _Optional[bool] = ..., change_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("query", "max_rows")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    query: str
    max_rows: int
    def __init__(self, query: _Optional[str] = ..., max_rows: _Optional[int] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("data", "error", "complete", "truncated", "error_code")
    DATA_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    error: str
    complete: bool
    truncated: bool
    error_code: str
    def __init__(self, data: _Optional[bytes] = ..., error: _Optional[str] = ..., complete: _Optional[bool] = ..., truncated: _Optional[bool] = ..., error_code: _Optional[str] = ...) -> None: ...
