"""TCP servers inside a lab host, in-process: a listening socket made in the host's
namespace and one thread serving it.

Experiments measure with these instead of a server program because inside UML a
process start costs ~30x native; the socket lives in the lab host's network namespace
all the same (see ``Node.socket``).  A subclass sets its own attributes, then calls
``super().__init__`` (which starts the thread), and implements ``handle(conn)``; the
connection is closed when it returns.

:class:`RecordingListener` is the common case of a server that reports what it saw:
``serve(conn)`` returns one record per request (or per connection), which the trial
takes with ``record()``; an exception in the server thread comes out of ``record()``.
"""
from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from wirelab.errors import LabError


class Listener:
    def __init__(self, node, port: int, *, addr: str = "0.0.0.0", backlog: int = 64,
                 name: str = "listener",
                 configure: Callable[[socket.socket], None] | None = None):
        """Listen on ADDR:PORT in NODE; CONFIGURE(sock) runs before bind (for
        options accepted sockets inherit, such as TCP_CONGESTION)."""
        self.sock = node.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            if configure is not None:
                configure(self.sock)
            self.sock.bind((addr, port))
            self.sock.listen(backlog)
        except BaseException:
            self.sock.close()
            raise
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


class RecordingListener(Listener):
    """A Listener whose ``serve(conn)`` reports what happened: it may call
    ``self.put(record)`` any number of times; an OSError or ValueError it raises is
    queued too and raised by ``record()`` in the trial's thread."""

    def __init__(self, node, port: int, **kwargs):
        self.records: queue.Queue = queue.Queue()
        super().__init__(node, port, **kwargs)

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def put(self, record: Any) -> None:
        self.records.put(record)

    def handle(self, conn: socket.socket) -> None:
        try:
            self.serve(conn)
        except (OSError, ValueError, LabError) as e:
            self.records.put(e)

    def record(self, timeout_s: float = 120.0) -> Any:
        """The next record the server made (raises what the server thread hit)."""
        try:
            rec = self.records.get(timeout=timeout_s)
        except queue.Empty:
            raise LabError(f"the server recorded nothing within {timeout_s:g} s") from None
        if isinstance(rec, BaseException):
            raise LabError(f"the server failed: {type(rec).__name__}: {rec}") from rec
        return rec


def recv_exact(conn: socket.socket, n: int) -> bool:
    """Read exactly N bytes from CONN (and drop them); False on a clean EOF before any
    of them, LabError on one in the middle."""
    got = 0
    while got < n:
        chunk = conn.recv(n - got)
        if not chunk:
            if got:
                raise LabError(f"request cut short after {got} of {n} bytes")
            return False
        got += len(chunk)
    return True


def recv_into_exact(sock: socket.socket, view: memoryview) -> int:
    """Fill VIEW from SOCK; the bytes read (fewer only if the peer closed)."""
    got = 0
    while got < len(view):
        k = sock.recv_into(view[got:])
        if k == 0:
            break
        got += k
    return got


def fetch_ms(client: socket.socket, request: bytes, buf: bytearray) -> float:
    """Send REQUEST and read a response of exactly len(BUF) bytes into BUF: ms from the
    send() to the last byte.  LabError if the server closes first."""
    t0 = time.perf_counter()
    client.sendall(request)
    if recv_into_exact(client, memoryview(buf)) < len(buf):
        raise LabError(f"the server closed before sending {len(buf)} bytes")
    return (time.perf_counter() - t0) * 1e3
