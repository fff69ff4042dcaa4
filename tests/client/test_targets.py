"""Channel targets (doc/naming.md): every form parses, every malformed one says what is wrong."""

from __future__ import annotations

import pytest

from puregrpc.client import Address, Channel, StaticResolver, Target, parse_target


@pytest.mark.parametrize(
    ("text", "scheme", "authority", "endpoint"),
    [
        ("localhost:50051", "dns", "", "localhost:50051"),
        ("127.0.0.1:50051", "dns", "", "127.0.0.1:50051"),
        ("[::1]:50051", "dns", "", "[::1]:50051"),
        ("dns:example.com", "dns", "", "example.com"),
        ("dns:///example.com:443", "dns", "", "example.com:443"),
        ("dns://8.8.8.8:53/example.com", "dns", "8.8.8.8:53", "example.com"),
        ("DNS:example.com:1", "dns", "", "example.com:1"),
        ("ipv4:127.0.0.1:1,127.0.0.1:2", "ipv4", "", "127.0.0.1:1,127.0.0.1:2"),
        ("ipv6:[::1]:1,::1", "ipv6", "", "[::1]:1,::1"),
        ("unix:relative/grpc.sock", "unix", "", "relative/grpc.sock"),
        ("unix:/tmp/grpc.sock", "unix", "", "/tmp/grpc.sock"),
        ("unix:///tmp/grpc.sock", "unix", "", "/tmp/grpc.sock"),
        ("unix-abstract:my-service", "unix-abstract", "", "my-service"),
        # An unknown scheme is no scheme: the whole text is a DNS name.
        ("myhost:8080", "dns", "", "myhost:8080"),
    ],
)
def test_targets_split_into_scheme_authority_and_endpoint(
    text: str, scheme: str, authority: str, endpoint: str
) -> None:
    assert parse_target(text) == Target(
        text=text, scheme=scheme, authority=authority, endpoint=endpoint
    )


def test_a_registered_scheme_is_a_scheme() -> None:
    assert parse_target("static:backends").scheme == "dns"
    parsed = parse_target("static:backends", frozenset({"static"}))
    assert (parsed.scheme, parsed.endpoint) == ("static", "backends")


@pytest.mark.parametrize(
    ("address", "text"),
    [
        (Address("127.0.0.1", 50051), "127.0.0.1:50051"),
        (Address("::1", 50051), "[::1]:50051"),
        (Address("/run/app.sock", kind="unix"), "unix:/run/app.sock"),
        (Address("app", kind="unix-abstract"), "unix-abstract:app"),
    ],
)
def test_addresses_name_themselves_as_targets_write_them(address: Address, text: str) -> None:
    assert str(address) == text


def test_an_abstract_address_connects_with_its_nul_byte() -> None:
    assert Address("app", kind="unix-abstract").socket_path == "\0app"
    assert Address("/run/app.sock", kind="unix").socket_path == "/run/app.sock"


@pytest.mark.parametrize(
    "text",
    [
        "localhost:50051",
        "127.0.0.1:50051",
        "[::1]:50051",
        "dns:localhost",  # port 443
        "dns:///localhost:50051",
        "dns:[::1]",
        "ipv4:127.0.0.1:1,127.0.0.1:2",
        "ipv4:127.0.0.1",
        "ipv6:[::1]:1,[::1]:2",
        "ipv6:::1",
        "unix:/tmp/x.sock",
        "unix:///tmp/x.sock",
        "unix:x.sock",
        "unix-abstract:name",
    ],
)
def test_well_formed_targets_make_channels(text: str) -> None:
    channel = Channel(text)
    assert channel.target == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the target is empty"),
        ("localhost", "target 'localhost' has no port (expected host:port)"),
        ("127.0.0.1", "has no port"),
        ("localhost:0", "invalid port '0'"),
        ("localhost:65536", "invalid port '65536'"),
        ("localhost:http", "invalid port 'http'"),
        (":50051", "has no host"),
        ("::1:50051", "IPv6 address with a port goes in brackets"),
        ("[::1:50051", "has no closing ']'"),
        ("[::1]50051", "expected [address]:port"),
        ("dns:", "has no host"),
        ("dns://8.8.8.8/example.com:1", "DNS server in the authority ('8.8.8.8') is not supported"),
        ("dns://example.com", "expected dns://authority/endpoint"),
        ("ipv4:", "lists no address"),
        ("ipv4:127.0.0.1:1,", "has no host"),
        ("ipv4:localhost:1", "'localhost' is not an IPv4 address"),
        ("ipv4:[::1]:1", "'::1' is not an IPv4 address"),
        ("ipv4:127.0.0.1:99999", "invalid port '99999'"),
        ("ipv6:127.0.0.1", "'127.0.0.1' is not an IPv6 address"),
        ("ipv6:[::1]:x", "invalid port 'x'"),
        ("ipv6:[fe80::zz]:1", "'fe80::zz' is not an IPv6 address"),
        ("unix:", "has no socket path"),
        ("unix://relative/path", "unix://path must be absolute"),
        ("unix-abstract:", "has no abstract socket name"),
        ("unix-abstract:a\0b", "has no NUL bytes"),
        ("unix-abstract://host/name", "takes no authority"),
    ],
)
def test_malformed_targets_are_refused_where_the_channel_is_made(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Channel(text)
    assert message in str(caught.value)
    if text:
        assert repr(text) in str(caught.value), "the message names the target"


def test_a_channel_needs_something_to_connect_to() -> None:
    with pytest.raises(ValueError, match="needs a target"):
        Channel()
    # A resolver of its own is enough: the target then only names the channel.
    assert Channel(resolver=StaticResolver([Address("127.0.0.1", 1)])).target == "localhost"
