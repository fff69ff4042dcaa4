"""The gRPC-Web body codec on in-memory bytes: trailer frames, base64 split anywhere, CORS."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puregrpc.web import (
    TRAILER_FLAG,
    Base64StreamDecoder,
    CorsPolicy,
    Protocol,
    TextMessageDecoder,
    WebResponseDecoder,
    encode_text,
    encode_trailer_frame,
    frame_request,
    parse_trailer_block,
    sniff,
    trailer_block,
    web_mode,
)
from puregrpc.wire import Metadata, RemoteProtocolError, Status, StatusCode
from puregrpc.wire.codecs import frame_message

payloads = st.lists(st.binary(max_size=40), max_size=6)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


@given(payloads, st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_base64_segments_decode_whatever_the_cuts(frames: list[bytes], cuts: list[int]) -> None:
    # Each frame encoded on its own, as a server flushes them: padding mid-body.
    body = b"".join(encode_text(frame) for frame in frames)
    decoder = Base64StreamDecoder()
    out = b"".join(decoder.feed(piece) for piece in _split(body, cuts))
    decoder.close()
    assert out == b"".join(frames)
    assert decoder.characters == len(body)


@given(payloads, st.lists(st.integers(min_value=0, max_value=400), max_size=8), st.booleans())
def test_response_decoder_round_trips_messages_and_trailers(
    messages: list[bytes], cuts: list[int], text: bool
) -> None:
    status = Status(code=StatusCode.NOT_FOUND, details="no such thing: ü\nline two")
    trailing = Metadata([("x-trail", "t1"), ("x-blob-bin", b"\x00\xff")])
    frames = [frame_message(m) for m in messages] + [encode_trailer_frame(status, trailing)]
    body = b"".join(encode_text(f) if text else f for f in frames)
    decoder = WebResponseDecoder(text=text)
    got = [frame for piece in _split(body, cuts) for frame in decoder.feed(piece)]
    decoder.close()
    assert [f.data for f in got[:-1]] == messages
    assert got[-1].trailers == (status, trailing)


@given(st.lists(st.binary(max_size=30), min_size=1, max_size=4))
def test_text_request_decoder_at_every_split(messages: list[bytes]) -> None:
    body = b"".join(frame_request(m, text=True) for m in messages)
    for offset in range(len(body) + 1):
        decoder = TextMessageDecoder(1024)
        raws = decoder.feed(body[:offset]) + decoder.feed(body[offset:])
        decoder.close()
        assert [r.data for r in raws] == messages
        # Wire lengths count base64 characters, never more than arrived.
        assert 0 < sum(r.wire_length for r in raws) <= len(body)


def test_trailer_frame_layout() -> None:
    frame = encode_trailer_frame(Status(code=StatusCode.OK))
    assert frame[0] == TRAILER_FLAG
    assert int.from_bytes(frame[1:5], "big") == len(frame) - 5
    assert frame[5:] == b"grpc-status: 0\r\n"
    block = trailer_block(Status(code=StatusCode.INTERNAL, details="50% off"))
    assert block == b"grpc-status: 13\r\ngrpc-message: 50%25 off\r\n"
    assert parse_trailer_block(block) == (
        Status(code=StatusCode.INTERNAL, details="50% off"),
        Metadata(),
    )


def test_malformed_trailer_line_is_an_error() -> None:
    with pytest.raises(RemoteProtocolError, match="malformed gRPC-Web trailer line"):
        parse_trailer_block(b"grpc-status 0\r\n")
    with pytest.raises(RemoteProtocolError, match="malformed"):
        parse_trailer_block(b"Grpc-Status: 0\r\n")


def test_bad_base64_and_truncation_are_errors() -> None:
    decoder = Base64StreamDecoder()
    with pytest.raises(RemoteProtocolError, match="not valid base64") as caught:
        decoder.feed(b"AA*A")
    assert caught.value.code is StatusCode.INTERNAL
    with pytest.raises(RemoteProtocolError):
        decoder.feed(b"AAAA")  # broken for good
    truncated = Base64StreamDecoder()
    assert truncated.feed(b"QUJ") == b""
    assert truncated.pending == 3
    with pytest.raises(RemoteProtocolError, match="inside a quantum"):
        truncated.close()


def test_text_decoder_keeps_native_limits() -> None:
    decoder = TextMessageDecoder(4)
    body = frame_request(b"x" * 5, text=True) + frame_request(b"ok", text=True)
    with pytest.raises(RemoteProtocolError, match="larger than max") as caught:
        decoder.feed(frame_request(b"ok", text=True) + body)
    assert caught.value.code is StatusCode.RESOURCE_EXHAUSTED
    assert [r.data for r in decoder.completed_before_error] == [b"ok"]
    with pytest.raises(RemoteProtocolError, match="stream ended inside"):
        cut = TextMessageDecoder(100)
        cut.feed(encode_text(frame_message(b"abcdef")[:4]))
        cut.close()


def test_response_decoder_rejects_what_is_not_a_body() -> None:
    with pytest.raises(RemoteProtocolError, match="unknown frame flag"):
        WebResponseDecoder().feed(b"\x02\x00\x00\x00\x00")
    ended = WebResponseDecoder()
    ended.feed(encode_trailer_frame(Status(code=StatusCode.OK)))
    with pytest.raises(RemoteProtocolError, match="after the trailer"):
        ended.feed(frame_message(b"late"))
    with pytest.raises(RemoteProtocolError, match="without a trailer frame"):
        unended = WebResponseDecoder()
        unended.feed(frame_message(b"x"))
        unended.close()
    with pytest.raises(RemoteProtocolError, match="inside a frame"):
        partial = WebResponseDecoder()
        partial.feed(frame_message(b"xyz")[:6])
        partial.close()
    with pytest.raises(RemoteProtocolError, match="larger than max"):
        WebResponseDecoder(max_message_size=2).feed(frame_message(b"xyz"))


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Protocol.HTTP2),
        (b"PRI", Protocol.HTTP2),
        (b"PR", None),
        (b"P", None),
        (b"", None),
        (b"POST /x HTTP/1.1\r\n", Protocol.HTTP1),
        (b"OPTIONS * HTTP/1.1\r\n", Protocol.HTTP1),
        (b"GET / HTTP/1.1\r\n", Protocol.HTTP1),
        (b"POS", None),
        (b"\x00\x00\x12\x04", Protocol.HTTP2),  # a frame without the preface: HTTP/2 refuses it
        (b"get / HTTP/1.1", Protocol.HTTP2),
        (b"VERYLONGMETHOD", Protocol.HTTP2),
    ],
)
def test_sniff(start: bytes, expected: Protocol | None) -> None:
    assert sniff(start) is expected


@pytest.mark.parametrize(
    ("content_type", "accept", "text_request", "text_response"),
    [
        (b"application/grpc-web", None, False, False),
        (b"application/grpc-web+proto", None, False, False),
        (b"Application/GRPC-Web+Proto; charset=utf-8", None, False, False),
        (b"application/grpc-web-text", None, True, True),
        (b"application/grpc-web-text+proto", None, True, True),
        (b"application/grpc-web+proto", b"application/grpc-web-text", False, True),
    ],
)
def test_web_modes(
    content_type: bytes, accept: bytes | None, text_request: bool, text_response: bool
) -> None:
    mode = web_mode(content_type, accept)
    assert mode is not None
    assert (mode.text_request, mode.text_response) == (text_request, text_response)
    assert mode.content_type.startswith(b"application/grpc-web")


@pytest.mark.parametrize(
    "content_type", [b"application/grpc-web+json", b"application/grpc", b"text/plain"]
)
def test_not_served_modes(content_type: bytes) -> None:
    assert web_mode(content_type) is None


def test_cors_policy() -> None:
    policy = CorsPolicy.of(["https://App.example/"])
    own = {"scheme": "http", "authority": "api:8080"}
    assert policy.allows(None, **own)
    assert policy.allows(b"http://api:8080", **own)  # same origin
    assert policy.allows(b"https://app.example", **own)
    assert not policy.allows(b"https://evil.example", **own)
    assert CorsPolicy.of(["*"]).allows(b"https://any.example", **own)
    assert policy.preflight_headers(b"https://evil.example", None, **own) is None
    fields = dict(
        policy.preflight_headers(b"https://app.example", b"X-Custom, grpc-timeout", **own) or []
    )
    allowed = fields[b"access-control-allow-headers"].split(b", ")
    assert {b"x-grpc-web", b"x-user-agent", b"grpc-timeout", b"content-type", b"x-custom"} <= set(
        allowed
    )
    assert fields[b"access-control-allow-methods"] == b"POST, OPTIONS"
    response = dict(policy.response_headers(b"https://app.example", metadata_names=[b"x-initial"]))
    exposed = response[b"access-control-expose-headers"].split(b", ")
    assert {b"grpc-status", b"grpc-message", b"x-initial"} <= set(exposed)
    assert policy.response_headers(None) == []


def test_binary_body_is_base64_free() -> None:
    assert frame_request(b"hi") == b"\x00\x00\x00\x00\x02hi"
    assert binascii.a2b_base64(frame_request(b"hi", text=True)) == frame_request(b"hi")
