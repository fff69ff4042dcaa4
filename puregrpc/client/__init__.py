"""puregrpc.client: call gRPC methods from a trio program.

``async with Channel("127.0.0.1:50051") as channel:`` then call through a
generated stub, or directly with ``channel.unary_unary(method, request)`` and
friends. Each call type has its own call object (:class:`UnaryUnaryCall`,
:class:`UnaryStreamCall`, :class:`StreamUnaryCall`, :class:`StreamStreamCall`,
all :class:`ClientCall`); per-call settings are one :class:`CallOptions` or
the same keywords; :class:`ClientInterceptor` objects given to the channel
wrap every call. :class:`ConnectivityState` is what
:meth:`Channel.get_state` and :meth:`Channel.wait_for_state_change` report;
keepalive pings are set up in :class:`ChannelOptions` (``keepalive_time``...).

Name resolution and load balancing (docs/client-channel.md): a target's
scheme picks its :class:`Resolver` (``dns:``, ``ipv4:``, ``ipv6:``,
``unix:``, ``unix-abstract:``, or one added with :func:`register_resolver`;
:class:`StaticResolver` holds a list the program sets), which finds the
:class:`Address` list; ``ChannelOptions(load_balancing=...)`` chooses the
policy over their subchannels (:class:`PickFirst`, the default, or
:class:`RoundRobin`; a :class:`LoadBalancer` of one's own is registered
with :func:`register_load_balancer`).

Service config (``ChannelOptions(service_config=...)``, parsed by
:func:`parse_service_config` into a :class:`ServiceConfig` of
:class:`MethodConfig` entries): per-method timeouts, wait_for_ready, message
size limits, :class:`RetryPolicy` and :class:`HedgingPolicy` (gRFC A6, with
:class:`RetryThrottling`), and :class:`HealthCheckConfig` (gRFC A17).
:func:`retry_backoff`, :func:`parse_pushback` and :class:`RetryThrottle`
are the arithmetic the retry layer uses.
"""

from ._backoff import Backoff as Backoff
from ._backoff import BackoffPolicy as BackoffPolicy
from ._balancer import LoadBalancer as LoadBalancer
from ._balancer import LoadBalancingConfig as LoadBalancingConfig
from ._balancer import Pick as Pick
from ._balancer import SubchannelHandle as SubchannelHandle
from ._balancer import aggregate_state as aggregate_state
from ._balancer import load_balancing_config as load_balancing_config
from ._balancer import register_load_balancer as register_load_balancer
from ._builtin_resolvers import DnsResolver as DnsResolver
from ._call import ClientCall as ClientCall
from ._call import Requests as Requests
from ._call import StreamStreamCall as StreamStreamCall
from ._call import StreamUnaryCall as StreamUnaryCall
from ._call import UnaryStreamCall as UnaryStreamCall
from ._call import UnaryUnaryCall as UnaryUnaryCall
from ._channel import Channel as Channel
from ._channel import ChannelOptions as ChannelOptions
from ._connectivity import ConnectivityState as ConnectivityState
from ._interceptor import ClientCallDetails as ClientCallDetails
from ._interceptor import ClientContinuation as ClientContinuation
from ._interceptor import ClientInterceptor as ClientInterceptor
from ._interceptor import ClientStream as ClientStream
from ._interceptor import ForwardingClientStream as ForwardingClientStream
from ._options import CallKeywords as CallKeywords
from ._options import CallOptions as CallOptions
from ._options import MetadataLike as MetadataLike
from ._pick_first import PickFirst as PickFirst
from ._resolver import PollingResolver as PollingResolver
from ._resolver import ResolutionSchedule as ResolutionSchedule
from ._resolver import Resolver as Resolver
from ._resolver import ResolverFactory as ResolverFactory
from ._resolver import ResolverListener as ResolverListener
from ._resolver import StaticResolver as StaticResolver
from ._resolver import register_resolver as register_resolver
from ._resolver import unregister_resolver as unregister_resolver
from ._retry_rules import RetryBuffer as RetryBuffer
from ._retry_rules import RetryThrottle as RetryThrottle
from ._retry_rules import parse_pushback as parse_pushback
from ._retry_rules import retry_backoff as retry_backoff
from ._round_robin import RoundRobin as RoundRobin
from ._service_config import HealthCheckConfig as HealthCheckConfig
from ._service_config import HedgingPolicy as HedgingPolicy
from ._service_config import MethodConfig as MethodConfig
from ._service_config import MethodName as MethodName
from ._service_config import RetryPolicy as RetryPolicy
from ._service_config import RetryThrottling as RetryThrottling
from ._service_config import ServiceConfig as ServiceConfig
from ._service_config import parse_duration as parse_duration
from ._service_config import parse_service_config as parse_service_config
from ._target import Address as Address
from ._target import Target as Target
from ._target import parse_target as parse_target

__all__ = [
    "Address",
    "Backoff",
    "BackoffPolicy",
    "CallKeywords",
    "CallOptions",
    "Channel",
    "ChannelOptions",
    "ClientCall",
    "ClientCallDetails",
    "ClientContinuation",
    "ClientInterceptor",
    "ClientStream",
    "ConnectivityState",
    "DnsResolver",
    "ForwardingClientStream",
    "HealthCheckConfig",
    "HedgingPolicy",
    "LoadBalancer",
    "LoadBalancingConfig",
    "MetadataLike",
    "MethodConfig",
    "MethodName",
    "Pick",
    "PickFirst",
    "PollingResolver",
    "Requests",
    "ResolutionSchedule",
    "Resolver",
    "ResolverFactory",
    "ResolverListener",
    "RetryBuffer",
    "RetryPolicy",
    "RetryThrottle",
    "RetryThrottling",
    "RoundRobin",
    "ServiceConfig",
    "StaticResolver",
    "StreamStreamCall",
    "StreamUnaryCall",
    "SubchannelHandle",
    "Target",
    "UnaryStreamCall",
    "UnaryUnaryCall",
    "aggregate_state",
    "load_balancing_config",
    "parse_duration",
    "parse_pushback",
    "parse_service_config",
    "parse_target",
    "register_load_balancer",
    "register_resolver",
    "retry_backoff",
    "unregister_resolver",
]
