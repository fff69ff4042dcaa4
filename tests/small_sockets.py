"""A server and a channel over a socket pair with tiny buffers (shared by tests of direct writes).

Writes that the socket does not take at once show whether a task that
writes directly hands the rest to the writer without losing or reordering a
byte.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from puregrpc.client import Channel
from puregrpc.server import Server


def pattern(size: int) -> bytes:
    """Bytes whose every position is distinct enough to show a lost or reordered chunk."""
    return bytes(index * 7 % 251 for index in range(size))


def small_buffer_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    """A connected socket pair whose buffers take a few KiB per write at most."""
    client_sock, server_sock = socket.socketpair()
    for sock in (client_sock, server_sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return (
        trio.SocketStream(trio.socket.from_stdlib_socket(client_sock)),
        trio.SocketStream(trio.socket.from_stdlib_socket(server_sock)),
    )


@asynccontextmanager
async def channel_over_small_sockets(server: Server) -> AsyncIterator[Channel]:
    """A channel whose one connection is ``server`` handling the other end of a small pair."""
    async with trio.open_nursery() as nursery:
        client_end, server_end = small_buffer_pair()
        nursery.start_soon(server.handle_stream, server_end)

        async def connect() -> trio.abc.Stream:
            return client_end

        async with Channel(connect=connect) as channel:
            yield channel
        nursery.cancel_scope.cancel()
