"""A server that speaks first, slowly, and a burst of clients: what a listen() backlog
does to connections that do not fit ([30]).

:func:`greeter` accepts from a start time on, one connection per interval, and writes one
byte to each; :func:`connect_burst` starts N non-blocking connects at once from one node
and records when each connect() returned and when its byte came (or a reset).  Both count
from one :class:`Start`: the instant the connects leave, set by the burst once its sockets
exist and a tick has just passed, so setting up (sockets, threads: slow and uneven in UML)
never shifts the schedule;
:func:`accept_queue` reads a listener's accept queue from /proc (no process start, so it
can be read at an exact moment) and :func:`backlog_of` its backlog (ss's Send-Q).
"""
from __future__ import annotations

import errno
import select
import socket
import threading
import time

from wirelab.errors import LabError
from wirelab.lab import netns


def accept_queue(node, port: int) -> int:
    """The accept queue (Recv-Q) of the socket listening on PORT, from /proc (no process)."""
    with netns.entered(node.ns), open("/proc/thread-self/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
                return int(fields[4].split(":")[1], 16)
    raise LabError(f"nothing listens on {port} in {node.name}")


def backlog_of(node, port: int) -> int:
    """The listener's backlog as the kernel keeps it (ss's Send-Q, from inet_diag)."""
    for line in node.run(["ss", "-Hltn", f"sport = :{port}"]).stdout.splitlines():
        return int(line.split()[2])
    raise LabError(f"ss shows no listener on {port} in {node.name}")


class Start:
    """The instant a burst began (perf_counter s): set once by :func:`connect_burst`,
    awaited by whatever keeps a schedule relative to it."""

    def __init__(self) -> None:
        self.t0 = 0.0
        self._set = threading.Event()

    def set(self, t0: float) -> None:
        self.t0 = t0
        self._set.set()

    def wait(self, timeout_s: float = 30.0) -> float:
        if not self._set.wait(timeout_s):
            raise LabError(f"the connect burst did not start within {timeout_s:g} s")
        return self.t0

    def at(self, offset_s: float, fn):
        """A started thread that calls FN() at the burst's start + OFFSET_S."""
        def run() -> None:
            t0 = self.wait()
            time.sleep(max(0.0, t0 + offset_s - time.perf_counter()))
            fn()
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t


def greeter(lsock: socket.socket, start: Start, taken: list, start_s: float, every_s: float,
            until_s: float) -> None:
    """From the burst's start + START_S on: accept, write one byte, wait EVERY_S; until its
    start + UNTIL_S.  Accepted sockets go to TAKEN (the caller closes them)."""
    t0 = start.wait()
    time.sleep(max(0.0, t0 + start_s - time.perf_counter()))
    while True:
        lsock.settimeout(max(0.01, t0 + until_s - time.perf_counter()))
        try:
            conn, _ = lsock.accept()
        except OSError:
            return                      # timed out (the trial's end) or closed
        taken.append(conn)
        conn.sendall(b"x")
        time.sleep(every_s)


#: linux/time.h (Python's time module names it only on some builds)
CLOCK_MONOTONIC_COARSE = 6


def tick_start(limit_s: float = 0.05) -> None:
    """Return just after the kernel's next tick (CLOCK_MONOTONIC_COARSE moves once a jiffy):
    timers armed now, a SYN's retransmission among them, expire in one jiffy rather than
    straddling two (a burst of connects takes ~1 ms in UML, against 10 ms jiffies)."""
    start = time.clock_gettime(CLOCK_MONOTONIC_COARSE)
    deadline = time.monotonic() + limit_s
    while time.clock_gettime(CLOCK_MONOTONIC_COARSE) == start and time.monotonic() < deadline:
        pass


def connect_burst(node, addr: tuple[str, int], n: int, start: Start, until_s: float
                  ) -> tuple[list, list, int]:
    """N non-blocking connects from NODE to ADDR at once, at the instant START is set to;
    until then + UNTIL_S, (connect times, byte times, resets) in s after it."""
    connected, served, resets = {}, {}, 0
    socks = [node.socket() for _ in range(n)]       # made first: the connects come together
    for s in socks:
        s.setblocking(False)
    tick_start()
    t0 = time.perf_counter()
    start.set(t0)
    for s in socks:
        s.connect_ex(addr)
    try:
        while time.perf_counter() < t0 + until_s:
            wait = [s for s in socks if s.fileno() not in connected]
            read = [s for s in socks if s.fileno() in connected and s.fileno() not in served]
            r, w, _ = select.select(read, wait, [], 0.005)
            now = time.perf_counter() - t0
            for s in w:             # a refused or reset connect() counts as reset, once
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                connected[s.fileno()] = now if err == 0 else -1.0
                if err:
                    served[s.fileno()], resets = -1.0, resets + 1
            for s in r:
                try:
                    served[s.fileno()] = now if s.recv(1) else -1.0
                except OSError as e:
                    if e.errno != errno.ECONNRESET:
                        raise
                    served[s.fileno()], resets = -1.0, resets + 1
        return ([t for t in connected.values() if t >= 0], [t for t in served.values() if t >= 0],
                resets)
    finally:
        for s in socks:
            s.close()
