"""[17] nagle_delayed_ack_stall: write(100 B); write(100 B); read() stalls on Nagle plus
the server's delayed ACK, by about 40 ms on Linux (TCP_DELACK_MIN), not 200 ms.

Client h1 and server h2 on either side of router r1 (rtt_ms/2 each way; 0: no netem),
both in-process sockets; the server replies 100 B once it holds 200 B.  One trial is
one request on a long-lived connection, 10 ms after the previous reply:

    nagle:   A ->            server: only 100 B, no reply; ACK delayed (ATO)
             (B held: A is unACKed and small, tcp_nagle_check/tcp_minshall_check)
             <- ACK          when the delayed-ACK timer fires, ATO + up to 1 jiffy later
             B ->            200 B: the reply leaves at once
             <- reply        latency = 2r + ATO (+ timer rounding)
    quickack: the server re-arms TCP_QUICKACK before every recv(): A is ACKed at once,
              B still waits one round trip: 2r
    nodelay / writev (one sendmsg of both buffers) / cork (cork, write, write, uncork):
              both halves leave together: r

The request period (10 ms, a whole jiffy at HZ=100) locks the timer's phase, so the
stall is nearly constant within a run.  A fresh connection's first request has no stall
(quick-ACK mode): ``first_ms``, three fresh connections per point.
"""
from __future__ import annotations

import json
import socket
import time

from wirelab.errors import LabError
from wirelab.kernel.facts import measure_jiffy_ms
from wirelab.lab.sysctl import sysctl_path
from wirelab.measure import netstat, tcpinfo
from wirelab.models.timers import ato_min_ms, hz_of, jiffy_ms
from wirelab.peers.listener import RecordingListener
from wirelab.spec import Choice, Metric, Param, Tolerance
from wirelab.topologies.routed_path import RoutedPath

ID = "nagle_delayed_ack_stall"
ALIASES = ("nagle", "delayed_ack")
CLAIM = ("Nagle's algorithm plus the peer's delayed ACK stalls write-write-read; on Linux by "
         "TCP_DELACK_MIN (40 ms), not 200 ms, and TCP_NODELAY, one writev or TCP_CORK removes it")
SECTION = "§3 Nagle's algorithm and delayed ACKs"
TEXT_SAYS = "Nagle + Delayed ACK = 200ms latency spikes"
TOPOLOGY = RoutedPath
NEEDS = {"netem"}
MODES = ("nagle", "nodelay", "quickack", "writev", "cork")
PARAMS = [
    Choice("mode", MODES, default="nagle", grid=MODES, quick=MODES,
           help="nagle: two write()s; nodelay: TCP_NODELAY on the client; quickack: TCP_QUICKACK "
                "on the server; writev: one sendmsg of both halves; cork: TCP_CORK around them"),
    Param("rtt_ms", default=50, min=0, max=500, grid=(0, 10, 50), quick=(0, 50),
          help="round-trip time added by the router, ms (0: no netem)"),
]
REPEATS = 60
QUICK_REPEATS = 20
METRICS = [
    # Never below the floor (timers fire late); up to 2 of the kernel's ticks above it.
    # check() then applies each mode's own, narrower band.
    Metric("latency_ms", "first write() to the last byte of the 100 B reply",
           Tolerance(abs=0.0, rel=0.0, jiffies=2)),
    # The alternative is a stall (>= 40 ms); a fresh socket's first exchange also pays
    # cold-path costs: about 1 ms at r = 0 under UML.
    Metric("first_ms", "the same for the first request of a fresh connection",
           Tolerance(abs=3.0, rel=0.02), per_point=True),
    Metric("delayed_acks_count", "the server's TcpExtDelayedACKs increase during the request",
           Tolerance(abs=0.0, rel=0.0), plot=False),
    Metric("jiffy_ms", "the kernel tick, measured from its jiffies counter over 10 ticks",
           Tolerance(abs=0.0, rel=0.05, symmetric=True), per_point=True, plot=False),
]
X = "rtt_ms"
#: How many quick replies make a connection interactive: a compile-time 1 on 6.1, a
#: per-namespace sysctl on newer kernels, pinned to 1 where it exists.
PINGPONG = "net.ipv4.tcp_pingpong_thresh"
SYSCTLS = {"*": {PINGPONG: "1"} if sysctl_path(PINGPONG).exists() else {}}
PORT = 5017
HALF = 100                 # bytes per write(); two halves make a request
REPLY = 100                # bytes of the server's reply
REQUEST_GAP_S = 0.010      # idle time between a reply and the next request
FIRST_CONNECTIONS = 3      # fresh connections whose first request is timed
IO_TIMEOUT_S = 10.0
#: Round trips in a request's floor: under Nagle the second half waits for an ACK of
#: the first (with or without the delayed ACK); otherwise one.
ROUND_TRIPS = {"nagle": 2, "quickack": 2, "nodelay": 1, "writev": 1, "cork": 1}
PER_ROUND_TRIP_SLACK_MS = 1.0   # the pass criterion: "NODELAY within r + 1 ms"
#: Cork costs two more system calls per request (~0.2-0.4 ms under UML): one more ms.
EXTRA_SLACK_MS = {"cork": 1.0}


def predict(params: dict, kernel: dict) -> dict:
    """Floors: ROUND_TRIPS[mode] x r, plus ATO for Nagle's held half; a connection's
    first request is ACKed at once (quick-ACK mode), so it has no ATO."""
    r, mode, hz = float(params["rtt_ms"]), params["mode"], hz_of(kernel)
    trips = ROUND_TRIPS[mode]
    return {"latency_ms": trips * r + (ato_min_ms(hz) if mode == "nagle" else 0.0),
            "first_ms": trips * r, "delayed_acks_count": 1.0 if mode == "nagle" else 0.0,
            "jiffy_ms": jiffy_ms(hz)}


def stall_band_ms(jiffy: float) -> tuple[float, float]:
    """The band for stall - 2r under Nagle: [ATO, ATO + 2 jiffies]."""
    ato = ato_min_ms(round(1000.0 / jiffy))
    return ato, ato + 2 * jiffy


def check(entry: dict) -> str | None:
    """Nagle's stall - 2r within [ATO, ATO + 2 jiffies] of the kernel's tick; NODELAY
    (and one writev) within r + 1 ms, cork within r + 2 ms (two more system calls);
    quickack within 2r + 2 ms (1 ms per round trip)."""
    p, m = entry["params"], entry["measured"]
    r, mode, lat = float(p["rtt_ms"]), p["mode"], m["latency_ms"]
    if mode == "nagle":
        lo, hi = stall_band_ms(entry["predicted"]["jiffy_ms"])
        stall = lat - 2 * r
        return None if lo <= stall <= hi else f"stall - 2r = {stall:.1f} ms, need [{lo:g}, {hi:g}]"
    n = ROUND_TRIPS[mode]
    over, allowed = lat - n * r, PER_ROUND_TRIP_SLACK_MS * n + EXTRA_SLACK_MS.get(mode, 0.0)
    return None if over <= allowed else f"latency - {n}r = {over:.2f} ms, need <= {allowed:g}"


class _Server(RecordingListener):
    """Replies REPLY bytes to every 200 B received; records TCP_INFO after each reply."""

    def __init__(self, node, quickack: bool):
        self.quickack = quickack
        super().__init__(node, PORT, backlog=8, name="nagle-server")

    def serve(self, conn: socket.socket) -> None:
        while True:
            got = 0
            while got < 2 * HALF:
                if self.quickack:
                    # Not permanent: pingpong mode comes back with the next reply,
                    # so re-arm it before every read.
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                chunk = conn.recv(2 * HALF - got)
                if not chunk:
                    return
                got += len(chunk)
            conn.sendall(b"r" * REPLY)
            self.put(tcpinfo.read(conn))


def _connect(lab, mode: str) -> socket.socket:
    conn = lab["h1"].socket()
    conn.settimeout(IO_TIMEOUT_S)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if mode == "nodelay" else 0)
    conn.connect((lab["h2"].ip(), PORT))
    return conn


def _request(conn: socket.socket, mode: str) -> float:
    """One request as MODE writes it; ms until the whole reply is read."""
    a, b = b"a" * HALF, b"b" * HALF
    t0 = time.perf_counter()
    if mode == "writev":
        conn.sendmsg([a, b])
    else:
        if mode == "cork":
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        conn.sendall(a)
        conn.sendall(b)
        if mode == "cork":
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
    got = 0
    while got < REPLY:
        chunk = conn.recv(REPLY - got)
        if not chunk:
            raise LabError(f"server closed after {got} of {REPLY} reply bytes")
        got += len(chunk)
    return (time.perf_counter() - t0) * 1e3


def prepare(lab, params: dict, ctx) -> None:
    mode, st = params["mode"], ctx.state
    ctx.measure_point(jiffy_ms=measure_jiffy_ms(10))
    st.server = _Server(lab["h2"], quickack=mode == "quickack")
    lab.undo.push("stop the Nagle server thread", st.server.close)
    # The first request of FIRST_CONNECTIONS fresh connections (the first connect also
    # resolves ARP; only requests are timed).  The last one stays open for the trials.
    firsts = []
    for i in range(FIRST_CONNECTIONS):
        st.conn = _connect(lab, mode)
        firsts.append(_request(st.conn, mode))
        st.server.record(IO_TIMEOUT_S)
        if i < FIRST_CONNECTIONS - 1:
            st.conn.close()
    lab.undo.push("close the client connection", st.conn.close)
    ctx.measure_point(first_ms=firsts)
    ctx.raw.write_text("first_requests.json", json.dumps({"first_ms": firsts}) + "\n")


def trial(lab, params: dict, ctx) -> dict:
    ns, st = lab["h2"].ns, ctx.state
    time.sleep(REQUEST_GAP_S)
    before = netstat.read_counter(ns, "TcpExt", "DelayedACKs")
    latency = _request(st.conn, params["mode"])
    after = netstat.read_counter(ns, "TcpExt", "DelayedACKs")
    ctx.raw.write_text("requests.jsonl", json.dumps({
        "trial": ctx.repeat, "latency_ms": latency, "delayed_acks": after - before,
        "server": st.server.record(IO_TIMEOUT_S)}) + "\n")
    return {"latency_ms": latency, "delayed_acks_count": float(after - before)}
