"""Header blocks (wire/_header_fields.py, _request_headers.py, _response_headers.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puregrpc.wire import (
    DEFAULT_USER_AGENT,
    LocalProtocolError,
    Metadata,
    RemoteProtocolError,
    Status,
    StatusCode,
)
from puregrpc.wire.codecs import (
    RequestHead,
    RequestRejected,
    build_request_headers,
    build_response_headers,
    build_trailers,
    build_trailers_only,
    parse_request_headers,
    parse_response_headers,
    parse_trailers,
    parse_trailers_only,
)

Headers = list[tuple[bytes, bytes]]

# A minimal valid request, in the order a gRPC client sends it.
REQUEST: Headers = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/pkg.Service/Method"),
    (b":authority", b"example.com:50051"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]


def replace(headers: Headers, name: bytes, value: bytes | None) -> Headers:
    """``headers`` with ``name`` set to ``value`` (None removes it; appended if absent)."""
    out = [(n, v) for n, v in headers if n != name]
    if value is None:
        return out
    if name.startswith(b":"):
        index = max((i for i, (n, _) in enumerate(out) if n.startswith(b":")), default=-1) + 1
        out.insert(index, (name, value))
    else:
        out.append((name, value))
    return out


def rejected(headers: Headers, **kwargs: int) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        parse_request_headers(headers, **kwargs)
    return info.value


# --- build_request_headers ---------------------------------------------------------


def test_build_request_headers_order_and_content() -> None:
    metadata = Metadata([("authorization", "Bearer x"), ("trace-bin", b"\x00\x01")])
    headers = build_request_headers(
        path="/pkg.Service/Method",
        authority="example.com",
        scheme="https",
        metadata=metadata,
        timeout=1.5,
        encoding="gzip",
    )
    assert headers == [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":path", b"/pkg.Service/Method"),
        (b":authority", b"example.com"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"user-agent", DEFAULT_USER_AGENT.encode()),
        (b"grpc-timeout", b"1500000u"),
        (b"grpc-encoding", b"gzip"),
        (b"grpc-accept-encoding", b"identity,deflate,gzip"),
        (b"authorization", b"Bearer x"),
        (b"trace-bin", b"AAE"),
    ]


def test_build_request_headers_minimal() -> None:
    headers = build_request_headers(
        path="/a/b",
        authority="h",
        encoding="identity",
        accept_encoding=(),
        user_agent="custom/1",
        content_type=b"application/grpc+proto",
    )
    assert headers == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/a/b"),
        (b":authority", b"h"),
        (b"content-type", b"application/grpc+proto"),
        (b"te", b"trailers"),
        (b"user-agent", b"custom/1"),
    ]
    assert DEFAULT_USER_AGENT == "puregrpc-python/0.1.0"


def test_build_request_headers_custom_accept_encoding() -> None:
    headers = build_request_headers(path="/a/b", authority="h", accept_encoding=["gzip"])
    assert (b"grpc-accept-encoding", b"gzip") in headers


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"path": "a/b"}, "must start with '/'"),
        ({"encoding": "snappy"}, "unsupported encoding 'snappy'"),
        ({"authority": "h\u00e9"}, "authority must be ASCII"),
        ({"path": "/p\u00e9/m"}, "request path must be ASCII"),
    ],
)
def test_build_request_headers_refuses_bad_input(kwargs: dict[str, str], match: str) -> None:
    args = {"path": "/a/b", "authority": "h", **kwargs}
    with pytest.raises(LocalProtocolError, match=match):
        build_request_headers(
            path=args["path"], authority=args["authority"], encoding=args.get("encoding")
        )


# --- parse_request_headers: success ------------------------------------------------


def test_parse_minimal_request() -> None:
    head = parse_request_headers(REQUEST)
    assert head == RequestHead(
        path="/pkg.Service/Method",
        service="pkg.Service",
        method="Method",
        authority="example.com:50051",
        scheme="http",
        content_type="application/grpc",
        timeout=None,
        encoding="identity",
        accept_encoding=(),
        user_agent=None,
        metadata=Metadata(),
    )


def test_parse_request_full() -> None:
    headers = [
        *REQUEST,
        (b"user-agent", b"grpc-go/1.60"),
        (b"grpc-timeout", b"250m"),
        (b"grpc-encoding", b"gzip"),
        (b"grpc-accept-encoding", b"gzip, deflate"),
        (b"grpc-trace-bin", b"AAAA"),  # reserved grpc-*: never metadata
        (b"x-token", b"abc"),
        (b"blob-bin", b"AAE="),
        (b"x-token", b"def"),
    ]
    head = parse_request_headers(headers)
    assert head.timeout == pytest.approx(0.25)
    assert head.encoding == "gzip"
    assert head.accept_encoding == ("gzip", "deflate")
    assert head.user_agent == "grpc-go/1.60"
    assert list(head.metadata) == [
        ("user-agent", "grpc-go/1.60"),
        ("x-token", "abc"),
        ("blob-bin", b"\x00\x01"),
        ("x-token", "def"),
    ]


def test_host_header_stands_in_for_authority() -> None:
    head = parse_request_headers([*replace(REQUEST, b":authority", None), (b"host", b"h:1")])
    assert head.authority == "h:1"
    same = parse_request_headers([*REQUEST, (b"host", b"example.com:50051")])
    assert same.authority == "example.com:50051"


def test_te_is_optional_and_case_insensitive() -> None:
    assert parse_request_headers(replace(REQUEST, b"te", None)).method == "Method"
    assert parse_request_headers(replace(REQUEST, b"te", b"Trailers")).method == "Method"


def test_empty_values_are_legal() -> None:
    head = parse_request_headers([*REQUEST, (b"x-empty", b"")])
    assert head.metadata.get("x-empty") == ""


@pytest.mark.parametrize(
    "content_type",
    [
        b"application/grpc",
        b"application/grpc+proto",
        b"application/grpc;charset=utf-8",
        b"application/grpc+json",
        b"Application/GRPC+proto",
    ],
)
def test_grpc_content_types_accepted(content_type: bytes) -> None:
    head = parse_request_headers(replace(REQUEST, b"content-type", content_type))
    assert head.content_type == content_type.decode()


# Header names and values a peer could send, as gRPC's grammar allows them.
metadata_keys = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12).filter(
    lambda k: (
        not k.startswith("grpc-")
        and k not in {"te", "content-type", "user-agent", "host", "connection", "keep-alive"}
        and k not in {"proxy-connection", "transfer-encoding", "upgrade"}
    )
)
ascii_values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)
metadata_pairs = st.lists(
    st.one_of(
        st.tuples(metadata_keys.filter(lambda k: not k.endswith("-bin")), ascii_values),
        st.tuples(metadata_keys.map(lambda k: k + "-bin"), st.binary(max_size=20)),
    ),
    max_size=6,
)
identifiers = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.", min_size=1
)


@given(
    service=identifiers,
    method=identifiers,
    timeout=st.one_of(st.none(), st.floats(min_value=1e-9, max_value=1e6)),
    encoding=st.sampled_from(["identity", "deflate", "gzip"]),
    pairs=metadata_pairs,
)
def test_request_round_trip(
    service: str,
    method: str,
    timeout: float | None,
    encoding: str,
    pairs: list[tuple[str, str | bytes]],
) -> None:
    path = f"/{service}/{method}"
    headers = build_request_headers(
        path=path,
        authority="example.com",
        metadata=Metadata(pairs),
        timeout=timeout,
        encoding=encoding,
    )
    head = parse_request_headers(headers, max_metadata_size=1 << 20)
    assert (head.path, head.service, head.method) == (path, service, method)
    assert head.authority == "example.com"
    assert head.encoding == encoding
    assert head.accept_encoding == ("identity", "deflate", "gzip")
    assert head.user_agent == DEFAULT_USER_AGENT
    assert list(head.metadata) == [("user-agent", DEFAULT_USER_AGENT), *pairs]
    if timeout is None or head.timeout is None:
        assert timeout is head.timeout is None
    else:
        # grpc-timeout rounds up to its unit; never shorter than asked.
        assert timeout <= head.timeout + 1e-9
        # 8 digits of the coarsest needed unit: within 1e-5 relative, 1 ns absolute.
        assert head.timeout <= timeout * (1 + 1e-5) + 1e-9


# --- parse_request_headers: HTTP/2-level malformation -> RST_STREAM ---------------


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ([*REQUEST, (b":protocol", b"websocket")], "pseudo-header b':protocol' is not allowed"),
        ([(b":status", b"200"), *REQUEST], "pseudo-header b':status' is not allowed"),
        ([(b":foo", b"x"), *REQUEST], "pseudo-header b':foo'"),
        ([*REQUEST[:2], (b":scheme", b"https"), *REQUEST[2:]], "b':scheme' is repeated"),
        ([*REQUEST[4:], *REQUEST[:4]], "after a regular header"),
        (replace(REQUEST, b":method", None), "lack required pseudo-header :method"),
        (replace(REQUEST, b":scheme", None), "lack required pseudo-header :scheme"),
        (replace(REQUEST, b":path", None), "lack required pseudo-header :path"),
        (replace(REQUEST, b":path", b""), "empty :path"),
        (replace(REQUEST, b":authority", None), "neither :authority nor host"),
        ([*REQUEST, (b"host", b"other")], "does not match host"),
        ([*REQUEST, (b"host", b"example.com:50051")] * 1 + [(b"host", b"x")], "more than one host"),
        ([*REQUEST, (b"X-Token", b"abc")], "upper-case"),
        ([*REQUEST, (b"Content-Type", b"application/grpc")], "upper-case"),
        ([*REQUEST, (b"x token", b"abc")], "not allowed in HTTP/2 field names"),
        ([*REQUEST, (b"x:token", b"abc")], "not allowed in HTTP/2 field names"),
        ([*REQUEST, (b"x-\xfftoken", b"abc")], "not allowed in HTTP/2 field names"),
        ([*REQUEST, (b"", b"abc")], "empty header name"),
        ([*REQUEST, (b"connection", b"keep-alive")], "connection-specific header b'connection'"),
        ([*REQUEST, (b"keep-alive", b"300")], "connection-specific"),
        ([*REQUEST, (b"proxy-connection", b"x")], "connection-specific"),
        ([*REQUEST, (b"transfer-encoding", b"chunked")], "connection-specific"),
        ([*REQUEST, (b"upgrade", b"h2c")], "connection-specific"),
        (replace(REQUEST, b"te", b"gzip"), "te header must be 'trailers'"),
        (replace(REQUEST, b"te", b"trailers, deflate"), "te header must be 'trailers'"),
        ([*REQUEST, (b"x-token", b"a\r\nb")], "NUL, CR or LF"),
        ([*REQUEST, (b"x-token", b"a\x00b")], "NUL, CR or LF"),
        (replace(REQUEST, b":path", b"/a/b\n"), "NUL, CR or LF"),
        ([*REQUEST, (b"x-token", b" abc")], "leading or trailing whitespace"),
        ([*REQUEST, (b"x-token", b"abc\t")], "leading or trailing whitespace"),
    ],
)
def test_malformed_http2_request_is_reset(headers: Headers, match: str) -> None:
    error = rejected(headers)
    assert error.reset_code == 1  # PROTOCOL_ERROR
    assert match in str(error)


# --- parse_request_headers: valid HTTP/2, not a valid gRPC call --------------------


@pytest.mark.parametrize("method", [b"GET", b"PUT", b"post"])
def test_non_post_is_405(method: bytes) -> None:
    error = rejected(replace(REQUEST, b":method", method))
    assert (error.http_status, error.code, error.reset_code) == (405, StatusCode.INTERNAL, None)
    assert "POST" in str(error)
    assert (b"allow", b"POST") in error.extra_headers


@pytest.mark.parametrize(
    "content_type",
    [b"application/json", b"text/html", b"application/grpcx", b"application/grpc-web", b""],
)
def test_non_grpc_content_type_is_415(content_type: bytes) -> None:
    error = rejected(replace(REQUEST, b"content-type", content_type))
    assert (error.http_status, error.code, error.reset_code) == (415, StatusCode.INTERNAL, None)
    assert "content-type" in str(error)
    assert repr(content_type) in str(error)


def test_missing_content_type_is_415() -> None:
    error = rejected(replace(REQUEST, b"content-type", None))
    assert (error.http_status, error.code) == (415, StatusCode.INTERNAL)
    assert "missing content-type" in str(error)


@pytest.mark.parametrize(
    "path",
    [
        b"/",
        b"//",
        b"noslash",
        b"/pkg.Service",
        b"/pkg.Service/",
        b"//Method",
        b"/a/b/c",
        b"/a/\xc3\xa9",
    ],
)
def test_malformed_path_is_unimplemented(path: bytes) -> None:
    error = rejected(replace(REQUEST, b":path", path))
    assert (error.http_status, error.code, error.reset_code) == (
        200,
        StatusCode.UNIMPLEMENTED,
        None,
    )
    assert str(error) == f"malformed method name: {path!r}"


@pytest.mark.parametrize("timeout", [b"", b"1", b"1x", b"123456789S", b"-1S", b"1.5S"])
def test_malformed_timeout_is_internal(timeout: bytes) -> None:
    error = rejected([*REQUEST, (b"grpc-timeout", timeout)])
    assert (error.http_status, error.code, error.reset_code) == (200, StatusCode.INTERNAL, None)
    assert "grpc-timeout" in str(error)


@pytest.mark.parametrize("encoding", [b"snappy", b"br", b"GZIP"])
def test_unsupported_encoding_is_unimplemented(encoding: bytes) -> None:
    error = rejected([*REQUEST, (b"grpc-encoding", encoding)])
    assert (error.http_status, error.code, error.reset_code) == (
        200,
        StatusCode.UNIMPLEMENTED,
        None,
    )
    assert repr(encoding.decode()) in str(error)
    assert "identity, deflate, gzip" in str(error)
    assert error.extra_headers == ((b"grpc-accept-encoding", b"identity,deflate,gzip"),)


def test_oversized_metadata_is_resource_exhausted() -> None:
    headers = [*REQUEST, (b"x-big", b"a" * 2000)]
    assert parse_request_headers(headers, max_metadata_size=4096).metadata.get("x-big")
    error = rejected(headers, max_metadata_size=1024)
    assert (error.http_status, error.code, error.reset_code) == (
        200,
        StatusCode.RESOURCE_EXHAUSTED,
        None,
    )
    assert "1024" in str(error)


def test_size_limit_counts_the_whole_block() -> None:
    # gRPC's own fields count too, like SETTINGS_MAX_HEADER_LIST_SIZE.
    headers = replace(REQUEST, b":authority", b"a" * 2000)
    error = rejected(headers, max_metadata_size=1024)
    assert error.code == StatusCode.RESOURCE_EXHAUSTED


def test_bad_base64_metadata_is_internal() -> None:
    error = rejected([*REQUEST, (b"blob-bin", b"!!!!")])
    assert (error.http_status, error.code, error.reset_code) == (200, StatusCode.INTERNAL, None)
    assert "blob-bin" in str(error)


def test_rejection_is_a_remote_protocol_error() -> None:
    error = rejected(replace(REQUEST, b":method", b"GET"))
    assert isinstance(error, RemoteProtocolError)


# --- Response headers ---------------------------------------------------------------


def test_build_response_headers() -> None:
    assert build_response_headers() == [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-accept-encoding", b"identity,deflate,gzip"),
    ]
    headers = build_response_headers(
        metadata=Metadata([("x-a", "1")]),
        encoding="deflate",
        accept_encoding=("gzip",),
        content_type=b"application/grpc+proto",
    )
    assert headers == [
        (b":status", b"200"),
        (b"content-type", b"application/grpc+proto"),
        (b"grpc-encoding", b"deflate"),
        (b"grpc-accept-encoding", b"gzip"),
        (b"x-a", b"1"),
    ]
    assert (b"grpc-encoding", b"identity") not in build_response_headers(encoding="identity")
    with pytest.raises(LocalProtocolError, match="'lz4'"):
        build_response_headers(encoding="lz4")


def test_response_headers_round_trip() -> None:
    metadata = Metadata([("x-a", "1"), ("x-b-bin", b"\xff\x00"), ("x-a", "2")])
    head = parse_response_headers(build_response_headers(metadata=metadata, encoding="gzip"))
    assert head.http_status == 200
    assert head.content_type == "application/grpc"
    assert head.encoding == "gzip"
    assert head.accept_encoding == ("identity", "deflate", "gzip")
    assert head.metadata == metadata


def test_response_headers_defaults() -> None:
    head = parse_response_headers([(b":status", b"200"), (b"content-type", b"application/grpc")])
    assert (head.encoding, head.accept_encoding, len(head.metadata)) == ("identity", (), 0)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (b"503", StatusCode.UNAVAILABLE),
        (b"404", StatusCode.UNIMPLEMENTED),
        (b"401", StatusCode.UNAUTHENTICATED),
        (b"500", StatusCode.UNKNOWN),
    ],
)
def test_response_http_error_maps_to_code(status: bytes, code: StatusCode) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_response_headers([(b":status", status), (b"content-type", b"text/html")])
    assert info.value.code == code
    assert str(info.value).startswith(f"HTTP status {status.decode()} (")


@pytest.mark.parametrize("content_type", [b"text/html", b"application/grpcx", None])
def test_response_wrong_content_type_is_unknown(content_type: bytes | None) -> None:
    headers = [(b":status", b"200")]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    with pytest.raises(RemoteProtocolError) as info:
        parse_response_headers(headers)
    assert info.value.code == StatusCode.UNKNOWN
    assert "not application/grpc" in str(info.value)
    assert ("no content-type" in str(info.value)) == (content_type is None)


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ([(b"content-type", b"application/grpc")], "missing :status"),
        ([(b":status", b"2000"), (b"content-type", b"application/grpc")], "malformed :status"),
        ([(b":status", b"abc"), (b"content-type", b"application/grpc")], "malformed :status"),
        ([(b":status", b"200"), (b":path", b"/a/b")], "b':path' is not allowed"),
        ([(b":status", b"200"), (b":status", b"200")], "repeated"),
        ([(b"content-type", b"application/grpc"), (b":status", b"200")], "after a regular"),
        ([(b":status", b"200"), (b"Content-Type", b"application/grpc")], "upper-case"),
        ([(b":status", b"200"), (b"connection", b"close")], "connection-specific"),
        ([(b":status", b"200"), (b"x-a", b"1\n")], "NUL, CR or LF"),
    ],
)
def test_malformed_response_headers_are_internal(headers: Headers, match: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_response_headers(headers)
    assert info.value.code == StatusCode.INTERNAL
    assert match in str(info.value)


def test_response_headers_size_limit() -> None:
    headers = [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"x", b"a" * 500)]
    with pytest.raises(RemoteProtocolError) as info:
        parse_response_headers(headers, max_metadata_size=256)
    assert info.value.code == StatusCode.RESOURCE_EXHAUSTED


# --- Trailers ------------------------------------------------------------------------


def test_build_trailers_ok() -> None:
    assert build_trailers(Status(code=StatusCode.OK)) == [(b"grpc-status", b"0")]


def test_build_trailers_full() -> None:
    status = Status(
        code=StatusCode.NOT_FOUND, details="no such thing: 100%", details_bin=b"\x08\x05"
    )
    trailers = build_trailers(status, Metadata([("x-a", "1")]))
    assert trailers == [
        (b"grpc-status", b"5"),
        (b"grpc-message", b"no such thing: 100%25"),
        (b"grpc-status-details-bin", b"CAU"),  # unpadded base64
        (b"x-a", b"1"),
    ]


messages = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@given(
    code=st.sampled_from(StatusCode),
    message=messages,
    details=st.one_of(st.none(), st.binary(max_size=40)),
    pairs=metadata_pairs,
)
def test_trailers_round_trip(
    code: StatusCode, message: str, details: bytes | None, pairs: list[tuple[str, str | bytes]]
) -> None:
    status = Status(code=code, details=message, details_bin=details)
    metadata = Metadata(pairs)
    assert parse_trailers(build_trailers(status, metadata)) == (status, metadata)


@given(code=st.sampled_from(StatusCode), message=messages, pairs=metadata_pairs)
def test_trailers_only_round_trip(
    code: StatusCode, message: str, pairs: list[tuple[str, str | bytes]]
) -> None:
    status = Status(code=code, details=message)
    metadata = Metadata(pairs)
    headers = build_trailers_only(status, metadata)
    assert headers[:2] == [(b":status", b"200"), (b"content-type", b"application/grpc")]
    assert parse_trailers_only(headers) == (status, metadata)


def test_grpc_message_is_percent_encoded() -> None:
    status = Status(code=StatusCode.INTERNAL, details="caf\u00e9\nline2")
    trailers = build_trailers(status)
    assert trailers[1] == (b"grpc-message", b"caf%C3%A9%0Aline2")
    assert parse_trailers(trailers)[0].details == "caf\u00e9\nline2"


def test_details_bin_accepts_padded_base64() -> None:
    status, _ = parse_trailers([(b"grpc-status", b"3"), (b"grpc-status-details-bin", b"CAU=")])
    assert status.details_bin == b"\x08\x05"


def test_bad_details_bin_is_internal() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_trailers([(b"grpc-status", b"3"), (b"grpc-status-details-bin", b"C*U")])
    assert info.value.code == StatusCode.INTERNAL


def test_missing_grpc_status_in_trailers() -> None:
    status, metadata = parse_trailers([(b"x-a", b"1")])
    assert status.code is StatusCode.UNKNOWN
    assert status.details.startswith("missing grpc-status in trailers")
    assert list(metadata) == [("x-a", "1")]


def test_malformed_grpc_status_is_unknown() -> None:
    status, metadata = parse_trailers([(b"grpc-status", b"OK"), (b"x-a", b"1")])
    assert status.code == StatusCode.UNKNOWN
    assert status.details.startswith("malformed grpc-status b'OK'")
    assert list(metadata) == [("x-a", "1")]


def test_unknown_grpc_status_is_unknown() -> None:
    assert parse_trailers([(b"grpc-status", b"99")])[0].code == StatusCode.UNKNOWN


@pytest.mark.parametrize(
    "headers",
    [
        [(b":status", b"200"), (b"grpc-status", b"0")],
        [(b"grpc-status", b"0"), (b":path", b"/x")],
        [(b"grpc-status", b"0"), (b"Grpc-Message", b"x")],
        [(b"grpc-status", b"0"), (b"transfer-encoding", b"chunked")],
    ],
)
def test_malformed_trailers_are_internal(headers: Headers) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_trailers(headers)
    assert info.value.code == StatusCode.INTERNAL


# --- Trailers-only -------------------------------------------------------------------


def test_build_trailers_only_with_rejection() -> None:
    error = rejected([*REQUEST, (b"grpc-encoding", b"snappy")])
    headers = build_trailers_only(
        Status(code=error.code, details=str(error)),
        http_status=error.http_status,
        extra_headers=error.extra_headers,
    )
    assert headers[:4] == [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-accept-encoding", b"identity,deflate,gzip"),
        (b"grpc-status", b"12"),
    ]
    status, _ = parse_trailers_only(headers)
    assert status.code == StatusCode.UNIMPLEMENTED
    assert "snappy" in status.details


def test_build_trailers_only_http_error() -> None:
    headers = build_trailers_only(Status(code=StatusCode.INTERNAL, details="x"), http_status=415)
    assert headers[0] == (b":status", b"415")
    with pytest.raises(LocalProtocolError, match="200-599"):
        build_trailers_only(Status(code=StatusCode.INTERNAL), http_status=100)


@pytest.mark.parametrize(
    ("http_status", "code"),
    [
        (b"400", StatusCode.INTERNAL),
        (b"401", StatusCode.UNAUTHENTICATED),
        (b"403", StatusCode.PERMISSION_DENIED),
        (b"404", StatusCode.UNIMPLEMENTED),
        (b"429", StatusCode.UNAVAILABLE),
        (b"502", StatusCode.UNAVAILABLE),
        (b"503", StatusCode.UNAVAILABLE),
        (b"504", StatusCode.UNAVAILABLE),
        (b"500", StatusCode.UNKNOWN),
        (b"200", StatusCode.UNKNOWN),
    ],
)
def test_trailers_only_without_grpc_status_maps_http_status(
    http_status: bytes, code: StatusCode
) -> None:
    status, _ = parse_trailers_only([(b":status", http_status), (b"content-type", b"text/plain")])
    assert status.code == code
    assert status.details.startswith(f"HTTP status {http_status.decode()}")
    assert "without grpc-status" in status.details


def test_trailers_only_grpc_status_wins_over_http_status() -> None:
    headers = [(b":status", b"503"), (b"grpc-status", b"5"), (b"grpc-message", b"gone")]
    status, _ = parse_trailers_only(headers)
    assert status == Status(code=StatusCode.NOT_FOUND, details="gone")


@pytest.mark.parametrize(
    "headers",
    [
        [(b"grpc-status", b"0")],
        [(b":status", b"20"), (b"grpc-status", b"0")],
        [(b":status", b"200"), (b":authority", b"x"), (b"grpc-status", b"0")],
        [(b":status", b"200"), (b"grpc-status", b"0"), (b"upgrade", b"h2c")],
    ],
)
def test_malformed_trailers_only_is_internal(headers: Headers) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_trailers_only(headers)
    assert info.value.code == StatusCode.INTERNAL


def test_trailers_only_with_unregistered_http_status() -> None:
    status, _ = parse_trailers_only([(b":status", b"599")])
    assert status.code == StatusCode.UNKNOWN
    assert status.details.startswith("HTTP status 599 without grpc-status")
    assert "not a gRPC server" in status.details


@pytest.mark.parametrize(
    ("message", "wire"),
    [(" x ", b"%20x%20"), ("  ", b"%20%20"), ("\tx", b"%09x"), ("a b", b"a b")],
)
def test_grpc_message_edge_spaces_are_escaped(message: str, wire: bytes) -> None:
    # A field value must not start or end with whitespace (RFC 9113 §8.2.1).
    trailers = build_trailers(Status(code=StatusCode.INTERNAL, details=message))
    assert trailers[1] == (b"grpc-message", wire)
    assert parse_trailers(trailers)[0].details == message
