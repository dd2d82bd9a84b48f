"""wirelab.measure.proc_tcp: /proc/net/tcp parsed (ports, state, the timer left).
No root."""
from __future__ import annotations

import pytest

from wirelab.errors import LabError
from wirelab.measure import proc_tcp

#: a client's /proc/net/tcp (lab addresses): a listener, one TIME_WAIT toward port 7701
#: with 59.80 s left, one FIN_WAIT2 and one ESTABLISHED toward 7702
TEXT = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
    "   1: 0100000A:8000 0200000A:1E15 06 00000000:00000000 03:0000175C 00000000     0        0 0 3\n"
    "   2: 0100000A:8001 0200000A:1E16 05 00000000:00000000 00:00000000 00000000     0        0 5 1\n"
    "   3: 0100000A:8002 0200000A:1E16 01 00000000:00000000 00:00000000 00000000     0        0 6 1\n"
)


def test_each_socket_has_its_ports_state_and_timer():
    socks = proc_tcp.parse(TEXT)
    assert [(s.local_port, s.remote_port, s.state) for s in socks] == [
        (8000, 0, "LISTEN"), (32768, 7701, "TIME_WAIT"), (32769, 7702, "FIN_WAIT2"),
        (32770, 7702, "ESTABLISHED")]
    assert socks[1].timer_s == 59.8 and socks[0].timer_s == 0.0


def test_count_by_state_toward_a_port():
    socks = proc_tcp.parse(TEXT)
    assert proc_tcp.count(socks, "TIME_WAIT", 7701) == 1
    assert proc_tcp.count(socks, "TIME_WAIT", 7702) == 0
    assert proc_tcp.count(socks, "FIN_WAIT2", 7702) == 1
    assert proc_tcp.parse(TEXT.splitlines()[0]) == []


def test_settled_waits_for_the_peers_last_fin(monkeypatch):
    """A FIN_WAIT2 toward the port (the peer's FIN not yet in) is read again until it has
    become a TIME_WAIT; a closing socket toward another port does not hold it."""
    tw, fw2 = proc_tcp.Socket(32769, 7702, "TIME_WAIT", 60.0), proc_tcp.Socket(32769, 7702, "FIN_WAIT2", 0)
    other = proc_tcp.Socket(32770, 7701, "FIN_WAIT1", 0)
    reads = iter([[fw2, other], [fw2, other], [tw, other]])
    monkeypatch.setattr(proc_tcp, "read", lambda ns: next(reads))
    socks = proc_tcp.settled("ns", 7702, poll_s=0)
    assert socks == [tw, other] and next(reads, None) is None


def test_settled_gives_up_as_a_lab_fault(monkeypatch):
    fw2 = proc_tcp.Socket(32769, 7702, "FIN_WAIT2", 0)
    monkeypatch.setattr(proc_tcp, "read", lambda ns: [fw2])
    with pytest.raises(LabError, match="1 sockets toward port 7702 still closing after 0.01 s"):
        proc_tcp.settled("ns", 7702, timeout_s=0.01, poll_s=0.001)
