"""What every benchmark server and client shares: the grpc.testing messages, by hand.

Standard library only, so that every implementation's venv can import it. The
messages are the interop ``grpc.testing`` ones, encoded by hand (no protobuf
import, no generated code, hence no protobuf-version coupling between venvs):

    Payload                     { type = 1 (enum, omitted: COMPRESSABLE); body = 2 }
    SimpleRequest               { response_size = 2; payload = 3 }
    SimpleResponse              { payload = 1 }
    ResponseParameters          { size = 1 }
    StreamingOutputCallRequest  { response_parameters = 2 (repeated); payload = 3 }
    StreamingOutputCallResponse { payload = 1 }
    StreamingInputCallRequest   { payload = 1 }
    StreamingInputCallResponse  { aggregated_payload_size = 1 }

The servers are "minimal handlers": :func:`responses_for` reads a request once
and memoises the serialised responses by request bytes, so every server does
the same (tiny) application work and the figures compare the gRPC stacks.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

SERVICE = "grpc.testing.TestService"
UNARY = f"/{SERVICE}/UnaryCall"
STREAM_OUT = f"/{SERVICE}/StreamingOutputCall"
STREAM_IN = f"/{SERVICE}/StreamingInputCall"
DUPLEX = f"/{SERVICE}/FullDuplexCall"

SMALL = 64
LARGE = 64 * 1024
#: Responses per server-streaming call, by message size.
SMALL_STREAM_COUNT = 1000
LARGE_STREAM_COUNT = 100
#: Requests per client-streaming call (64 KiB each: 1 MiB per call).
UPLOAD_COUNT = 16


# ----------------------------------------------------------------- encoding


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_bytes(number: int, data: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def payload(size: int) -> bytes:
    """A ``Payload`` whose body is ``size`` zero bytes."""
    return field_bytes(2, bytes(size))


def payload_message(size: int) -> bytes:
    """``SimpleResponse`` / ``StreamingOutputCallResponse`` carrying ``size`` bytes."""
    return field_bytes(1, payload(size))


def simple_request(response_size: int = SMALL, payload_size: int = SMALL) -> bytes:
    return field_varint(2, response_size) + field_bytes(3, payload(payload_size))


def streaming_output_request(count: int, size: int, payload_size: int = 0) -> bytes:
    params = field_bytes(2, field_varint(1, size)) * count
    return params + (field_bytes(3, payload(payload_size)) if payload_size else b"")


def streaming_input_request(size: int = LARGE) -> bytes:
    return field_bytes(1, payload(size))


def frame(message: bytes) -> bytes:
    """gRPC length-prefixed message (uncompressed)."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


# ----------------------------------------------------------------- decoding


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """Top-level ``(number, wire_type, value)`` of a message (varint and bytes only)."""
    out: list[tuple[int, int, int | bytes]] = []
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            out.append((number, wire, value))
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            out.append((number, wire, data[pos : pos + length]))
            pos += length
        elif wire == 5:
            pos += 4
        elif wire == 1:
            pos += 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


_responses: dict[tuple[str, bytes], list[bytes]] = {}
_by_size: dict[int, bytes] = {}


def _response(size: int) -> bytes:
    """One shared bytes object per response size (a 131 MB stream holds one 64 KiB object)."""
    cached = _by_size.get(size)
    if cached is None:
        cached = _by_size[size] = payload_message(size)
    return cached


def responses_for(method: str, request: bytes) -> list[bytes]:
    """The serialised responses a TestService answers ``request`` with (memoised)."""
    key = (method, request)
    cached = _responses.get(key)
    if cached is not None:
        return cached
    if method == UNARY:
        size = next((v for n, w, v in _fields(request) if n == 2 and w == 0), 0)
        result = [_response(int(size))]  # type: ignore[arg-type]
    else:  # StreamingOutputCall, FullDuplexCall
        sizes = [
            next((v for n2, w2, v in _fields(v1) if n2 == 1 and w2 == 0), 0)  # type: ignore[arg-type]
            for n1, w1, v1 in _fields(request)
            if n1 == 2 and w1 == 2
        ]
        result = [_response(int(size)) for size in sizes]
    if len(_responses) < 1024:
        _responses[key] = result
    return result


def input_payload_size(request: bytes) -> int:
    """Body length of a ``StreamingInputCallRequest`` (reads only the headers)."""
    # field 1 (payload): tag, length; then Payload field 2 (body): tag, length.
    _, pos = _read_varint(request, 1)
    if pos >= len(request):
        return 0
    length, _ = _read_varint(request, pos + 1)
    return length


def input_response(total: int) -> bytes:
    """``StreamingInputCallResponse{aggregated_payload_size: total}``."""
    return field_varint(1, total)


# ------------------------------------------------------- client workloads
#
# Every client runs the same workloads with the same requests; these helpers
# keep the measuring identical. Each workload is bounded in count and time.

UNARY_REQUEST = simple_request()
SMALL_STREAM_REQUEST = streaming_output_request(SMALL_STREAM_COUNT, SMALL)
LARGE_STREAM_REQUEST = streaming_output_request(LARGE_STREAM_COUNT, LARGE)
UPLOAD_MESSAGE = streaming_input_request(LARGE)
PING_REQUEST = streaming_output_request(1, SMALL, SMALL)
UNARY_RESPONSE = payload_message(SMALL)
SMALL_RESPONSE = payload_message(SMALL)
LARGE_RESPONSE = payload_message(LARGE)
UPLOAD_RESPONSE = input_response(UPLOAD_COUNT * LARGE)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def latency_result(calls: int, elapsed: float, latencies: list[float]) -> dict[str, float]:
    latencies.sort()
    return {
        "calls": calls,
        "elapsed": elapsed,
        "calls_per_s": calls / elapsed if elapsed else 0.0,
        "p50_us": percentile(latencies, 0.5) * 1e6,
        "p99_us": percentile(latencies, 0.99) * 1e6,
    }


def stream_result(messages: int, size: int, elapsed: float) -> dict[str, float]:
    return {
        "messages": messages,
        "elapsed": elapsed,
        "messages_per_s": messages / elapsed if elapsed else 0.0,
        "mb_per_s": messages * size / elapsed / 1e6 if elapsed else 0.0,
    }


def pingpong_result(latencies: list[float], elapsed: float) -> dict[str, float]:
    latencies.sort()
    return {
        "round_trips": len(latencies),
        "elapsed": elapsed,
        "p50_us": percentile(latencies, 0.5) * 1e6,
        "p99_us": percentile(latencies, 0.99) * 1e6,
    }


#: workload name -> (description, count) for the clients; scaled by --scale.
CLIENT_WORKLOADS = {
    "unary_c1": 2000,  # calls
    "unary_c64": 6400,  # calls (64 concurrent)
    "stream_64b": 30,  # calls of 1000 x 64 B
    "stream_64k": 30,  # calls of 100 x 64 KiB
    "cstream_64k": 40,  # calls of 16 x 64 KiB
    "pingpong": 2000,  # round trips
}


def client_args(argv: list[str]) -> tuple[str, int, list[str], float, float]:
    """Parse ``HOST PORT [--workloads a,b] [--scale F] [--seconds S]``."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--workloads", default=",".join(CLIENT_WORKLOADS))
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=8.0, help="time limit per workload")
    args = parser.parse_args(argv)
    return args.host, args.port, args.workloads.split(","), args.scale, args.seconds


def count_for(workload: str, scale: float) -> int:
    return max(1, int(CLIENT_WORKLOADS[workload] * scale))


def emit(workload: str, result: dict[str, float] | None, error: str | None = None) -> None:
    """Print one result line for the driver (JSON, prefixed so stray output is ignored)."""
    line = {"workload": workload, "result": result, "error": error}
    print("RESULT " + json.dumps(line), flush=True)


def run_workloads(workloads: list[str], runners: dict[str, Callable[[], dict[str, float]]]) -> None:
    """Run each named workload, emitting a result or the error it failed with."""
    for name in workloads:
        runner = runners.get(name)
        if runner is None:
            emit(name, None, "not implemented by this client")
            continue
        try:
            emit(name, runners[name]())
        except Exception as exc:  # report, do not hide
            emit(name, None, f"{type(exc).__name__}: {exc}"[:300])


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def ready(port: int) -> None:
    """Tell the driver the server listens (it waits for this line).

    With ``BENCH_FREEZE_HEAP=1`` (``run.py --freeze-heap``) the server first
    collects and freezes its heap, the same for every implementation (what
    ``puregrpc.server.freeze_heap`` does): full GC passes then walk only the
    objects made while serving.
    """
    if os.environ.get("BENCH_FREEZE_HEAP") == "1":
        gc.collect()
        gc.freeze()
    print(f"LISTENING {port}", flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def now() -> float:
    return time.perf_counter()


def run_maybe_profiled(run: Callable[[], object], argv: list[str]) -> None:
    """``run()``, under cProfile when argv has ``--profile FILE``.

    The driver stops a profiled server with SIGINT; the dump is written on the
    way out.
    """
    if "--profile" not in argv:
        run()
        return
    import cProfile

    path = argv[argv.index("--profile") + 1]
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        run()
    except KeyboardInterrupt:
        pass
    finally:
        profiler.disable()
        profiler.dump_stats(path)


def die(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(2)
