"""Service config parsing, method-name matching, and the retry arithmetic (no IO)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from puregrpc import StatusCode
from puregrpc.client import (
    Channel,
    ChannelOptions,
    HedgingPolicy,
    RetryBuffer,
    RetryPolicy,
    RetryThrottle,
    RetryThrottling,
    RoundRobin,
    ServiceConfig,
    parse_duration,
    parse_pushback,
    parse_service_config,
    retry_backoff,
)

RETRY: dict[str, Any] = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

FULL: dict[str, Any] = {
    "loadBalancingConfig": [{"weighted_target_unknown": {}}, {"round_robin": {}}],
    "methodConfig": [
        {
            "name": [{"service": "pkg.Svc", "method": "Get"}],
            "timeout": "1.5s",
            "waitForReady": True,
            "maxRequestMessageBytes": 1024,
            "maxResponseMessageBytes": "2048",
            "retryPolicy": RETRY,
        },
        {"name": [{"service": "pkg.Svc"}], "timeout": "2s"},
        {
            "name": [{}],
            "hedgingPolicy": {
                "maxAttempts": 3,
                "hedgingDelay": ".25s",
                "nonFatalStatusCodes": ["unavailable", 13],
            },
        },
    ],
    "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    "healthCheckConfig": {"serviceName": "pkg.Svc"},
}


def test_a_full_config_parses_into_typed_objects() -> None:
    config = parse_service_config(json.dumps(FULL))
    assert isinstance(config.load_balancing, RoundRobin)
    get = config.lookup("/pkg.Svc/Get")
    assert get is not None
    assert get.timeout == 1.5 and get.wait_for_ready is True
    assert get.max_request_message_bytes == 1024 and get.max_response_message_bytes == 2048
    assert get.retry_policy == RetryPolicy(
        max_attempts=4,
        initial_backoff=0.1,
        max_backoff=1.0,
        backoff_multiplier=2.0,
        retryable_status_codes=frozenset({StatusCode.UNAVAILABLE}),
    )
    default = config.lookup("/other.Svc/Put")
    assert default is not None
    assert default.hedging_policy == HedgingPolicy(
        max_attempts=3,
        hedging_delay=0.25,
        non_fatal_status_codes=frozenset({StatusCode.UNAVAILABLE, StatusCode.INTERNAL}),
    )
    assert config.retry_throttling == RetryThrottling(max_tokens=10, token_ratio=0.1)
    assert config.health_check is not None and config.health_check.service_name == "pkg.Svc"
    # The dict form and the JSON text are the same config.
    assert parse_service_config(FULL) == config


def test_method_names_match_exact_then_service_then_default() -> None:
    config = parse_service_config(FULL)
    exact, service, default = config.method_configs
    assert config.lookup("/pkg.Svc/Get") is exact
    assert config.lookup("/pkg.Svc/List") is service
    assert config.lookup("/pkg.Other/Get") is default
    no_default = parse_service_config({"methodConfig": FULL["methodConfig"][:2]})
    assert no_default.lookup("/pkg.Other/Get") is None
    assert ServiceConfig().lookup("/pkg.Svc/Get") is None
    # service_config.md: an empty service string is the default too.
    empty = parse_service_config({"methodConfig": [{"name": [{"service": ""}], "timeout": "3s"}]})
    found = empty.lookup("/a.B/C")
    assert found is not None and found.timeout == 3


def test_the_older_load_balancing_policy_field_is_read() -> None:
    config = parse_service_config({"loadBalancingPolicy": "ROUND_ROBIN"})
    assert isinstance(config.load_balancing, RoundRobin)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1.5s", 1.5), ("0s", 0.0), (".1s", 0.1), ("10s", 10.0), ("0.000000001s", 1e-9)],
)
def test_durations_in_proto_json_form(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1.5", "1m", "-1s", "s", "1.5 s", "0.0000000001s", 1.5])
def test_malformed_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="timeout: must be a duration"):
        parse_duration(text, "timeout")


def _with_retry(**changes: Any) -> dict[str, Any]:
    policy = {**RETRY, **changes}
    for key, value in changes.items():
        if value is None:
            del policy[key]
    return {"methodConfig": [{"name": [{"service": "s"}], "retryPolicy": policy}]}


INVALID: list[tuple[object, str]] = [
    ("{not json", "service config: not valid JSON"),
    ("[1, 2]", "service config: must be a JSON object"),
    ({"methodConfig": {}}, "methodConfig: must be a list"),
    ({"methodConfig": [3]}, "methodConfig[0]: must be an object"),
    ({"methodConfig": [{"name": {}}]}, "methodConfig[0].name: must be a list"),
    ({"methodConfig": [{"name": [7]}]}, "methodConfig[0].name[0]: must be an object"),
    ({"methodConfig": [{"name": [{"service": 1}]}]}, "methodConfig[0].name[0].service: must be"),
    ({"methodConfig": [{"name": [{"method": "Get"}]}]}, "name[0].method: a method needs its"),
    (
        {"methodConfig": [{"name": [{"service": "s"}]}, {"name": [{"service": "s"}]}]},
        "methodConfig[1].name[0]: s named twice",
    ),
    ({"methodConfig": [{"timeout": "soon"}]}, "methodConfig[0].timeout: must be a duration"),
    ({"methodConfig": [{"waitForReady": "yes"}]}, "methodConfig[0].waitForReady: must be true"),
    (
        {"methodConfig": [{"maxRequestMessageBytes": -1}]},
        "methodConfig[0].maxRequestMessageBytes: must be an integer >= 0",
    ),
    (
        {"methodConfig": [{"maxResponseMessageBytes": 1.5}]},
        "methodConfig[0].maxResponseMessageBytes: must be an integer >= 0",
    ),
    (
        {"methodConfig": [{"retryPolicy": RETRY, "hedgingPolicy": {"maxAttempts": 2}}]},
        "methodConfig[0]: retryPolicy and hedgingPolicy cannot both be set",
    ),
    ({"methodConfig": [{"retryPolicy": []}]}, "methodConfig[0].retryPolicy: must be an object"),
    (
        _with_retry(maxAttempts=1),
        "methodConfig[0].retryPolicy.maxAttempts: must be an integer >= 2",
    ),
    (_with_retry(maxAttempts=2.5), "retryPolicy.maxAttempts: must be an integer >= 2"),
    (_with_retry(maxAttempts=True), "retryPolicy.maxAttempts: must be an integer >= 2"),
    (_with_retry(maxAttempts=None), "retryPolicy.maxAttempts: must be an integer >= 2"),
    (_with_retry(initialBackoff="0s"), "retryPolicy.initialBackoff: must be greater than 0"),
    (_with_retry(initialBackoff=None), "retryPolicy.initialBackoff: must be a duration"),
    (_with_retry(maxBackoff="0s"), "retryPolicy.maxBackoff: must be greater than 0"),
    (_with_retry(backoffMultiplier=0), "retryPolicy.backoffMultiplier: must be a number > 0"),
    (_with_retry(backoffMultiplier="2"), "retryPolicy.backoffMultiplier: must be a number > 0"),
    (_with_retry(retryableStatusCodes=[]), "retryableStatusCodes: must name at least one"),
    (_with_retry(retryableStatusCodes="UNAVAILABLE"), "retryableStatusCodes: must be a list"),
    (_with_retry(retryableStatusCodes=["NOPE"]), "retryableStatusCodes[0]: 'NOPE' is not a"),
    (_with_retry(retryableStatusCodes=[17]), "retryableStatusCodes[0]: 17 is not a status"),
    (_with_retry(retryableStatusCodes=["OK"]), "retryableStatusCodes: OK is not a failure"),
    (
        {"methodConfig": [{"hedgingPolicy": {"maxAttempts": 0}}]},
        "methodConfig[0].hedgingPolicy.maxAttempts: must be an integer >= 2",
    ),
    (
        {"methodConfig": [{"hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "x"}}]},
        "hedgingPolicy.hedgingDelay: must be a duration",
    ),
    ({"retryThrottling": 1}, "retryThrottling: must be an object"),
    ({"retryThrottling": {"maxTokens": 0, "tokenRatio": 1}}, "retryThrottling.maxTokens"),
    ({"retryThrottling": {"maxTokens": 1001, "tokenRatio": 1}}, "retryThrottling.maxTokens"),
    ({"retryThrottling": {"maxTokens": 10, "tokenRatio": 0}}, "retryThrottling.tokenRatio"),
    ({"healthCheckConfig": []}, "healthCheckConfig: must be an object"),
    ({"healthCheckConfig": {}}, "healthCheckConfig.serviceName: must be a string"),
    ({"loadBalancingConfig": {}}, "loadBalancingConfig: must be a list"),
    ({"loadBalancingConfig": [{"nope": {}}]}, "loadBalancingConfig: no known load balancing"),
    ({"loadBalancingPolicy": 3}, "loadBalancingPolicy: must be a string"),
    ({"loadBalancingPolicy": "nope"}, "loadBalancingPolicy: unknown load balancing policy"),
]


@pytest.mark.parametrize(("config", "message"), INVALID)
def test_each_invalid_field_is_named(config: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_service_config(config)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_a_bad_config_is_refused_when_the_channel_is_made() -> None:
    options = ChannelOptions(service_config=_with_retry(maxAttempts=1))
    with pytest.raises(ValueError, match=r"methodConfig\[0\]\.retryPolicy\.maxAttempts"):
        Channel("127.0.0.1:1", options=options)


def test_unknown_fields_are_ignored() -> None:
    config = parse_service_config({"methodConfig": [{"name": [{}], "future": 1}], "x": {}})
    assert config.lookup("/a/b") is not None


def test_backoff_is_random_below_a_ceiling_growing_to_max_backoff() -> None:
    policy = parse_service_config(_with_retry()).method_configs[0].retry_policy
    assert policy is not None
    rng = random.Random(6)
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    for retry, ceiling in enumerate(ceilings, start=1):
        draws = [retry_backoff(policy, retry, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.9  # the range is used up to its ceiling
    # Seeded: the same sequence every run.
    first = [retry_backoff(policy, 1, random.Random(1)) for _ in range(2)]
    assert first[0] == first[1]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        (["300"], 0.3),
        (["0"], 0.0),
        ([b"1500"], 1.5),
        (["-1"], -1.0),
        (["soon"], -1.0),
        (["007"], -1.0),
        (["1", "2"], -1.0),
        (["2147483648"], -1.0),
    ],
)
def test_pushback_values(values: list[str | bytes], expected: float | None) -> None:
    assert parse_pushback(values) == expected


def test_throttle_stops_retries_at_half_the_bucket_and_refills_by_the_ratio() -> None:
    throttle = RetryThrottle(RetryThrottling(max_tokens=10, token_ratio=0.1))
    assert throttle.tokens == 10 and throttle.allows
    allowed = [throttle.failed() for _ in range(6)]
    # 9, 8, 7, 6 > 5: retries go on; 5 <= 5: they stop; 4: still stopped.
    assert allowed == [True, True, True, True, False, False]
    assert throttle.tokens == 4
    for _ in range(10):
        throttle.succeeded()
    assert throttle.tokens == pytest.approx(5.0)  # exact in thousandths: 4 + 10 * 0.1
    assert not throttle.allows  # at the threshold, not above it
    throttle.succeeded()
    assert throttle.tokens > 5 and throttle.failed() is False  # 5.1 -> 4.1
    for _ in range(1000):
        throttle.succeeded()
    assert throttle.tokens == 10  # never above maxTokens
    for _ in range(20):
        throttle.failed()
    assert throttle.tokens == 0  # never below 0


def test_retry_buffer_limits_per_call_and_per_channel() -> None:
    buffer = RetryBuffer(total=100, per_call=60)
    assert buffer.reserve(0, 50)
    assert not buffer.reserve(50, 20)  # the call would hold 70 > 60
    assert buffer.reserve(0, 40)  # another call: 90 of 100
    assert not buffer.reserve(0, 20)  # the channel would hold 110 > 100
    assert buffer.used == 90
    buffer.release(50)
    assert buffer.reserve(0, 20) and buffer.used == 60
