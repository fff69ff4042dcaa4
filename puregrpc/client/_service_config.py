"""Service config: what a service's owner says about calls to it (grpc/grpc doc/service_config.md).

A channel takes one as ``ChannelOptions(service_config=...)``: JSON text, or
the same structure as a dict. :func:`parse_service_config` checks all of it
when the channel is made and turns it into frozen objects; a config that is
wrong anywhere raises :class:`ValueError` naming the field
(``methodConfig[0].retryPolicy.maxAttempts: must be an integer >= 2``), so
a typo never silently turns a policy off.

What is read (unknown fields are ignored, as gRPC's parsers do)::

    {
      "loadBalancingConfig": [{"round_robin": {}}],      # first known policy wins
      "loadBalancingPolicy": "round_robin",              # the older form
      "methodConfig": [{
        "name": [{"service": "pkg.Svc", "method": "Get"}], # or a service, or {} (default)
        "timeout": "1.5s", "waitForReady": true,
        "maxRequestMessageBytes": 1048576, "maxResponseMessageBytes": 1048576,
        "retryPolicy": {...} | "hedgingPolicy": {...}     # gRFC A6, one or neither
      }],
      "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
      "healthCheckConfig": {"serviceName": ""}           # gRFC A17
    }

Which method config applies to a call (service_config.md): the one naming
its service and method; else the one naming its service alone; else the
default (a name with no service). Durations are protobuf's JSON form, a
decimal number of seconds and ``s`` (``"0.25s"``, ``".1s"``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeGuard

from ..wire import StatusCode
from ._balancer import LoadBalancingConfig, load_balancing_config

#: A duration in protobuf's JSON form: seconds, up to nine decimals, then "s".
_DURATION = re.compile(r"^(?:\d+(?:\.\d{0,9})?|\.\d{1,9})s$")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """gRFC A6 retries: try again, after a backoff, when an attempt fails with a listed code."""

    #: Attempts in all, the first included (>= 2; the channel caps it at 5).
    max_attempts: int
    #: The first retry waits ``random(0, initial_backoff)`` seconds.
    initial_backoff: float
    #: The cap on the n-th wait's upper bound ``initial * multiplier**(n-1)``.
    max_backoff: float
    #: Growth of the upper bound per retry.
    backoff_multiplier: float
    #: An attempt failing with one of these codes is retried.
    retryable_status_codes: frozenset[StatusCode]


@dataclass(frozen=True, slots=True, kw_only=True)
class HedgingPolicy:
    """gRFC A6 hedging: send the call again every ``hedging_delay`` until one attempt answers."""

    #: Attempts in all, the first included (>= 2; the channel caps it at 5).
    max_attempts: int
    #: Seconds between attempts (0: all at once).
    hedging_delay: float = 0.0
    #: An attempt failing with one of these codes lets the others go on
    #: (and the next one start at once); any other code ends the call.
    non_fatal_status_codes: frozenset[StatusCode] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryThrottling:
    """gRFC A6 throttling: retries and hedges stop while too many calls fail (per channel)."""

    #: The token bucket's size and starting level; a failed attempt takes one.
    max_tokens: float
    #: What a call that succeeds puts back (three decimals count).
    token_ratio: float


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthCheckConfig:
    """gRFC A17: watch each backend's ``grpc.health.v1.Health``; use it only while SERVING."""

    #: The service name asked about ("" is the server as a whole).
    service_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodName:
    """One ``name`` entry: a service and method, a service (``method`` None), or neither."""

    service: str | None = None
    method: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodConfig:
    """What calls to the methods ``names`` get; ``None`` fields say nothing."""

    names: tuple[MethodName, ...] = ()
    #: The longest a call may take; a shorter deadline of the call's own wins.
    timeout: float | None = None
    #: Wait for a connection rather than fail fast, unless the call says.
    wait_for_ready: bool | None = None
    #: A larger (serialized) request fails the call RESOURCE_EXHAUSTED.
    max_request_message_bytes: int | None = None
    #: A larger response fails the call RESOURCE_EXHAUSTED.
    max_response_message_bytes: int | None = None
    retry_policy: RetryPolicy | None = None
    hedging_policy: HedgingPolicy | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceConfig:
    """A parsed service config (:func:`parse_service_config`); find methods with :meth:`lookup`."""

    #: The policy ``loadBalancingConfig`` (or ``loadBalancingPolicy``) chose.
    load_balancing: LoadBalancingConfig | None = None
    method_configs: tuple[MethodConfig, ...] = ()
    retry_throttling: RetryThrottling | None = None
    health_check: HealthCheckConfig | None = None
    _table: dict[tuple[str, str], MethodConfig] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        table = self._table
        for config in self.method_configs:
            for name in config.names:
                table.setdefault((name.service or "", name.method or ""), config)

    def lookup(self, path: str) -> MethodConfig | None:
        """The method config of ``/service/method``: exact, else the service's, else the default."""
        service, _, method = path.lstrip("/").rpartition("/")
        table = self._table
        if not table:
            return None
        found = table.get((service, method))
        if found is None:
            found = table.get((service, ""))
            if found is None:
                found = table.get(("", ""))
        return found


def parse_service_config(value: str | Mapping[str, Any] | ServiceConfig) -> ServiceConfig:
    """A service config from JSON text or its dict; :class:`ValueError` names a bad field."""
    if isinstance(value, ServiceConfig):
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"service config: not valid JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise ValueError("service config: must be a JSON object")
    return _Parser().service_config(value)


def parse_duration(text: object, where: str = "duration") -> float:
    """Seconds of a protobuf JSON duration (``"1.5s"``); :class:`ValueError` naming ``where``."""
    if not isinstance(text, str) or not _DURATION.match(text):
        raise ValueError(f'{where}: must be a duration like "1.5s", got {text!r}')
    return float(text[:-1])


class _Parser:
    """Reads one service config; each check names the path of what it reads."""

    def service_config(self, raw: Mapping[str, Any]) -> ServiceConfig:
        balancing = self._load_balancing(raw)
        methods = raw.get("methodConfig", [])
        if not isinstance(methods, list):
            self._fail("methodConfig", "must be a list")
        method_configs = tuple(
            self._method_config(entry, f"methodConfig[{index}]")
            for index, entry in enumerate(methods)
        )
        self._check_unique_names(method_configs)
        throttling = raw.get("retryThrottling")
        health = raw.get("healthCheckConfig")
        return ServiceConfig(
            load_balancing=balancing,
            method_configs=method_configs,
            retry_throttling=None if throttling is None else self._throttling(throttling),
            health_check=None if health is None else self._health(health),
        )

    # ------------------------------------------------------------ parts

    def _load_balancing(self, raw: Mapping[str, Any]) -> LoadBalancingConfig | None:
        configs = raw.get("loadBalancingConfig")
        if configs is not None:
            if not isinstance(configs, list) or not all(isinstance(e, Mapping) for e in configs):
                self._fail("loadBalancingConfig", "must be a list of {policy: config} objects")
            try:
                return load_balancing_config(configs)
            except (ValueError, TypeError) as exc:
                self._fail("loadBalancingConfig", str(exc))
        policy = raw.get("loadBalancingPolicy")
        if policy is not None:
            if not isinstance(policy, str):
                self._fail("loadBalancingPolicy", "must be a string")
            try:
                return load_balancing_config(policy.lower())
            except ValueError as exc:
                self._fail("loadBalancingPolicy", str(exc))
        return None

    def _method_config(self, raw: object, where: str) -> MethodConfig:
        if not isinstance(raw, Mapping):
            self._fail(where, "must be an object")
        names = raw.get("name", [])
        if not isinstance(names, list):
            self._fail(f"{where}.name", "must be a list")
        retry = raw.get("retryPolicy")
        hedging = raw.get("hedgingPolicy")
        if retry is not None and hedging is not None:
            self._fail(where, "retryPolicy and hedgingPolicy cannot both be set")
        timeout = raw.get("timeout")
        wait_for_ready = raw.get("waitForReady")
        if wait_for_ready is not None and not isinstance(wait_for_ready, bool):
            self._fail(f"{where}.waitForReady", "must be true or false")
        return MethodConfig(
            names=tuple(self._name(n, f"{where}.name[{i}]") for i, n in enumerate(names)),
            timeout=None if timeout is None else parse_duration(timeout, f"{where}.timeout"),
            wait_for_ready=wait_for_ready,
            max_request_message_bytes=self._size(raw, "maxRequestMessageBytes", where),
            max_response_message_bytes=self._size(raw, "maxResponseMessageBytes", where),
            retry_policy=None if retry is None else self._retry(retry, f"{where}.retryPolicy"),
            hedging_policy=(
                None if hedging is None else self._hedging(hedging, f"{where}.hedgingPolicy")
            ),
        )

    def _name(self, raw: object, where: str) -> MethodName:
        if not isinstance(raw, Mapping):
            self._fail(where, "must be an object")
        service = raw.get("service")
        method = raw.get("method")
        for key, value in (("service", service), ("method", method)):
            if value is not None and not isinstance(value, str):
                self._fail(f"{where}.{key}", "must be a string")
        if method and not service:
            # service_config.md: an empty service must come with an empty method.
            self._fail(f"{where}.method", "a method needs its service")
        return MethodName(service=service or None, method=method or None)

    def _check_unique_names(self, configs: Sequence[MethodConfig]) -> None:
        seen: set[tuple[str, str]] = set()
        for index, config in enumerate(configs):
            for position, name in enumerate(config.names):
                key = (name.service or "", name.method or "")
                if key in seen:
                    shown = "/".join(part for part in key if part) or "the default"
                    self._fail(f"methodConfig[{index}].name[{position}]", f"{shown} named twice")
                seen.add(key)

    def _retry(self, raw: object, where: str) -> RetryPolicy:
        if not isinstance(raw, Mapping):
            self._fail(where, "must be an object")
        initial = parse_duration(raw.get("initialBackoff"), f"{where}.initialBackoff")
        maximum = parse_duration(raw.get("maxBackoff"), f"{where}.maxBackoff")
        if initial <= 0:
            self._fail(f"{where}.initialBackoff", "must be greater than 0")
        if maximum <= 0:
            self._fail(f"{where}.maxBackoff", "must be greater than 0")
        multiplier = raw.get("backoffMultiplier")
        if not _is_number(multiplier) or multiplier <= 0:
            self._fail(f"{where}.backoffMultiplier", "must be a number > 0")
        codes = self._codes(raw.get("retryableStatusCodes"), f"{where}.retryableStatusCodes")
        if not codes:
            self._fail(f"{where}.retryableStatusCodes", "must name at least one status code")
        return RetryPolicy(
            max_attempts=self._attempts(raw, where),
            initial_backoff=initial,
            max_backoff=maximum,
            backoff_multiplier=float(multiplier),
            retryable_status_codes=codes,
        )

    def _hedging(self, raw: object, where: str) -> HedgingPolicy:
        if not isinstance(raw, Mapping):
            self._fail(where, "must be an object")
        delay = raw.get("hedgingDelay", "0s")
        codes = raw.get("nonFatalStatusCodes", [])
        return HedgingPolicy(
            max_attempts=self._attempts(raw, where),
            hedging_delay=parse_duration(delay, f"{where}.hedgingDelay"),
            non_fatal_status_codes=self._codes(codes, f"{where}.nonFatalStatusCodes"),
        )

    def _attempts(self, raw: Mapping[str, Any], where: str) -> int:
        attempts = raw.get("maxAttempts")
        if not _is_integer(attempts) or attempts < 2:
            self._fail(f"{where}.maxAttempts", "must be an integer >= 2")
        return int(attempts)

    def _codes(self, raw: object, where: str) -> frozenset[StatusCode]:
        if not isinstance(raw, list):
            self._fail(where, "must be a list of status codes")
        codes = set()
        for index, code in enumerate(raw):
            if isinstance(code, str) and code.upper() in StatusCode.__members__:
                codes.add(StatusCode[code.upper()])  # A6: names in any case
            elif _is_integer(code) and 0 <= code <= 16:
                codes.add(StatusCode(int(code)))
            else:
                self._fail(f"{where}[{index}]", f"{code!r} is not a status code (e.g. UNAVAILABLE)")
        if StatusCode.OK in codes:
            self._fail(where, "OK is not a failure")
        return frozenset(codes)

    def _size(self, raw: Mapping[str, Any], key: str, where: str) -> int | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, str) and value.isdigit():
            value = int(value)  # proto JSON may quote 64-bit integers
        if not _is_integer(value) or value < 0:
            self._fail(f"{where}.{key}", "must be an integer >= 0")
        return int(value)

    def _throttling(self, raw: object) -> RetryThrottling:
        where = "retryThrottling"
        if not isinstance(raw, Mapping):
            self._fail(where, "must be an object")
        tokens = raw.get("maxTokens")
        ratio = raw.get("tokenRatio")
        if not _is_number(tokens) or not 0 < tokens <= 1000:
            self._fail(f"{where}.maxTokens", "must be a number > 0 and <= 1000")
        if not _is_number(ratio) or ratio <= 0:
            self._fail(f"{where}.tokenRatio", "must be a number > 0")
        return RetryThrottling(max_tokens=float(tokens), token_ratio=float(ratio))

    def _health(self, raw: object) -> HealthCheckConfig:
        if not isinstance(raw, Mapping):
            self._fail("healthCheckConfig", "must be an object")
        name = raw.get("serviceName")
        if not isinstance(name, str):
            self._fail("healthCheckConfig.serviceName", "must be a string")
        return HealthCheckConfig(service_name=name)

    @staticmethod
    def _fail(where: str, problem: str) -> NoReturn:
        raise ValueError(f"service config: {where}: {problem}")


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _is_integer(value: object) -> TypeGuard[float]:
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)
