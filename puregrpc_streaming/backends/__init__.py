"""Backends of the streaming service: small interfaces and their embedded defaults.

The handlers see only the interfaces of :mod:`.base` (``FileStore``,
``EventBus``, ``DatasetStore``, ``KeyValueStore``, ``MetricsStore``,
``RoomStore``). The embedded defaults are local files (:mod:`.files`), an
in-process bus (:mod:`.events`) over a durable log (:mod:`.event_log`),
room membership (:mod:`.rooms`) and SQLite (:mod:`.sqlite`), opened
together by :func:`open_embedded_backends`. The bus may instead be a Redis
stream shared by many instances (:mod:`.redis_events`, imported only when
configured: it needs the ``redis`` extra).
"""

from .base import Backends as Backends
from .base import BusClosed as BusClosed
from .base import BusEvent as BusEvent
from .base import BusUnavailable as BusUnavailable
from .base import DatasetRow as DatasetRow
from .base import DatasetStore as DatasetStore
from .base import EventBus as EventBus
from .base import FileIdError as FileIdError
from .base import FileNotFound as FileNotFound
from .base import FileReader as FileReader
from .base import FileStore as FileStore
from .base import KeyValueStore as KeyValueStore
from .base import KvChange as KvChange
from .base import KvOutcome as KvOutcome
from .base import KvRecord as KvRecord
from .base import MembershipFull as MembershipFull
from .base import MetricSample as MetricSample
from .base import MetricsStore as MetricsStore
from .base import QueryCursor as QueryCursor
from .base import QueryError as QueryError
from .base import QueryLimits as QueryLimits
from .base import QuerySession as QuerySession
from .base import Retention as Retention
from .base import RoomStore as RoomStore
from .base import StoredFile as StoredFile
from .base import StoreUnavailable as StoreUnavailable
from .base import SubscriberTooSlow as SubscriberTooSlow
from .base import Subscription as Subscription
from .base import UploadSink as UploadSink
from .embedded import EmbeddedBackends as EmbeddedBackends
from .embedded import open_embedded_backends as open_embedded_backends
from .event_log import SqliteEventLog as SqliteEventLog
from .events import InProcessEventBus as InProcessEventBus
from .files import LocalFileStore as LocalFileStore
from .rooms import RoomDirectory as RoomDirectory
from .sqlite import SqliteDatabase as SqliteDatabase
from .sqlite import SqliteDatasetStore as SqliteDatasetStore
from .sqlite import SqliteKeyValueStore as SqliteKeyValueStore
from .sqlite import SqliteMetricsStore as SqliteMetricsStore

__all__ = [
    "Backends",
    "BusClosed",
    "BusEvent",
    "BusUnavailable",
    "DatasetRow",
    "DatasetStore",
    "EmbeddedBackends",
    "EventBus",
    "FileIdError",
    "FileNotFound",
    "FileReader",
    "FileStore",
    "InProcessEventBus",
    "KeyValueStore",
    "KvChange",
    "KvOutcome",
    "KvRecord",
    "LocalFileStore",
    "MembershipFull",
    "MetricSample",
    "MetricsStore",
    "QueryCursor",
    "QueryError",
    "QueryLimits",
    "QuerySession",
    "Retention",
    "RoomDirectory",
    "RoomStore",
    "SqliteDatabase",
    "SqliteDatasetStore",
    "SqliteEventLog",
    "SqliteKeyValueStore",
    "SqliteMetricsStore",
    "StoreUnavailable",
    "StoredFile",
    "SubscriberTooSlow",
    "Subscription",
    "UploadSink",
    "open_embedded_backends",
]
