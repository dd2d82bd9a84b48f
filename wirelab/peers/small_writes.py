"""A request written in two small halves, and a server that answers once it holds both:
the exchange where Nagle's algorithm meets the peer's delayed ACK.

The client writes the halves the way ``mode`` says (two ``write()`` calls with or
without TCP_NODELAY, one ``sendmsg`` of both, or TCP_CORK around two writes); the
server re-arms TCP_QUICKACK before every ``recv()`` when asked (the option is not
permanent: pingpong mode comes back with the next reply), and records TCP_INFO after
each reply.
"""
from __future__ import annotations

import socket
import time

from wirelab.errors import LabError
from wirelab.measure import tcpinfo
from wirelab.peers.listener import RecordingListener, recv_exact

#: How the client writes the two halves.
MODES = ("nagle", "nodelay", "quickack", "writev", "cork")


class HalvesServer(RecordingListener):
    """Replies REPLY bytes to every 2 x HALF bytes received; records TCP_INFO after
    each reply."""

    def __init__(self, node, port: int, half: int, reply: int, quickack: bool):
        self.half, self.reply, self.quickack = half, reply, quickack
        super().__init__(node, port, backlog=8, name="halves-server")

    def serve(self, conn: socket.socket) -> None:
        while True:
            got = 0
            while got < 2 * self.half:
                if self.quickack:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                chunk = conn.recv(2 * self.half - got)
                if not chunk:
                    return
                got += len(chunk)
            conn.sendall(b"r" * self.reply)
            self.put(tcpinfo.read(conn))


def connect(node, addr: str, port: int, mode: str, timeout_s: float) -> socket.socket:
    """A client connection from NODE, with TCP_NODELAY only in mode nodelay."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
    conn = node.socket()
    try:
        conn.settimeout(timeout_s)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if mode == "nodelay" else 0)
        conn.connect((addr, port))
    except BaseException:
        conn.close()
        raise
    return conn


def request(conn: socket.socket, mode: str, half: int, reply: int) -> float:
    """One request of two HALF-byte halves written as MODE says; ms from the first
    write until the REPLY bytes are read."""
    a, b = b"a" * half, b"b" * half
    t0 = time.perf_counter()
    if mode == "writev":
        conn.sendmsg([a, b])
    else:
        if mode == "cork":
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        conn.sendall(a)
        conn.sendall(b)
        if mode == "cork":
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
    if not recv_exact(conn, reply):
        raise LabError(f"the server closed before replying ({mode})")
    return (time.perf_counter() - t0) * 1e3
