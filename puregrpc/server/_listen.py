"""TCP listening sockets, optionally in a ``SO_REUSEPORT`` group.

Several processes may listen on one port when each of their sockets sets
``SO_REUSEPORT`` before binding (Linux 3.9+; every socket of the group must
belong to the same user). The kernel then spreads new connections over the
group's listening sockets by a hash of the connection's addresses, and each
socket has its own accept queue: a process that dies takes only its own
socket (and the connections queued on it) away, the others go on
accepting. :func:`open_tcp_listeners` opens such sockets for one process;
:func:`reserve_port` holds a port for the group without accepting on it
(see :mod:`._workers`).
"""

from __future__ import annotations

import socket

import trio

__all__ = ["open_tcp_listeners", "reserve_port", "reuse_port_supported"]


def reuse_port_supported() -> bool:
    """Whether this platform has ``SO_REUSEPORT`` (Linux, the BSDs, macOS)."""
    return hasattr(socket, "SO_REUSEPORT")


async def open_tcp_listeners(
    port: int, host: str | None = "127.0.0.1", *, reuse_port: bool = False
) -> list[trio.SocketListener]:
    """Listening sockets on ``host:port``, one an address ``host`` resolves to.

    Without ``reuse_port`` this is :func:`trio.open_tcp_listeners`. With it,
    each socket joins the port's ``SO_REUSEPORT`` group, so that other
    processes (or other sockets of this one) may listen on the same port.
    """
    if not reuse_port:
        return await trio.open_tcp_listeners(port, host=host)
    if not reuse_port_supported():
        raise OSError("SO_REUSEPORT is not supported on this platform")
    addresses = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    listeners: list[trio.SocketListener] = []
    try:
        for family, type_, proto, _, address in addresses:
            sock = trio.socket.socket(family, type_, proto)
            try:
                _set_reuse(sock, family)
                await sock.bind(address)
                sock.listen(socket.SOMAXCONN)
            except BaseException:
                sock.close()
                raise
            listeners.append(trio.SocketListener(sock))
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    return listeners


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` in the ``SO_REUSEPORT`` group, not listening.

    Port 0 picks a free port (read it with ``getsockname()``). The socket
    accepts nothing (only listening sockets receive connections), but while
    it is open the port stays the group's: a worker that dies and is
    started again binds the same port, even if no worker listens meanwhile.
    """
    if not reuse_port_supported():
        raise OSError("SO_REUSEPORT is not supported on this platform")
    family, type_, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, type_, proto)
    try:
        _set_reuse(sock, family)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _set_reuse(sock: socket.socket | trio.socket.SocketType, family: int) -> None:
    # SO_REUSEADDR as trio sets it (a restarted server rebinds at once despite
    # TIME_WAIT), SO_REUSEPORT to share the port, v6 sockets v6-only as trio's.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
