"""Connection churn in-process: a client that opens and closes connections to one
destination, as fast as it can until its ports run out or paced at a rate, and a server
that closes first or second (which side keeps the TIME_WAIT).  Used by port exhaustion
([15]); no program is started, so a connection costs no process start inside UML."""
from __future__ import annotations

import contextlib
import errno
import socket
import time

from wirelab.errors import LabError
from wirelab.peers.listener import Listener


class Closer(Listener):
    """Ends every connection: at once with CLOSE_FIRST (the server's side then holds the
    TIME_WAIT), else when the client's FIN arrives (the client's side holds it)."""

    def __init__(self, node, port: int, close_first: bool, backlog: int = 4096):
        self.close_first = close_first
        super().__init__(node, port, backlog=backlog, name=f"server-{port}")

    def handle(self, conn: socket.socket) -> None:
        if not self.close_first:
            with contextlib.suppress(OSError):
                conn.recv(1)


def until_exhausted(node, addr: tuple[str, int], limit: int) -> int:
    """Connect from NODE to ADDR and close, over and over, until connect() fails with
    EADDRNOTAVAIL (no local port left toward ADDR): how many succeeded.  LabError on any
    other error, or on none after LIMIT connections."""
    made = 0
    while made < limit:
        with node.socket() as s:
            try:
                s.connect(addr)
            except OSError as e:
                if e.errno == errno.EADDRNOTAVAIL:
                    return made
                raise LabError(f"connect {made + 1}: {e!r}, not EADDRNOTAVAIL") from e
        made += 1
    raise LabError(f"no EADDRNOTAVAIL after {limit} connections")


def paced(node, addr: tuple[str, int], limit: int, rate_per_s: float,
          wait_eof: bool) -> tuple[int, int]:
    """(connections made, EADDRNOTAVAIL failures): LIMIT attempts from NODE to ADDR paced
    at RATE_PER_S, each connection closed by the client (after the server's EOF when
    WAIT_EOF: the server closed first).  LabError on any other error."""
    made = failed = 0
    t0 = time.perf_counter()
    for i in range(limit):
        delay = t0 + i / rate_per_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        s = node.socket()
        try:
            s.settimeout(5)
            s.connect(addr)
            if wait_eof and s.recv(1) != b"":
                raise LabError("the server sent data instead of closing")
            made += 1
        except OSError as e:
            if e.errno != errno.EADDRNOTAVAIL:
                raise LabError(f"connect {i + 1}: {e!r}, not EADDRNOTAVAIL") from e
            failed += 1
        finally:
            s.close()
    return made, failed
