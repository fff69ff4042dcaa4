"""The passive decoder against the wire core's own connections, with no I/O.

A client and a server state machine talk through memory; every byte is also
fed to a :class:`WireDecoder`. What it reports must match what the state
machines know: the header lists they sent, the message boundaries, and the
windows each side sees.
"""

from __future__ import annotations

from typing import Any

import pytest

from puregrpc.trace import C2S, S2C, Decoded, WireDecoder
from puregrpc.wire import (
    ClientConnection,
    ConnectionConfig,
    MessageReceived,
    Metadata,
    ServerConnection,
    Status,
    StatusCode,
)

PATH = "/pkg.Svc/Method"


class Tap:
    """A client/server pair whose bytes a decoder watches."""

    def __init__(self, client_config: ConnectionConfig | None = None) -> None:
        self.client = ClientConnection(client_config)
        self.server = ServerConnection()
        self.decoder = WireDecoder(infer=True)
        self.items: list[Decoded] = []
        self.now = 0.0
        #: Messages the client received but was told not to consume.
        self.unread: list[MessageReceived] = []

    def pump(self, *, consume: bool = True) -> None:
        """Move bytes both ways until quiet (bounded), consuming messages received."""
        for _ in range(50):
            c2s = self.client.data_to_send()
            s2c = self.server.data_to_send()
            if not c2s and not s2c:
                return
            self.now += 0.001
            if c2s:
                self.items += self.decoder.feed(C2S, c2s, self.now)
                for event in self.server.receive_data(c2s):
                    if consume and isinstance(event, MessageReceived):
                        self.server.consume(event.stream_id, event.wire_length)
            if s2c:
                self.items += self.decoder.feed(S2C, s2c, self.now)
                for event in self.client.receive_data(s2c):
                    if isinstance(event, MessageReceived):
                        if consume:
                            self.client.consume(event.stream_id, event.wire_length)
                        else:
                            self.unread.append(event)
        raise AssertionError("pair did not go quiet")

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [
            item.fields
            for item in self.items
            if item.kind == kind and all(item.fields.get(k) == v for k, v in match.items())
        ]


def test_headers_messages_and_status_are_decoded() -> None:
    tap = Tap()
    sid = tap.client.start_call(PATH, metadata=Metadata([("x-key", "v")]), timeout=2.0)
    tap.client.send_message(sid, b"hello")
    tap.client.end_stream(sid)
    tap.pump()
    tap.server.send_message(sid, b"a" * 20_000)
    tap.server.send_message(sid, b"")
    tap.server.end_call(sid, Status(code=StatusCode.NOT_FOUND, details="gone 100%"))
    tap.pump()

    (request,) = tap.of("frame_out", type="HEADERS")
    headers = dict(request["headers"])
    assert request["block"] == "request"
    assert headers[":path"] == PATH and headers["x-key"] == "v" and "grpc-timeout" in headers
    (start,) = tap.of("call_start")
    assert start["path"] == PATH and start["timeout"] == pytest.approx(2.0, abs=0.01)
    (sent,) = tap.of("message_out")
    assert sent == {
        "dir": C2S,
        "seq": 1,
        "length": 5,
        "compressed": False,
        "value": "0x68656c6c6f",
        "window": sent["window"],
        "conn_window": sent["conn_window"],
    }
    received = tap.of("message_in")
    assert [(m["seq"], m["length"]) for m in received] == [(1, 20_000), (2, 0)]
    # The 20,005-byte message spans two DATA frames (16 KiB max), and the
    # empty message rides in the second.
    data = tap.of("frame_in", type="DATA")
    parts = [p for frame in data for p in frame["parts"]]
    assert parts == [[1, 0, 16_384, 20_005], [1, 16_384, 3_621, 20_005], [2, 0, 5, 5]]
    (trailers,) = tap.of("frame_in", type="HEADERS", block="trailers")
    assert ["grpc-status", "5"] in trailers["headers"]
    (end,) = tap.of("call_end")
    assert end == {"code": "NOT_FOUND", "message": "gone 100%"}


def test_windows_match_what_the_peers_see() -> None:
    small = ConnectionConfig(stream_window=30_000, connection_window=65_535)
    tap = Tap(small)
    sid = tap.client.start_call(PATH)
    tap.client.end_stream(sid)
    tap.pump()
    for _ in range(3):
        tap.server.send_message(sid, b"x" * 15_000)
    tap.pump(consume=False)  # the client does not read: the server stalls
    stats = tap.server.stream_statistics(sid)
    assert stats.blocked
    windows = tap.decoder.windows(sid)
    assert windows is not None
    assert windows[S2C] == stats.send_window == 0
    assert tap.decoder.connection_windows()[S2C] == tap.server.statistics().send_window
    (stall,) = tap.of("stall")
    assert stall["inferred"] and stall["send_window"] == 0
    # Reading everything grants window back: the inferred stall resumes.
    assert len(tap.unread) == 1
    tap.client.consume(sid, tap.unread[0].wire_length)
    tap.pump()
    (resume,) = tap.of("resume")
    assert resume["dir"] == S2C and resume["stalled_for"] > 0
    windows = tap.decoder.windows(sid)
    assert windows is not None and windows[S2C] == tap.server.stream_statistics(sid).send_window
    updates = tap.of("frame_out", type="WINDOW_UPDATE")
    assert all(u["flow_dir"] == S2C for u in updates)


def test_settings_ping_goaway_and_reset() -> None:
    tap = Tap()
    tap.pump()
    settings = tap.of("frame_out", type="SETTINGS", ack=False)
    assert settings[0]["settings"]["INITIAL_WINDOW_SIZE"] == 1024 * 1024
    assert tap.of("frame_in", type="SETTINGS", ack=True)
    tap.client.ping(b"12345678")
    tap.pump()
    ping, ack = tap.of("frame_out", type="PING")[0], tap.of("frame_in", type="PING")[0]
    assert ping["data"] == ack["data"] == b"12345678".hex()
    assert ack["ack"] and ack["rtt"] == pytest.approx(0.001)
    sid = tap.client.start_call(PATH)
    tap.pump()
    tap.client.cancel(sid)
    tap.pump()
    (reset,) = tap.of("frame_out", type="RST_STREAM")
    assert reset["error"] == "CANCEL"
    assert tap.of("call_end") == [{"reset": 8}]
    tap.server.close(0, b"bye")
    tap.pump()
    (goaway,) = tap.of("frame_in", type="GOAWAY")
    assert goaway == {**goaway, "error": "NO_ERROR", "debug": "bye", "last_stream_id": sid}


def test_prefix_split_across_frames_and_continuation() -> None:
    decoder = WireDecoder(infer=True)
    items = decoder.feed(C2S, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0.0)
    assert items == []
    import hpack

    block = hpack.Encoder().encode([(b":path", b"/a/b"), (b"x-big", b"v" * 100)])
    half = len(block) // 2
    first = decoder.frame(C2S, 0x1, 0x0, 1, block[:half], 0.0)  # no END_HEADERS
    assert "headers" not in first[0].fields
    rest = decoder.frame(C2S, 0x9, 0x4, 1, block[half:], 0.0)
    assert ["x-big", "v" * 100] in rest[0].fields["headers"]
    assert [i.kind for i in rest] == ["frame_out", "call_start"]
    one = decoder.frame(C2S, 0x0, 0x0, 1, b"\x00\x00\x00", 0.0)
    assert one[0].fields["parts"] == [[1, 0, 3, None]]
    two = decoder.frame(C2S, 0x0, 0x1, 1, b"\x00\x02hi", 0.0)
    assert two[0].fields["parts"] == [[1, 3, 4, 7]]
    assert [i.kind for i in two] == ["frame_out", "message_out"]
    assert two[1].fields["value"] == "0x6869"


def test_bytes_that_are_not_http2_end_decoding_with_a_reason() -> None:
    decoder = WireDecoder(infer=True)
    (error,) = decoder.feed(C2S, b"GET / HTTP/1.1\r\n\r\n", 0.0)
    assert error.kind == "decode_error" and "preface" in error.fields["error"]
    assert decoder.feed(C2S, b"more", 0.0) == []
    # A frame hyperframe rejects (a PING must be 8 bytes) stops that direction only.
    bad = decoder.feed(S2C, b"\x00\x00\x03\x06\x00\x00\x00\x00\x00abc", 0.0)
    assert [i.kind for i in bad] == ["frame_in", "decode_error"]


def test_perspective_is_checked() -> None:
    with pytest.raises(ValueError, match="perspective"):
        WireDecoder(perspective="proxy")
