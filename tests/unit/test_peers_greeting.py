"""wirelab.peers.greeting: the burst and the server keep one clock, the instant the connects
leave, whatever setting up cost before it.  Loopback, no root."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from wirelab.errors import LabError
from wirelab.peers.greeting import Start, connect_burst, greeter


class Node:
    def socket(self):
        time.sleep(0.02)                # setting up is slow (as in UML): 20 ms a socket
        return socket.socket()


def test_the_schedule_counts_from_the_burst_not_from_the_setup():
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    start, taken, seen = Start(), [], []
    before = time.perf_counter()
    server = threading.Thread(target=greeter, args=(lsock, start, taken, 0.2, 0.05, 0.6), daemon=True)
    server.start()
    probe = start.at(0.15, lambda: seen.append(time.perf_counter()))
    connects, served, resets = connect_burst(Node(), lsock.getsockname(), 3, start, 0.6)
    server.join(5)
    probe.join(5)
    lsock.close()
    for c in taken:
        c.close()
    assert start.t0 - before >= 0.06                        # three sockets made first
    assert len(connects) == 3 and max(connects) < 0.05 and resets == 0
    assert sorted(served)[0] >= 0.2 and len(served) == 3    # no accept before start + 0.2 s
    assert abs(seen[0] - start.t0 - 0.15) < 0.02


def test_a_burst_that_never_starts_is_a_lab_fault():
    with pytest.raises(LabError, match="did not start within 0.05 s"):
        Start().wait(0.05)
