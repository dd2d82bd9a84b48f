"""A connection whose peer goes away: an echo server, and a client that exchanges a byte,
has the server's filter drop it (a partition, as the client sees it), optionally writes
into the void, and waits for the kernel to give up.  Used to measure keep-alive and the
retransmission timeout's give-up."""
from __future__ import annotations

import errno
import socket
import threading
import time

from wirelab.errors import LabError
from wirelab.lab import firewall
from wirelab.measure.tap import Tap
from wirelab.peers.listener import Listener


class EchoHolder(Listener):
    """Echoes one byte for what it reads, a thread per connection (a connection cut off
    stays blocked until the lab goes)."""

    def handle(self, conn: socket.socket) -> None:
        threading.Thread(target=self._echo, args=(conn.dup(),), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(1024):
                    conn.sendall(data[:1])
            except OSError:
                return


def start(lab, port: int, client: str = "h1", server: str = "h2") -> Tap:
    """An EchoHolder on SERVER:PORT and a tap on CLIENT, both stopped with the lab: what a
    partition experiment needs before its trials.  Returns the tap."""
    holder = EchoHolder(lab[server], port, name="holder")
    lab.undo.push("stop the server", holder.close)
    tap = Tap(lab[client])
    lab.undo.push("close the tap", tap.close)
    return tap


def until_dead(client, server, port: int, *, keepalive: tuple[int, int, int] | None = None,
               user_timeout_ms: int | None = None, write: bytes = b"",
               warm_writes: int = 0, warm_gap_s: float = 0.0, wait_s: float = 120.0) -> float:
    """Connect CLIENT (a lab node) to the EchoHolder on SERVER:PORT, exchange a byte
    (WARM_WRITES more, WARM_GAP_S apart, for an RTT estimate), make SERVER's filter drop
    everything from CLIENT, send WRITE if any, and block until the kernel reports
    ETIMEDOUT; return that moment (time.time(), the clock packet taps use).  KEEPALIVE:
    (idle s, interval s, count) set on the socket; the filter rule is removed after."""
    sock = client.socket()
    if keepalive is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, v in zip((socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT),
                          keepalive, strict=True):
            sock.setsockopt(socket.IPPROTO_TCP, opt, v)
    if user_timeout_ms is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, user_timeout_ms)
    cut = ("INPUT", "-s", client.ip(), "-p", "tcp", "--dport", str(port), "-j", "DROP")
    try:
        sock.settimeout(10)
        sock.connect((server.ip(), port))
        for i in range(1 + warm_writes):
            if i:
                time.sleep(warm_gap_s)
            sock.sendall(b"x")
            if sock.recv(1) != b"x":
                raise LabError("the server did not echo")
        firewall.rule(server, *cut)
        try:
            if write:
                sock.sendall(write)
            sock.settimeout(wait_s)
            try:
                sock.recv(1)
            except OSError as e:
                if e.errno != errno.ETIMEDOUT:
                    raise LabError(f"recv() failed with {e!r}, not ETIMEDOUT") from e
                return time.time()
            raise LabError("the cut-off peer answered")
        finally:
            firewall.delete(server, *cut)
    finally:
        sock.close()
