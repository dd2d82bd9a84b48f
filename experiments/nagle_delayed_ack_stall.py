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

Every latency is network time on the critical path (wirelab.measure.critical_path):
from the request's first byte leaving h1 to the reply's last byte reaching it, with the
delayed-ACK timer and every held segment counted as network; the client's and the
server's own processing on that path is checked against BUDGET_MS, and what the
program itself saw beyond the wire (system calls, wake-ups) is ``app_over_ms``,
judged against a ceiling.  A request with a retransmission is excluded.

The request period (10 ms, a whole jiffy at HZ=100) locks the timer's phase, so the
stall is nearly constant within a run.  A fresh connection's first request has no stall
(quick-ACK mode): ``first_ms``, three fresh connections per point.
"""
from __future__ import annotations

import json
import time

from wirelab.kernel.facts import measure_jiffy_ms
from wirelab.lab.sysctl import sysctl_path
from wirelab.measure import netstat
from wirelab.measure.critical_path import critical_path, over_budget
from wirelab.measure.tap import exchange_span, ladder, open_taps, tapped, timelines
from wirelab.models.tcp import iw_of
from wirelab.models.timers import ato_min_ms, hz_of, jiffy_ms
from wirelab.peers import small_writes
from wirelab.peers.small_writes import MODES
from wirelab.spec import Bars, Choice, Metric, Param, Tolerance
from wirelab.spec.context import exclusion
from wirelab.topologies.routed_path import RoutedPath

ID = "nagle_delayed_ack_stall"
ALIASES = ("nagle", "delayed_ack")
CLAIM = ("Nagle's algorithm plus the peer's delayed ACK stalls write-write-read; on Linux by "
         "TCP_DELACK_MIN (40 ms), not 200 ms, and TCP_NODELAY, one writev or TCP_CORK removes it")
SECTION = "§3 Nagle's algorithm and delayed ACKs"
TEXT_SAYS = "Nagle + Delayed ACK = 200ms latency spikes"
TOPOLOGY = RoutedPath
NEEDS = {"netem"}
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
    # Network time: never below the floor (timers fire late); up to 2 of the kernel's
    # ticks above it.  check() then applies each mode's own, narrower band.
    Metric("latency_ms", "network time from the request's first byte out to the reply's last in",
           Tolerance(abs=0.0, rel=0.0, jiffies=2)),
    # The program's own time beyond the wire: the writes before the first byte leaves,
    # the wake-up after the last arrives.  Never negative; a ceiling of APP_MARGIN_MS.
    Metric("app_over_ms", "write() to read() done, less the span on the wire",
           Tolerance(abs=2.0, rel=0.0)),
    # The alternative is a stall (>= 40 ms).
    Metric("first_ms", "network time of the first request of a fresh connection",
           Tolerance(abs=1.0, rel=0.0), per_point=True),
    Metric("delayed_acks_count", "the server's TcpExtDelayedACKs increase during the request",
           Tolerance(abs=0.0, rel=0.0), plot=False),
    Metric("jiffy_ms", "the kernel tick, measured from its jiffies counter over 10 ticks",
           Tolerance(abs=0.0, rel=0.05, symmetric=True), per_point=True, plot=False),
]
X = "rtt_ms"
FIGURE = Bars("Write, write, read: how long does Nagle plus a delayed ACK stall it on Linux?",
              (("latency", "latency_ms"),), x="mode", timeline="timeline.json")
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
#: Processing each end may show on the path (no think time): the client's second write
#: or the kernel's send on an ACK, the server thread's wake-up, read and reply; a Python
#: thread under UML, where a system call costs ~15 us and a wake-up up to a jiffy.
BUDGET_MS = {"h1": 5.0, "h2": 5.0}
#: Round trips in a request's floor: under Nagle the second half waits for an ACK of
#: the first (with or without the delayed ACK); otherwise one.
ROUND_TRIPS = {"nagle": 2, "quickack": 2, "nodelay": 1, "writev": 1, "cork": 1}
PER_ROUND_TRIP_SLACK_MS = 1.0   # the pass criterion: "NODELAY within r + 1 ms"


def predict(params: dict, kernel: dict) -> dict:
    """Floors: ROUND_TRIPS[mode] x r, plus ATO for Nagle's held half; a connection's
    first request is ACKed at once (quick-ACK mode), so it has no ATO."""
    r, mode, hz = float(params["rtt_ms"]), params["mode"], hz_of(kernel)
    trips = ROUND_TRIPS[mode]
    return {"latency_ms": trips * r + (ato_min_ms(hz) if mode == "nagle" else 0.0),
            "app_over_ms": 0.0, "first_ms": trips * r,
            "delayed_acks_count": 1.0 if mode == "nagle" else 0.0, "jiffy_ms": jiffy_ms(hz)}


def stall_band_ms(jiffy: float) -> tuple[float, float]:
    """The band for stall - 2r under Nagle: [ATO, ATO + 2 jiffies]."""
    ato = ato_min_ms(round(1000.0 / jiffy))
    return ato, ato + 2 * jiffy


def check(entry: dict) -> str | None:
    """Nagle's stall - 2r within [ATO, ATO + 2 jiffies] of the kernel's tick; NODELAY
    (one writev, cork) within r + 1 ms; quickack within 2r + 2 ms (1 ms per round
    trip)."""
    p, m = entry["params"], entry["measured"]
    r, mode, lat = float(p["rtt_ms"]), p["mode"], m["latency_ms"]
    if mode == "nagle":
        lo, hi = stall_band_ms(entry["predicted"]["jiffy_ms"])
        stall = lat - 2 * r
        return None if lo <= stall <= hi else f"stall - 2r = {stall:.1f} ms, need [{lo:g}, {hi:g}]"
    n = ROUND_TRIPS[mode]
    over, allowed = lat - n * r, PER_ROUND_TRIP_SLACK_MS * n
    return None if over <= allowed else f"latency - {n}r = {over:.2f} ms, need <= {allowed:g}"


def _timed(ctx, mode: str, tag: str) -> tuple[dict, dict]:
    """One request on ctx.state.conn between two drains of the taps: its network time
    on the critical path, the program's time beyond the wire, and what was resent."""
    st = ctx.state
    app, events = tapped(st.taps, lambda: small_writes.request(st.conn, mode, HALF, REPLY))
    first, last = exchange_span(events["h1"], PORT)
    path = critical_path(events, st.owner, first.ts, "h1", last, iw_of(ctx.kernel),
                         nodelay={"h1"} if mode == "nodelay" else ())
    over = over_budget(path.compute_ms, BUDGET_MS, f"request {tag} ({mode})")
    ctx.raw.write_text(f"{tag}.txt", path.describe() + timelines(events))
    if tag == "t05" and mode == "nagle":      # one stalled request, for the figure's ladder
        ctx.raw.write_text("timeline.json", json.dumps(ladder(events, ["h1", "h2"], f"one request "
                           f"under Nagle, r = {ctx.params['rtt_ms']:g} ms ({tag})")) + "\n")
    row = {"latency_ms": path.network_ms, "app_over_ms": app - path.span_ms}
    return row, exclusion("resent: " + "; ".join(path.retransmissions)
                          if path.retransmissions else "", over)


def prepare(lab, params: dict, ctx) -> None:
    mode, st = params["mode"], ctx.state
    ctx.measure_point(jiffy_ms=measure_jiffy_ms(10))
    st.server = small_writes.HalvesServer(lab["h2"], PORT, HALF, REPLY, mode == "quickack")
    lab.undo.push("stop the Nagle server thread", st.server.close)
    st.taps = open_taps(lab, "h1", "h2")
    st.owner = {lab[name].ip(): name for name in st.taps}
    # The first request of FIRST_CONNECTIONS fresh connections (the first connect also
    # resolves ARP; only requests are timed).  The last one stays open for the trials.
    firsts = []
    for i in range(FIRST_CONNECTIONS):
        st.conn = small_writes.connect(lab["h1"], lab["h2"].ip(), PORT, mode, IO_TIMEOUT_S)
        row, excluded = _timed(ctx, mode, f"first{i}")
        st.server.record(IO_TIMEOUT_S)
        if not excluded:
            firsts.append(row["latency_ms"])
        if i < FIRST_CONNECTIONS - 1:
            st.conn.close()
    lab.undo.push("close the client connection", st.conn.close)
    ctx.measure_point(first_ms=firsts)
    ctx.raw.write_text("first_requests.json", json.dumps({"first_ms": firsts}) + "\n")


def trial(lab, params: dict, ctx) -> dict:
    time.sleep(REQUEST_GAP_S)
    (row, excluded), grew = netstat.counted(lab["h2"].ns, "TcpExt", ("DelayedACKs",),
                                            lambda: _timed(ctx, params["mode"], f"t{ctx.repeat:02d}"))
    ctx.raw.write_text("requests.jsonl", json.dumps({
        "trial": ctx.repeat, **row, "delayed_acks": grew["DelayedACKs"], **excluded,
        "server": ctx.state.server.record(IO_TIMEOUT_S)}) + "\n")
    return {**row, "delayed_acks_count": float(grew["DelayedACKs"]), **excluded}
