"""A slow reader: asks for a long stream of 64 KiB messages and reads it at ~0.5 MB/s.

    python slow_reader.py HOST PORT SECONDS

Plain h2 over a blocking socket, default HTTP/2 windows (64 KiB), window
returned only for what was read. A server that respects flow control keeps
its memory flat however long the stream; one that buffers the stream grows
by up to the stream's length (131 MB here). The driver samples the server's
RSS meanwhile; this prints one JSON line with what it asked for and read.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as c
import h2.config
import h2.connection
import h2.events

COUNT = 2000  # responses of 64 KiB: 131 MB
READ_PER_TICK = 25_000  # bytes read every 50 ms: 0.5 MB/s


def main() -> None:
    host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    sock = socket.create_connection((host, port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(
        sid,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", c.STREAM_OUT),
            (":authority", f"{host}:{port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ],
    )
    conn.send_data(sid, c.frame(c.streaming_output_request(COUNT, c.LARGE)), end_stream=True)
    sock.sendall(conn.data_to_send())
    read = 0
    started = time.monotonic()
    sock.settimeout(0.05)
    while time.monotonic() - started < seconds:
        tick = time.monotonic()
        try:
            data = sock.recv(READ_PER_TICK)
        except TimeoutError:
            data = b""
        if data:
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    read += len(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, sid)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    raise SystemExit("the stream ended early")
            sock.sendall(conn.data_to_send())
        time.sleep(max(0.0, 0.05 - (time.monotonic() - tick)))
    elapsed = time.monotonic() - started
    conn.reset_stream(sid)
    sock.sendall(conn.data_to_send())
    sock.close()
    print(
        json.dumps({"requested_bytes": COUNT * c.LARGE, "read_bytes": read, "seconds": elapsed}),
        flush=True,
    )


if __name__ == "__main__":
    main()
