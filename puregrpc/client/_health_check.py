"""Client-side health checking (gRFC A17, grpc/grpc doc/health-checking.md).

With ``healthCheckConfig.serviceName`` in the service config (and the
``round_robin`` policy: A17 leaves ``pick_first`` unchecked), the balancer
does not see the :class:`~._subchannel.Subchannel` itself but a
:class:`HealthCheckedSubchannel` in front of it. While the connection is
READY, that one runs a ``grpc.health.v1.Health/Watch`` call on it and
reports what the server says::

    subchannel state     watch says              the balancer sees
    ─────────────────    ────────────────────    ──────────────────
    not READY            (no watch)              the subchannel's state
    READY                nothing yet             CONNECTING
    READY                SERVING                 READY
    READY                anything else, failed   TRANSIENT_FAILURE
    READY                UNIMPLEMENTED           READY (logged: checking is off)

A watch that fails (or that the server ends) is started again: at once if
it had answered, else after a backoff (the channel's connection backoff).
The watch runs in the channel's nursery under its own cancel scope, which
is cancelled when the connection leaves READY, the address is retired or
the channel closes: it never outlives its connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from ..runtime import Cardinality, ClientCallStream, Method
from ..wire import LocalProtocolError, Metadata, RpcError, StatusCode
from ._backoff import Backoff, BackoffPolicy
from ._channel_stream import ChannelStream, StreamOpener
from ._connectivity import ConnectivityState
from ._interceptor import ClientCallDetails
from ._subchannel import Spawner, Subchannel, SubchannelConnection

logger = logging.getLogger("puregrpc.client")

_S = ConnectivityState

#: The method watched (messages are grpc.health.v1's, imported when first used).
WATCH_PATH = "/grpc.health.v1.Health/Watch"

#: ``grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING``.
_SERVING = 1


class HealthCheckedSubchannel:
    """A subchannel as a balancer sees it with health checking: READY only while SERVING.

    ``on_change(self)`` hears of every change of the state it reports.
    """

    def __init__(
        self,
        subchannel: Subchannel,
        service_name: str,
        *,
        spawn: Spawner,
        on_change: Callable[[HealthCheckedSubchannel], None],
        backoff: BackoffPolicy,
    ) -> None:
        #: The subchannel underneath (calls are made on its connection).
        self.subchannel = subchannel
        self.service_name = service_name
        self._spawn = spawn
        self._on_change = on_change
        self._backoff = backoff
        #: What the watch says while the connection is READY.
        self._health = _S.CONNECTING
        self._health_error = ""
        self._scope: trio.CancelScope | None = None
        self._watched: SubchannelConnection | None = None

    # ------------------------------------------- what a balancer sees

    @property
    def name(self) -> str:
        """The address, as errors and logs name it."""
        return self.subchannel.name

    @property
    def state(self) -> ConnectivityState:
        """The subchannel's state, READY replaced by what its health says."""
        state = self.subchannel.state
        return self._health if state is _S.READY else state

    @property
    def retry_at(self) -> float:
        """When the subchannel may connect again (its backoff)."""
        return self.subchannel.retry_at

    @property
    def last_error(self) -> str:
        """Why the subchannel is failing: its connection, or its health."""
        if self.subchannel.state is _S.READY and self._health_error:
            return self._health_error
        return self.subchannel.last_error

    def request_connection(self) -> None:
        """Ask the subchannel to connect (as without health checking)."""
        self.subchannel.request_connection()

    def __repr__(self) -> str:
        return f"<HealthCheckedSubchannel {self.name} {self.state.name}>"

    # ------------------------------------------------------ driving

    def subchannel_changed(self) -> None:
        """The subchannel changed state: start watching a new READY connection, or stop."""
        current = self.subchannel.ready_connection(for_call=False)
        if self.subchannel.state is _S.READY and current is not None:
            if self._watched is not current:
                self.stop()
                self._watched = current
                self._health, self._health_error = _S.CONNECTING, ""
                scope = self._scope = trio.CancelScope()
                self._spawn(self._watch, current, scope)
        else:
            self.stop()

    def stop(self) -> None:
        """Stop watching (the connection went, the address was retired, the channel closes)."""
        if self._scope is not None:
            self._scope.cancel()
        self._scope = None
        self._watched = None

    # ------------------------------------------------------ the watch

    async def _watch(self, current: SubchannelConnection, scope: trio.CancelScope) -> None:
        # Imported here: puregrpc.health imports the client.
        from ..health.protos import health_pb2

        method: Method[Any, Any] = Method(
            path=WATCH_PATH,
            cardinality=Cardinality.UNARY_STREAM,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            request_deserializer=health_pb2.HealthCheckRequest.FromString,
            response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        request = health_pb2.HealthCheckRequest(service=self.service_name)
        backoff = Backoff(self._backoff)
        with scope:
            while current.usable:
                answered = False
                details = ClientCallDetails(method, Metadata(), None, None, False)
                stream: ChannelStream[Any, Any] = ChannelStream(details, _opener(current))
                try:
                    await stream.send_last(request)
                    while (response := await stream.receive()) is not None:
                        answered = True
                        if response.status == _SERVING:
                            self._set(_S.READY, "")
                        else:
                            status = health_pb2.HealthCheckResponse.ServingStatus.Name(
                                response.status
                            )
                            self._set(
                                _S.TRANSIENT_FAILURE,
                                f"health check: {self.service_name!r} is {status}",
                            )
                    reason = "health check: the server ended the Watch call"
                except RpcError as exc:
                    if exc.code is StatusCode.UNIMPLEMENTED:
                        logger.error(
                            "%s does not implement %s: health checking is off for this "
                            "connection, which counts as healthy (gRFC A17)",
                            self.name,
                            WATCH_PATH,
                        )
                        self._set(_S.READY, "")
                        return
                    reason = f"health check failed: {exc.code.name}: {exc.details}"
                finally:
                    stream.cancel("health watch over")
                if not _usable(current):
                    return  # the connection went: the subchannel leaves READY
                self._set(_S.TRANSIENT_FAILURE, reason)
                if answered:
                    backoff.reset()  # A17: it had answered: watch again at once
                else:
                    await trio.sleep(backoff.next_delay())

    def _set(self, health: ConnectivityState, error: str) -> None:
        changed = health is not self._health
        self._health, self._health_error = health, error
        if changed:
            logger.info("%s: health %s%s", self.name, health.name, f" ({error})" if error else "")
            self._on_change(self)


def _usable(current: SubchannelConnection) -> bool:
    return current.usable


def _opener(current: SubchannelConnection) -> StreamOpener:
    """Opens the Watch call on ``current`` itself (no pick: it checks this connection)."""

    async def open_stream(
        path: str,
        *,
        metadata: Metadata | None,
        grpc_timeout: float | None,
        compression: str | None,
        wait_for_ready: bool,
    ) -> ClientCallStream:
        try:
            return ClientCallStream.open(current.transport, path, metadata=metadata)
        except LocalProtocolError as exc:
            raise RpcError(
                StatusCode.UNAVAILABLE, f"cannot start the health watch: {exc}"
            ) from None

    return open_stream
