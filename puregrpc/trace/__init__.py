"""See gRPC on the wire: decoded traces, a tracing proxy, a timeline picture.

Trace a server or a channel in code::

    from puregrpc.trace import Trace, TextSink
    trace = Trace([TextSink(sys.stderr)])
    server = Server(services, options=ServerOptions(tracer=trace))

or from the environment, for any puregrpc program: ``PUREGRPC_TRACE=stderr``,
``PUREGRPC_TRACE=trace.jsonl`` (see :mod:`._env`). Put
``puregrpc trace-proxy`` between any client and server to trace them
passively, and draw a JSON Lines trace with ``puregrpc trace-view``.

The server and client do not import this package: they look at
``PUREGRPC_TRACE`` themselves and import it only when tracing is asked for
(it loads protobuf's descriptor pool to decode messages).
"""

from ..wire._trace import FRAME_TYPE_NAMES as FRAME_TYPE_NAMES
from ..wire._trace import FrameScanner as FrameScanner
from ._decoder import C2S as C2S
from ._decoder import S2C as S2C
from ._decoder import Decoded as Decoded
from ._decoder import WireDecoder as WireDecoder
from ._env import ENV_VAR as ENV_VAR
from ._env import sink_for_destination as sink_for_destination
from ._env import tracer_from_environment as tracer_from_environment
from ._env import tracer_or_environment as tracer_or_environment
from ._event import SCHEMA_VERSION as SCHEMA_VERSION
from ._event import TraceEvent as TraceEvent
from ._event import read_jsonl as read_jsonl
from ._proxy import TraceProxy as TraceProxy
from ._sinks import JsonLinesSink as JsonLinesSink
from ._sinks import ListSink as ListSink
from ._sinks import TextSink as TextSink
from ._sinks import format_text as format_text
from ._timeline import build_lanes as build_lanes
from ._timeline import render_html as render_html
from ._timeline import render_svg as render_svg
from ._tracer import Sink as Sink
from ._tracer import Trace as Trace
from ._values import describe_message as describe_message

__all__ = [
    "C2S",
    "ENV_VAR",
    "FRAME_TYPE_NAMES",
    "S2C",
    "SCHEMA_VERSION",
    "Decoded",
    "FrameScanner",
    "JsonLinesSink",
    "ListSink",
    "Sink",
    "TextSink",
    "Trace",
    "TraceEvent",
    "TraceProxy",
    "WireDecoder",
    "build_lanes",
    "describe_message",
    "format_text",
    "read_jsonl",
    "render_html",
    "render_svg",
    "sink_for_destination",
    "tracer_from_environment",
    "tracer_or_environment",
]
