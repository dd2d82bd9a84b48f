"""One request, one response of S bytes, on a new TCP connection, in-process.

Used by the slow-start experiments (claims [10], [11]).  The client (in one
lab node) connects, sends the decimal size and a newline, and reads until S
bytes have arrived; the server (a thread listening in another node) answers
each connection with S zero bytes and closes.  Both ends live in the runner's
process, so a transfer starts no program (a process start costs ~30x native
inside UML) and both ends timestamp on one clock (``time.perf_counter``).

The server records what its accepted socket says before it sends anything
(TCP_INFO: the initial cwnd, the send MSS, the peer's window), again when the
client has closed (retransmissions, time limited by the receive window or the
send buffer) and, when asked,
samples TCP_INFO every ``sample_every_s`` while the response drains, for a
cwnd-over-time trace.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from wirelab.errors import LabError
from wirelab.measure import tcpinfo
from wirelab.peers.listener import RecordingListener

REQUEST_MAX_BYTES = 32
#: A transfer that takes longer than this is a failure, not a slow point.
TRANSFER_TIMEOUT_S = 120.0
#: TCP_INFO fields kept per sample of a cwnd trace.
SAMPLE_FIELDS = ("snd_cwnd", "snd_ssthresh", "unacked", "bytes_acked", "snd_wnd", "ca_state",
                 "rtt", "pacing_rate", "rwnd_limited", "delivery_rate")


#: The end hosts' sysctls for a transfer the slow-start model describes (on top of the
#: lab's baseline of Linux defaults): a first flight never restarted after idle (no
#: dependency on the RTO estimate), tcp_rmem[2] 16 MiB (autotuning room for a 10 MiB
#: transfer's last rounds; window scale 9), tcp_wmem[2] 64 MiB (the sender's buffer
#: holds a 10 MiB response's unacked data with skb overhead, so it never limits).
#: An experiment sets the client's tcp_rmem[1] on top where it is the knob.
TRANSFER_SYSCTLS = {
    "net.ipv4.tcp_slow_start_after_idle": "0",
    "net.ipv4.tcp_rmem": "4096 131072 16777216",
    "net.ipv4.tcp_wmem": "4096 16384 67108864",
}


class TransferError(LabError):
    """A transfer broke off or sent something other than what was asked."""


@dataclass
class ServerRecord:
    """What the server saw on one connection.  Times are perf_counter seconds."""
    accepted_s: float
    congestion: str
    info_at_accept: dict
    maxseg_bytes: int
    send_start_s: float = 0.0
    sent_bytes: int = 0
    send_done_s: float = 0.0
    info_at_end: dict = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)


class BulkServer(RecordingListener):
    """A listening socket in NODE on PORT and a thread that serves it.

    CONGESTION, if given, is set on the listening socket (TCP_CONGESTION):
    accepted sockets inherit it, so it is in force from the first data
    segment on.  NODELAY sets TCP_NODELAY on each accepted socket.
    ``sample_next(interval_s)`` asks for a TCP_INFO trace of the next
    connection only."""

    def __init__(self, node, port: int, congestion: str | None = None, nodelay: bool = True):
        self.nodelay = nodelay
        self._sample_interval_s: float | None = None
        self._payload = memoryview(bytes(0))

        def configure(sock: socket.socket) -> None:
            # Set on the listener before bind: accepted sockets inherit it.
            self.congestion = tcpinfo.set_congestion(sock, congestion) if congestion else \
                tcpinfo.congestion(sock)
            if congestion and self.congestion != congestion:
                raise TransferError(f"TCP_CONGESTION {congestion!r} read back as "
                                    f"{self.congestion!r}")
        super().__init__(node, port, backlog=16, name=f"bulk:{port}", configure=configure)

    def sample_next(self, interval_s: float) -> None:
        self._sample_interval_s = interval_s

    def reserve(self, size: int) -> None:
        """Allocate the response buffer now: zero-filling megabytes costs tens
        of ms of page faults inside UML, which must not land in a trial."""
        if len(self._payload) < size:
            self._payload = memoryview(bytearray(size))

    def mark(self, offset: int, marker: bytes) -> None:
        """Write MARKER into the response at OFFSET (a filter can then pick out the
        segment that carries it)."""
        self.reserve(offset + len(marker))
        self._payload[offset:offset + len(marker)] = marker

    def serve(self, conn: socket.socket) -> None:
        self.put(self._serve(conn))

    def _serve(self, conn: socket.socket) -> ServerRecord:
        accepted = time.perf_counter()
        conn.settimeout(TRANSFER_TIMEOUT_S)
        if self.nodelay:
            # Nagle (Linux's Minshall variant) holds a sub-MSS segment while
            # another is unacked.  One write can still produce two: the write
            # queue's skbs end off the MSS grid where tcp_sendmsg pushed while
            # waiting for send-buffer memory, or where a window edge split
            # one.  The second then waits a whole RTT - seen in 1 of 3
            # transfers of 100 KB.  HTTP servers set TCP_NODELAY; so do we.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rec = ServerRecord(accepted, tcpinfo.congestion(conn), tcpinfo.read(conn),
                           tcpinfo.maxseg(conn))
        interval, self._sample_interval_s = self._sample_interval_s, None
        sampler, done = None, threading.Event()
        if interval:
            # Started before the request is read: a thread start is slow in
            # UML and must not delay the response.
            sampler = threading.Thread(target=_sample, args=(conn, rec, interval, done),
                                       daemon=True, name="tcpinfo-sampler")
            sampler.start()
        try:
            self._send(conn, rec)
        finally:
            done.set()
            if sampler is not None:
                sampler.join(TRANSFER_TIMEOUT_S)
        return rec

    def _send(self, conn: socket.socket, rec: ServerRecord) -> None:
        size = _read_request(conn)
        self.reserve(size)
        rec.send_start_s = time.perf_counter()
        conn.sendall(self._payload[:size])
        rec.sent_bytes = size
        rec.send_done_s = time.perf_counter()
        # The client closes once it has read everything: its FIN comes after
        # its last ACK, so TCP_INFO read then covers the whole transfer.
        # (A blocking recv, not a poll: no wake-ups while the client reads.)
        extra = conn.recv(1)
        if extra:
            raise TransferError(f"the client sent more than one request: {extra!r}")
        rec.info_at_end = tcpinfo.read(conn)


def _read_request(conn: socket.socket) -> int:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = conn.recv(REQUEST_MAX_BYTES - len(buf))
        if not chunk:
            raise TransferError(f"the client closed before a full request ({buf!r})")
        buf += chunk
        if len(buf) >= REQUEST_MAX_BYTES and not buf.endswith(b"\n"):
            raise TransferError(f"request too long: {buf!r}")
    return int(buf.decode().strip())


def _sample(conn: socket.socket, rec: ServerRecord, interval_s: float,
            done: threading.Event) -> None:
    """TCP_INFO of CONN every INTERVAL_S until DONE is set (the client has
    closed: everything is acked), and once more then.

    Waits are on an absolute schedule (t0 + i * interval) so a late wake-up
    does not shift every later sample."""
    t0 = time.perf_counter()
    deadline = t0 + TRANSFER_TIMEOUT_S
    i = 0
    while True:
        now = time.perf_counter()
        try:
            info = tcpinfo.read(conn)
        except OSError:
            return  # closed under us
        rec.samples.append({"t_s": now, **{k: info.get(k) for k in SAMPLE_FIELDS}})
        if done.is_set() or now > deadline:
            return
        i += 1
        done.wait(max(0.0, t0 + i * interval_s - time.perf_counter()))


@dataclass
class ClientResult:
    t0_s: float          # connect() called
    connected_s: float   # connect() returned
    last_byte_s: float   # the S-th byte was read
    info: dict           # the client's TCP_INFO after the last byte

    @property
    def transfer_ms(self) -> float:
        return (self.last_byte_s - self.t0_s) * 1e3


RECV_CHUNK_BYTES = 1 << 20


def recv_buffer(size: int = RECV_CHUNK_BYTES) -> bytearray:
    """A receive buffer with every page already written: a fresh zero page
    faulted in during a transfer costs the reader time (a lot of it in UML)."""
    return bytearray(b"\0" * size)


def fetch(node, addr: str, port: int, size: int, buf: bytearray | None = None,
          rounds: tuple[int, ...] = ()) -> ClientResult:
    """Connect from NODE to ADDR:PORT, ask for SIZE bytes and read them all
    into BUF (reused, see :func:`recv_buffer`), chunk by chunk.

    ROUNDS (bytes, e.g. the first two flights of slow start): the reader sleeps until
    each of them has arrived whole (SO_RCVLOWAT), then reads as data comes.  A reader
    woken by every segment races the segments still arriving (whether it has copied a
    flight before that flight's last ACK decides the next window, on 6.1); this one is
    behind by exactly one flight, every time.

    The clock starts before connect(), so the time includes the handshake
    (one RTT), and stops when the last byte has been read."""
    sock = node.socket()
    sock.settimeout(TRANSFER_TIMEOUT_S)
    buf = buf if buf is not None else recv_buffer(min(size, RECV_CHUNK_BYTES) or 1)
    view = memoryview(buf)
    marks = [min(r, size) for r in rounds]
    try:
        t0 = time.perf_counter()
        sock.connect((addr, port))
        t1 = time.perf_counter()
        sock.sendall(f"{size}\n".encode())
        got, done = 0, 0            # done: the rounds read so far
        while got < size:
            if done < len(marks):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, max(1, marks[done]))
            n = sock.recv_into(view, min(len(buf), size - got))
            if done < len(marks):
                done, n_round = done + 1, n
                while n_round < marks[done - 1]:            # a short read: finish the round
                    k = sock.recv_into(view, min(len(buf), marks[done - 1] - n_round))
                    if k == 0:
                        raise TransferError(f"the server closed after {got + n_round} of {size} bytes")
                    n_round += k
                n = n_round
                if done == len(marks):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
            if n == 0:
                raise TransferError(f"the server closed after {got} of {size} bytes")
            got += n
        t2 = time.perf_counter()
        info = tcpinfo.read(sock)
    finally:
        sock.close()
    return ClientResult(t0, t1, t2, info)


CWND_CSV_COLUMNS = ("t_ms", "snd_cwnd_segs", "snd_ssthresh_segs", "unacked_segs", "bytes_acked",
                    "snd_wnd_bytes", "ca_state", "rtt_us", "pacing_rate_Bps", "delivery_rate_Bps",
                    "rwnd_limited_us")


def cwnd_csv(rec: ServerRecord, t0_s: float) -> str:
    """REC's TCP_INFO samples as CSV, time in ms since the client's connect()."""
    lines = [",".join(CWND_CSV_COLUMNS)]
    for s in rec.samples:
        row = [f"{(s['t_s'] - t0_s) * 1e3:.3f}", s["snd_cwnd"], s["snd_ssthresh"], s["unacked"],
               s["bytes_acked"], s["snd_wnd"], s["ca_state"], s["rtt"], s["pacing_rate"],
               s["delivery_rate"], s["rwnd_limited"]]
        lines.append(",".join("" if v is None else str(v) for v in row))
    return "\n".join(lines) + "\n"


TCPINFO_COLUMNS = ("repeat", "transfer_ms", "cc", "cwnd_at_accept", "snd_mss", "maxseg",
                   "peer_wnd_at_accept", "rwnd_limited_us", "sndbuf_limited_us",
                   "total_retrans", "client_rcv_ssthresh", "client_rcv_space")


def tcpinfo_row(repeat: int, res: ClientResult, rec: ServerRecord) -> str:
    """One CSV line of what TCP_INFO said about a transfer (the header before the
    first), for raw/trials_tcpinfo.csv."""
    info, end = rec.info_at_accept, rec.info_at_end
    row = (repeat, f"{res.transfer_ms:.3f}", rec.congestion, info["snd_cwnd"], info["snd_mss"],
           rec.maxseg_bytes, info.get("snd_wnd", ""), end.get("rwnd_limited", ""),
           end.get("sndbuf_limited", ""), end.get("total_retrans", ""),
           res.info.get("rcv_ssthresh", ""), res.info.get("rcv_space", ""))
    line = ",".join(str(v) for v in row) + "\n"
    return (",".join(TCPINFO_COLUMNS) + "\n" + line) if repeat == 0 else line


WARMUP_BYTES = 1000


@dataclass
class Session:
    """A BulkServer in one node, a client node, and a receive buffer: ready to time
    transfers (``fetch``) after one untimed warm-up."""
    server: BulkServer
    client: object
    addr: str
    port: int
    buf: bytearray

    def fetch(self, size: int, rounds: tuple[int, ...] = ()) -> tuple[ClientResult, ServerRecord]:
        """One timed transfer of SIZE bytes: what the client saw, what the server saw."""
        res = fetch(self.client, self.addr, self.port, size, self.buf, rounds)
        return res, self.server.record()


def start(lab, client: str, server: str, port: int, congestion: str | None,
          reserve_bytes: int, raw) -> Session:
    """A bulk server in SERVER (stopped with the lab) with its response buffer made now
    (zero-filling megabytes inside a timed transfer costs page faults), and one untimed
    warm-up transfer from CLIENT: it resolves ARP on both hops, whose replies cross the
    delay.  The warm-up is recorded in RAW's warmup.txt."""
    srv = BulkServer(lab[server], port, congestion)
    lab.undo.push("stop the bulk server", srv.close)
    srv.reserve(reserve_bytes)
    session = Session(srv, lab[client], lab[server].ip(), port, recv_buffer())
    res, rec = session.fetch(WARMUP_BYTES)
    raw.write_text("warmup.txt", f"warm-up transfer of {WARMUP_BYTES} B (not a trial): "
                                 f"{res.transfer_ms:.3f} ms, cc={rec.congestion}, cwnd at "
                                 f"accept {rec.info_at_accept['snd_cwnd']}\n")
    return session
