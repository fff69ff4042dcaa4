"""The ``grpc.channelz.v1.Channelz`` service over the process's channelz registry.

Each request takes fresh snapshots (``Server.channelz()``,
``Channel.channelz()``) of every live server and top-level channel, so
what it answers is current to the call, and nothing is kept between calls.
Lists are paged as A14 says: sorted by id, starting at the request's start
id, at most ``max_results`` long (0: :data:`DEFAULT_PAGE_SIZE`), with
``end`` set once nothing is left after the page. An unknown id is
NOT_FOUND naming it; a negative ``max_results`` is INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from ..runtime import (
    CHANNELZ,
    ChannelzListenSocket,
    ChannelzRegistry,
    ChannelzSocket,
    ChannelzSubchannel,
)
from ..server import Server, ServicerContext
from ..wire import RpcError, StatusCode
from . import _convert
from .protos import channelz_pb2 as pb
from .protos.channelz_puregrpc import ChannelzServicer

#: Items per page when a request leaves ``max_results`` at 0.
DEFAULT_PAGE_SIZE = 100

_Item = TypeVar("_Item")


def enable_channelz(server: Server, *, registry: ChannelzRegistry | None = None) -> ChannelzService:
    """Serve channelz on ``server``: every server and channel of the process, one line.

    ``registry`` is the process's (:data:`puregrpc.runtime.CHANNELZ`) unless
    given. Returns the service added.
    """
    service = ChannelzService(registry)
    server.add_service(service)
    return service


def _page(
    items: Sequence[_Item], ids: Sequence[int], start: int, max_results: int
) -> tuple[list[_Item], bool]:
    """The page of ``items`` (sorted by ``ids``) from ``start``; and whether it is the last."""
    if max_results < 0:
        raise RpcError(
            StatusCode.INVALID_ARGUMENT, f"max_results must not be negative, got {max_results}"
        )
    size = max_results or DEFAULT_PAGE_SIZE
    selected = [item for item, ident in zip(items, ids, strict=True) if ident >= start]
    return selected[:size], len(selected) <= size


class ChannelzService(ChannelzServicer):
    """Answers channelz queries from a registry (see :func:`enable_channelz`)."""

    def __init__(self, registry: ChannelzRegistry | None = None) -> None:
        """Report what ``registry`` holds (default: the process's registry)."""
        self._registry = CHANNELZ if registry is None else registry

    async def GetTopChannels(
        self, request: pb.GetTopChannelsRequest, context: ServicerContext
    ) -> pb.GetTopChannelsResponse:
        """The top-level channels from ``start_channel_id``, one page."""
        channels = self._registry.channels()
        page, end = _page(
            channels, [c.id for c in channels], request.start_channel_id, request.max_results
        )
        return pb.GetTopChannelsResponse(
            channel=[_convert.channel_message(channel) for channel in page], end=end
        )

    async def GetServers(
        self, request: pb.GetServersRequest, context: ServicerContext
    ) -> pb.GetServersResponse:
        """The servers from ``start_server_id``, one page."""
        servers = self._registry.servers()
        page, end = _page(
            servers, [s.id for s in servers], request.start_server_id, request.max_results
        )
        return pb.GetServersResponse(
            server=[_convert.server_message(server) for server in page], end=end
        )

    async def GetServer(
        self, request: pb.GetServerRequest, context: ServicerContext
    ) -> pb.GetServerResponse:
        """One server, or NOT_FOUND."""
        server = self._registry.server(request.server_id)
        if server is None:
            raise RpcError(StatusCode.NOT_FOUND, f"no server with id {request.server_id}")
        return pb.GetServerResponse(server=_convert.server_message(server))

    async def GetServerSockets(
        self, request: pb.GetServerSocketsRequest, context: ServicerContext
    ) -> pb.GetServerSocketsResponse:
        """A server's open connections from ``start_socket_id``, one page of refs."""
        server = self._registry.server(request.server_id)
        if server is None:
            raise RpcError(StatusCode.NOT_FOUND, f"no server with id {request.server_id}")
        sockets = server.sockets
        page, end = _page(
            sockets, [s.id for s in sockets], request.start_socket_id, request.max_results
        )
        return pb.GetServerSocketsResponse(
            socket_ref=[_convert.socket_ref(socket) for socket in page], end=end
        )

    async def GetChannel(
        self, request: pb.GetChannelRequest, context: ServicerContext
    ) -> pb.GetChannelResponse:
        """One top-level channel, or NOT_FOUND."""
        channel = self._registry.channel(request.channel_id)
        if channel is None:
            raise RpcError(StatusCode.NOT_FOUND, f"no channel with id {request.channel_id}")
        return pb.GetChannelResponse(channel=_convert.channel_message(channel))

    async def GetSubchannel(
        self, request: pb.GetSubchannelRequest, context: ServicerContext
    ) -> pb.GetSubchannelResponse:
        """One subchannel of any channel, or NOT_FOUND."""
        for subchannel in self._subchannels():
            if subchannel.id == request.subchannel_id:
                return pb.GetSubchannelResponse(subchannel=_convert.subchannel_message(subchannel))
        raise RpcError(StatusCode.NOT_FOUND, f"no subchannel with id {request.subchannel_id}")

    async def GetSocket(
        self, request: pb.GetSocketRequest, context: ServicerContext
    ) -> pb.GetSocketResponse:
        """One socket (a connection or a listen socket), or NOT_FOUND."""
        wanted = request.socket_id
        for socket in self._sockets():
            if socket.id != wanted:
                continue
            if isinstance(socket, ChannelzListenSocket):
                return pb.GetSocketResponse(socket=_convert.listen_socket_message(socket))
            return pb.GetSocketResponse(
                socket=_convert.socket_message(socket, summary=request.summary)
            )
        raise RpcError(StatusCode.NOT_FOUND, f"no socket with id {wanted}")

    def _subchannels(self) -> list[ChannelzSubchannel]:
        return [sub for channel in self._registry.channels() for sub in channel.subchannels]

    def _sockets(self) -> list[ChannelzSocket | ChannelzListenSocket]:
        found: list[ChannelzSocket | ChannelzListenSocket] = []
        for server in self._registry.servers():
            found.extend(server.listen_sockets)
            found.extend(server.sockets)
        for subchannel in self._subchannels():
            found.extend(subchannel.sockets)
        return found
