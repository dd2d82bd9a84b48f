"""A one-way byte stream in-process: a reader that records its progress (and may stop
reading for a while, to close its window) and a sender that writes for a fixed time while
a second thread samples its TCP_INFO (flow control, [09]); a server that sends a fixed
body on each connection and a client that reads it all (loss recovery, [08]).  No program
is started, so a trial costs no process start inside UML."""
from __future__ import annotations

import contextlib
import socket
import threading
import time

from wirelab.errors import LabError
from wirelab.measure import tcpinfo
from wirelab.peers.listener import Listener, recv_into_exact

READ_CHUNK_BYTES = 1 << 20


class Reader(Listener):
    """Reads everything each connection sends into ``progress`` [(perf_counter s, bytes so
    far)].  RCVBUF: SO_RCVBUF on the listening socket (accepted sockets inherit it, and it
    must come before listen() to shape the window scale), 0 for autotuning.  PAUSE: (after
    s, for s) stop reading once AFTER seconds have passed since the first byte."""

    def __init__(self, node, port: int, rcvbuf: int = 0, pause: tuple[float, float] | None = None):
        self.pause, self.addr = pause, (node.ip(), port)
        self.progress: list[tuple[float, int]] = []
        self.done = threading.Event()

        def configure(sock: socket.socket) -> None:
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        super().__init__(node, port, name="reader", configure=configure)

    def handle(self, conn: socket.socket) -> None:
        buf, got, first = memoryview(bytearray(READ_CHUNK_BYTES)), 0, None
        pending = self.pause
        self.progress = []
        conn.settimeout(30)
        with contextlib.suppress(OSError):      # the sender reports a broken stream
            while n := conn.recv_into(buf):
                now = time.perf_counter()
                first = first or now
                got += n
                self.progress.append((now, got))
                if pending is not None and now - first >= pending[0]:
                    time.sleep(pending[1])
                    pending = None
        self.done.set()

    def goodput_mbps(self, since_fraction: float = 0.5) -> float:
        """Bytes per second (as Mbit/s) over the last part of the stream, from the
        moment SINCE_FRACTION of its duration had passed."""
        prog = self.progress
        if len(prog) < 2:
            raise LabError(f"the reader saw {len(prog)} reads")
        t_from = prog[0][0] + (prog[-1][0] - prog[0][0]) * since_fraction
        mid = next(p for p in prog if p[0] >= t_from)
        return (prog[-1][1] - mid[1]) * 8 / (prog[-1][0] - mid[0]) / 1e6


def send_for(node, reader: Reader, seconds: float, sample_s: float = 0.02) -> list[dict]:
    """Connect from NODE to READER and write for SECONDS, then close and wait for it to see
    the end.  Returns TCP_INFO every SAMPLE_S, read by a second thread (send() blocks while
    the peer's window is shut)."""
    sock, samples, done = node.socket(), [], threading.Event()
    payload = memoryview(bytes(256 << 10))
    reader.done.clear()

    def sample() -> None:
        while not done.wait(sample_s):
            with contextlib.suppress(OSError):
                samples.append(tcpinfo.read(sock))
    sampler = threading.Thread(target=sample, daemon=True)
    try:
        sock.settimeout(30)
        sock.connect(reader.addr)
        sampler.start()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            sock.send(payload)
    finally:
        done.set()
        if sampler.is_alive():
            sampler.join()
        sock.close()
    if not reader.done.wait(30):
        raise LabError("the reader did not see the end of the stream")
    return samples


class Sender(Listener):
    """Sends BODY on every connection and waits for the client to close: a FIN of its own
    after the body would be ACKed (SACKed) and turn a lost tail into a fast retransmit."""

    def __init__(self, node, port: int, body: bytes):
        self.body = body
        super().__init__(node, port, name="sender")

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        with contextlib.suppress(OSError):      # the client reports a short body
            conn.sendall(self.body)
            conn.recv(1)


def receive(node, addr: str, port: int, size: int, timeout_s: float = 30.0) -> None:
    """Connect from NODE to a :class:`Sender` at ADDR:PORT, read its SIZE bytes and close;
    LabError if the body was cut short."""
    sock = node.socket()
    try:
        sock.settimeout(timeout_s)
        sock.connect((addr, port))
        buf = bytearray(size)
        if recv_into_exact(sock, memoryview(buf)) != len(buf):
            raise LabError("the response was cut short")
    finally:
        sock.close()


class Download:
    """A TCP download that runs until stopped: a thread in SRC writes as fast as it may, one
    in DST reads and counts what arrives into SERIES as NAME in kbit (NAME_per_s: kbit/s).
    The sockets are made at once (connected when this returns); ``start()``, ``stop()``."""

    def __init__(self, src, dst, addr: str, port: int, series, name: str = "goodput_kbit"):
        self.series, self.name, self._stop = series, name, threading.Event()
        srv = src.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # the last one's TIME_WAIT
        srv.bind((addr, port))
        srv.listen(1)
        self._cli = dst.socket()
        self._cli.connect(srv.getsockname())
        self._conn = srv.accept()[0]
        srv.close()
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._send, self._receive)]

    def _send(self) -> None:
        with contextlib.suppress(OSError):
            while not self._stop.is_set():
                self._conn.sendall(bytes(65536))

    def _receive(self) -> None:
        left = 0
        with contextlib.suppress(OSError):
            while data := self._cli.recv(65536):
                k, left = divmod(left + len(data), 125)         # 125 bytes: 1 kbit
                self.series.count(self.name, n=k)

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for k in (self._conn, self._cli):
            with contextlib.suppress(OSError):
                k.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=5)
        self._conn.close()
        self._cli.close()
