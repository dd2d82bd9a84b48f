"""A TCP server inside a lab host, in-process: a listening socket made in the
host's namespace and one thread serving it.

Experiments measure with these instead of a server program because inside
UML a process start costs ~30x native; the socket lives in the lab host's
network namespace all the same (see ``Node.socket``).  A subclass sets its
own attributes, then calls ``super().__init__`` (which starts the thread),
and implements ``handle(conn)``; the connection is closed when it returns.
"""
from __future__ import annotations

import socket
import threading
from typing import Callable


class Listener:
    def __init__(self, node, port: int, *, addr: str = "0.0.0.0", backlog: int = 64,
                 name: str = "listener",
                 configure: Callable[[socket.socket], None] | None = None):
        """Listen on ADDR:PORT in NODE; CONFIGURE(sock) runs before bind (for
        options accepted sockets inherit, such as TCP_CONGESTION)."""
        self.sock = node.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if configure is not None:
            configure(self.sock)
        self.sock.bind((addr, port))
        self.sock.listen(backlog)
        self._closed = False
        self.thread = threading.Thread(target=self._loop, daemon=True, name=name)
        self.thread.start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed: the lab is going away
            with conn:
                self.handle(conn)

    def close(self) -> None:
        """Stop accepting (shutdown wakes the blocked accept) and join the
        thread.  Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)
