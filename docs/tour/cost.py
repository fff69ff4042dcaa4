"""What tracing costs: unary calls with tracing off and on.

    python docs/tour/cost.py [--calls 20000] [--loopback-calls 5000] [--repeat 3]

Two measurements, each the best of ``--repeat`` runs:

* ``wire``: the sans-IO core alone, a client and a server connection in
  memory, one unary call after another (32-byte request and response);
* ``loopback``: the whole stack, a puregrpc Channel calling a puregrpc
  Server over 127.0.0.1, one unary call after another.

Modes: ``off`` (the default disabled tracer), ``records`` (a tracer that
only counts the core's raw records: the cost of the trace points), ``json``
and ``text`` (a full :class:`puregrpc.trace.Trace`, decoding every frame,
writing JSON Lines or text to ``os.devnull``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import trio

from puregrpc.client import Channel, ChannelOptions
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServerOptions, ServicerContext
from puregrpc.trace import JsonLinesSink, TextSink, Trace
from puregrpc.wire import (
    NULL_TRACER,
    ClientConnection,
    MessageReceived,
    ServerConnection,
    Status,
    StatusCode,
    Tracer,
    TraceRecord,
)

PATH = "/bench.Echo/Unary"
ECHO = raw_method(PATH, Cardinality.UNARY_UNARY)
OK = Status(code=StatusCode.OK)


class CountingTracer:
    """Receives every raw record and only counts it."""

    enabled = True

    def __init__(self) -> None:
        self.count = 0

    def record(self, record: TraceRecord) -> None:
        """Count one record."""
        self.count += 1


def tracer_for(mode: str, devnull: object) -> Tracer:
    """The tracer of one mode."""
    if mode == "off":
        return NULL_TRACER
    if mode == "records":
        return CountingTracer()
    sink = JsonLinesSink(devnull) if mode == "json" else TextSink(devnull, color=False)  # type: ignore[arg-type]
    return Trace([sink])


def wire_calls(calls: int, tracer: Tracer) -> float:
    """Seconds for ``calls`` unary calls between in-memory connections."""
    client = ClientConnection(tracer=tracer)
    server = ServerConnection(tracer=tracer)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    start = time.perf_counter()
    for _ in range(calls):
        sid = client.start_call(PATH)
        client.send_message(sid, b"q" * 32)
        client.end_stream(sid)
        for event in server.receive_data(client.data_to_send()):
            if isinstance(event, MessageReceived):
                server.consume(sid, event.wire_length)
        server.send_message(sid, b"r" * 32)
        server.end_call(sid, OK)
        for event in client.receive_data(server.data_to_send()):
            if isinstance(event, MessageReceived):
                client.consume(sid, event.wire_length)
        server.receive_data(client.data_to_send())
    return time.perf_counter() - start


async def echo(request: bytes, context: ServicerContext) -> bytes:
    """Answer with the request."""
    return request


def loopback_calls(calls: int, tracer: Tracer) -> float:
    """Seconds for ``calls`` unary calls over 127.0.0.1."""

    async def run() -> float:
        server = Server(
            [MethodHandler(method=ECHO, func=echo)], options=ServerOptions(tracer=tracer)
        )
        async with (
            server.listening("127.0.0.1", 0) as listening,
            Channel(
                f"127.0.0.1:{listening.port}", options=ChannelOptions(tracer=tracer)
            ) as channel,
        ):
            await channel.unary_unary(ECHO, b"warm-up", timeout=5)
            start = time.perf_counter()
            for _ in range(calls):
                await channel.unary_unary(ECHO, b"q" * 32, timeout=5)
            return time.perf_counter() - start

    return trio.run(run)


def measure(bench: Callable[[int, Tracer], float], calls: int, mode: str, repeat: int) -> float:
    """Best seconds per call over ``repeat`` runs."""
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        return min(bench(calls, tracer_for(mode, devnull)) for _ in range(repeat)) / calls


def main(argv: list[str] | None = None) -> int:
    """Print a table of microseconds per call by bench and mode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="wire calls per run")
    parser.add_argument("--loopback-calls", type=int, default=5_000, help="loopback calls per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best kept)")
    parser.add_argument("--modes", default="off,records,json,text", help="comma-separated")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    print(f"{'bench':<10} {'mode':<8} {'us/call':>9} {'x off':>7}")
    for name, bench, calls in (
        ("wire", wire_calls, args.calls),
        ("loopback", loopback_calls, args.loopback_calls),
    ):
        base = None
        for mode in modes:
            per_call = measure(bench, calls, mode, args.repeat)
            base = base or per_call
            print(f"{name:<10} {mode:<8} {per_call * 1e6:>9.1f} {per_call / base:>7.2f}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
