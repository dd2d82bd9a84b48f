"""The TCP sockets of one lab namespace as ``/proc/net/tcp`` lists them, read in-process
(no ``ss`` or ``cat`` process: inside UML that costs ~30x native).

``/proc/thread-self/net/tcp`` shows the namespace of the calling thread, so it is read
inside :func:`wirelab.lab.netns.entered`.  One line per IPv4 socket::

    sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt ...
     0: 0200000A:1E61 0100000A:8000 06 00000000:00000000 03:000016F5 00000000 ...

addresses and ports in hex, the state as include/net/tcp_states.h numbers it, and the
time left on the socket's timer in clock ticks (USER_HZ, 100 a second).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from wirelab.errors import LabError
from wirelab.lab import netns

PROC_TCP = "/proc/thread-self/net/tcp"
#: include/net/tcp_states.h
STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
          "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
          "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING", "0C": "NEW_SYN_RECV"}
USER_HZ = 100


@dataclass(frozen=True)
class Socket:
    local_port: int
    remote_port: int
    state: str          # "TIME_WAIT"
    timer_s: float      # time left on its timer (0 when none is armed)


def parse(text: str) -> list[Socket]:
    """Every socket /proc/net/tcp's TEXT lists (its header line skipped)."""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 6:
            continue
        lport, rport = (int(a.split(":")[1], 16) for a in fields[1:3])
        out.append(Socket(lport, rport, STATES.get(fields[3].upper(), fields[3]),
                          int(fields[5].split(":")[1], 16) / USER_HZ))
    return out


def read(ns: str) -> list[Socket]:
    """The TCP sockets of namespace NS, now."""
    with netns.entered(ns), open(PROC_TCP) as f:
        return parse(f.read())


def count(sockets: list[Socket], state: str, remote_port: int) -> int:
    """How many of SOCKETS are in STATE toward REMOTE_PORT."""
    return sum(1 for s in sockets if s.state == state and s.remote_port == remote_port)


#: the states a socket passes through between close() and TIME_WAIT (or CLOSE)
CLOSING = ("FIN_WAIT1", "FIN_WAIT2", "CLOSING", "LAST_ACK")


def settled(ns: str, remote_port: int, timeout_s: float = 10.0, poll_s: float = 0.05) -> list[Socket]:
    """NS's sockets once none toward REMOTE_PORT is still closing (every FIN sent has been
    answered), read again every POLL_S.  LabError when some still are after TIMEOUT_S: the
    peer stopped answering, a fault of the lab rather than a count to judge."""
    deadline = time.monotonic() + timeout_s
    while True:
        sockets = read(ns)
        closing = [s for s in sockets if s.state in CLOSING and s.remote_port == remote_port]
        if not closing:
            return sockets
        if time.monotonic() >= deadline:
            raise LabError(f"{len(closing)} sockets toward port {remote_port} still closing "
                           f"after {timeout_s:g} s (first: {closing[0].state})")
        time.sleep(poll_s)
