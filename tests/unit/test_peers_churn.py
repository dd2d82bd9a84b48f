"""wirelab.peers.churn: a client that connects and closes until its ports run out or at
a pace, and a server that closes first or second, on loopback (a fake node whose sockets
are this process's; a socket that fails connect() like an exhausted port range stands in
for EADDRNOTAVAIL).  The client's sockets end with a reset (SO_LINGER 0), so the tests
leave no TIME_WAIT in the root namespace.  No root."""
from __future__ import annotations

import errno
import socket
import struct
import time

import pytest

from wirelab.errors import LabError
from wirelab.peers import churn


def abortive(s: socket.socket) -> socket.socket:
    """S closed with a reset: nobody keeps a TIME_WAIT."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return s


class _Server:
    def socket(self) -> socket.socket:
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


class _Node:
    """A client's sockets in this process's namespace; after PORTS connections every
    connect() fails with ERR."""

    def __init__(self, ports: int = 10**9, err: int = errno.EADDRNOTAVAIL):
        self.left, self.err, self.made = ports, err, 0

    def ip(self) -> str:
        return "127.0.0.1"

    def socket(self) -> socket.socket:
        node = self

        class _Sock(socket.socket):
            def connect(self, addr):
                if node.left <= 0:
                    raise OSError(node.err, "no port")
                node.left -= 1
                node.made += 1
                super().connect(addr)
        return abortive(_Sock(socket.AF_INET, socket.SOCK_STREAM))


@pytest.fixture
def closer(request):
    srv = churn.Closer(_Server(), 0, close_first=request.param)
    yield srv, ("127.0.0.1", srv.sock.getsockname()[1])
    srv.close()


@pytest.mark.parametrize("closer", [False], indirect=True)
def test_connect_until_the_ports_run_out(closer):
    _, addr = closer
    assert churn.until_exhausted(_Node(ports=25), addr, 100) == 25
    with pytest.raises(LabError, match="no EADDRNOTAVAIL after 5"):
        churn.until_exhausted(_Node(ports=25), addr, 5)
    with pytest.raises(LabError, match="not EADDRNOTAVAIL"):
        churn.until_exhausted(_Node(ports=3, err=errno.ECONNREFUSED), addr, 100)


@pytest.mark.parametrize("closer", [True], indirect=True)
def test_paced_connections_count_the_failures_and_keep_the_pace(closer):
    _, addr = closer
    node = _Node(ports=6)
    t0 = time.perf_counter()
    assert churn.paced(node, addr, 10, 100.0, wait_eof=True) == (6, 4)
    assert time.perf_counter() - t0 >= 0.09           # 10 attempts, 10 ms apart
    with pytest.raises(LabError, match="connect 3:.*not EADDRNOTAVAIL"):
        churn.paced(_Node(ports=2, err=errno.ECONNRESET), addr, 5, 1000.0, wait_eof=True)


@pytest.mark.parametrize("closer", [True, False], indirect=True)
def test_the_server_closes_first_only_when_asked(closer):
    srv, addr = closer
    with abortive(socket.create_connection(addr, timeout=5)) as c:
        c.settimeout(0.3)
        if srv.close_first:
            assert c.recv(1) == b""                    # its FIN came first
        else:
            with pytest.raises(TimeoutError):          # it waits for ours
                c.recv(1)
