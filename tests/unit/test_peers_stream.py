"""wirelab.peers.stream: a server that sends a body and waits for the client's close,
the client that reads it, and a sender writing to a reader for a while, on loopback (a
fake node whose sockets are this process's).  The client's sockets end with a reset
(SO_LINGER 0), so the tests leave no TIME_WAIT in the root namespace.  No root."""
from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from wirelab.errors import LabError
from wirelab.measure import series
from wirelab.peers import stream


def abortive(s: socket.socket) -> socket.socket:
    """S closed with a reset: nobody keeps a TIME_WAIT."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return s


class _Node:
    """A server's sockets in this process's namespace (CLIENT: a client's, closed with a
    reset)."""

    def __init__(self, client: bool = False):
        self.client = client

    def ip(self) -> str:
        return "127.0.0.1"

    def socket(self) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        return abortive(s) if self.client else s


def test_the_client_reads_the_whole_body_and_the_server_waits_for_its_close():
    body = bytes(range(256)) * 400
    srv = stream.Sender(_Node(), 0, body)
    port = srv.sock.getsockname()[1]
    try:
        stream.receive(_Node(client=True), "127.0.0.1", port, len(body))
        with abortive(socket.create_connection(("127.0.0.1", port), timeout=5)) as c:
            got = b""
            while len(got) < len(body):
                got += c.recv(1 << 16)
            c.settimeout(0.3)
            with pytest.raises(TimeoutError):         # no FIN of the server's after the body
                c.recv(1)
        assert got == body
    finally:
        srv.close()


def test_a_sender_writes_to_the_reader_at_its_address(monkeypatch):
    reader = stream.Reader(_Node(), 0)
    assert reader.addr == ("127.0.0.1", 0)      # the node's address, the port asked for
    reader.addr = ("127.0.0.1", reader.sock.getsockname()[1])     # port 0: the one it got
    monkeypatch.setattr(stream.tcpinfo, "read", lambda sock: {"snd_wnd": 1})
    try:
        samples = stream.send_for(_Node(client=True), reader, 0.2, sample_s=0.02)
        assert samples and all(s == {"snd_wnd": 1} for s in samples)
        assert reader.progress[-1][1] > 0 and reader.goodput_mbps() > 0
    finally:
        reader.close()


def test_a_body_cut_short_is_a_lab_fault():
    with socket.create_server(("127.0.0.1", 0)) as ls:
        def serve():
            conn, _ = ls.accept()
            with conn:
                conn.sendall(b"x" * 10)
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        with pytest.raises(LabError, match="cut short"):
            stream.receive(_Node(client=True), "127.0.0.1", ls.getsockname()[1], 11, timeout_s=5)
        t.join(5)


def test_a_download_counts_what_arrives_until_stopped():
    class Node:
        def socket(self):
            return socket.socket()
    s = series.Series(1.0)
    s.start()
    port = None
    for _ in range(2):                      # a second download on the same port: it rebinds
        d = stream.Download(Node(), Node(), "127.0.0.1", port or 0, s)
        port = d._conn.getsockname()[1]
        d.start()
        time.sleep(0.2)
        d.stop()
    got = s.rate("goodput_kbit", 0, 1)
    assert got > 100, got                   # at least 12.5 kB over loopback in 0.4 s
