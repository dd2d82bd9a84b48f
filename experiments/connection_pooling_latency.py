"""[38] connection_pooling_latency: what a new TCP+TLS connection per request costs
against a kept-alive connection and a pool of four.

nginx serves a small static file over HTTPS in h2 (TLS pinned to one version on both
sides); the client is Python's ssl + http.client in-process in h1
(wirelab.peers.https_client), verifying nginx against the lab CA.  Router r1 delays each
direction by rtt_ms/2.  Each trial makes one GET in each of three ways:

    new_conn   connect, full TLS handshake (no resumption), GET, close:
               TCP 1r + TLS (1r for 1.3, 2r for 1.2) + request 1r
    keepalive  a GET on one connection kept open (a pool of 1): 1r
    pool4      four GETs at once, one on each of four open connections: 1r each

Per-request latency runs from the connect() call (or the request) to the last body
byte.  A new connection also costs both ends' TLS processing, which UML makes several
ms, and each step an end takes after waiting for a delayed flight costs it more than the
same step at zero delay (0.3-0.7 ms here).  So a new connection's network time comes
from packets, not clocks: in-process taps on h1 and h2 see every packet, and the
critical path from the client's SYN leaving h1 to the last response byte reaching it
(wirelab.measure.critical_path) counts a gap as an end's processing only when that end
provably held the data; the rest is network time, new_conn_ms, erring towards the
network.  A request on an open connection (kept alive, or each of the pool's four) is
split the same way, from its first byte leaving h1.  The *_wall_ms metrics keep the wall
times, new_conn_compute_ms the ends' part of a new connection's path.  The nginx
worker's CPU time per request goes to raw/server_cpu.csv: a new connection's minus a
kept-alive request's is what one handshake costs it.
"""
from __future__ import annotations

import concurrent.futures
import statistics
import time

from wirelab.measure.cpu import child_of, cpu_ns
from wirelab.measure.critical_path import critical_path
from wirelab.measure.tap import exchange_span, fetch_span, open_taps, tapped
from wirelab.models.tls import PROTOCOL_NAME, handshake_round_trips
from wirelab.peers.https_client import LabHTTPSConnection, check_tls, client_context, get
from wirelab.peers.web import make_certs, start_nginx
from wirelab.spec import Bars, Choice, Metric, Param, Tolerance
from wirelab.spec.metrics import REPORTED
from wirelab.topologies.routed_path import RoutedPath

ID = "connection_pooling_latency"
ALIASES = ("pooling",)
CLAIM = ("A new HTTPS connection per request costs (2 + TLS round trips) RTTs; "
         "a pooled, kept-alive connection costs 1 RTT per request")
SECTION = ("§11 'TCP handshake (1 RTT) + TLS handshake (1-2 RTTs) = 100-300ms per "
           "connection'; §3 'This is why CONNECTION POOLING exists'")
TEXT_SAYS = "TCP handshake (1 RTT) + TLS handshake (1-2 RTTs) = 100-300ms per connection"
TOPOLOGY = RoutedPath
NEEDS = {"netem"}
TOOLS = ("nginx", "openssl")
PARAMS = [
    Param("rtt_ms", default=50, min=0, max=1000, grid=(1, 50, 100), quick=(50,),
          help="round-trip time added by the router, ms"),
    Choice("tls", ("1.2", "1.3"), default="1.3", grid=("1.2", "1.3"), quick=("1.2", "1.3"),
           help="TLS version, pinned on client and server"),
]
REPEATS = 100
QUICK_REPEATS = 20
_BAND = Tolerance(abs=1.0, rel=0.05)   # never faster than its round trips
METRICS = [
    Metric("new_conn_ms", "a GET on a new TCP+TLS connection: the network's time on its "
           "critical path, the client's SYN leaving to the last body byte arriving (taps at "
           "both hosts; the ends' processing taken out only where provably theirs)", _BAND),
    Metric("new_conn_wall_ms", "the same, wall time from connect() to the last body byte "
           "(processing included)", REPORTED, plot=False),
    Metric("new_conn_compute_ms", "the two ends' processing on that critical path",
           REPORTED, plot=False),
    Metric("keepalive_ms", "a GET on a kept-alive connection (pool of 1): the network's time "
           "on its critical path, the request leaving to the last body byte arriving", _BAND),
    Metric("keepalive_wall_ms", "the same, wall time", REPORTED, plot=False),
    Metric("pool4_ms", "4 concurrent GETs on a pool of 4 connections: the network's time on "
           "each one's critical path (mean of the 4)", _BAND),
    Metric("pool4_wall_ms", "the same, wall time per request (mean of the 4)", REPORTED, plot=False),
]
X = "rtt_ms"
FIGURE = Bars("What does a new HTTPS connection cost against a kept-alive one or a pool?", ((
    "new connection", "new_conn_ms"), ("kept alive", "keepalive_ms"), ("pool of 4", "pool4_ms")))
# An idle kept-alive connection keeps its window between trials.
SYSCTLS = {"*": {"net.ipv4.tcp_slow_start_after_idle": "0"}}
PORT = 443
POOL_SIZE = 4
PATH = "/small.html"
NODELAY = ("h1", "h2")      # http.client and nginx set TCP_NODELAY: Nagle holds nothing
BODY = b"<p>" + b"x" * 92 + b"</p>\n"  # 100 bytes: the response is one segment


def predict(params: dict, kernel: dict) -> dict:
    """new_conn = (TCP 1 + TLS t + request 1) r; a request on an open connection = r,
    with four in flight too (4 small requests and responses are far below any window).
    No kernel constant enters: Fast Open is off, each response fits the initial window."""
    r = float(params["rtt_ms"])
    return {"new_conn_ms": (2 + handshake_round_trips(params["tls"])) * r,
            "keepalive_ms": r, "pool4_ms": r}


def in_flight(spans: list[tuple[float, float]]) -> int:
    """The largest number of SPANS (start, end) open at one instant."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def prepare(lab, params: dict, ctx) -> None:
    version, st = params["tls"], ctx.state
    root = lab.workdir / "www"
    root.mkdir()
    (root / PATH.lstrip("/")).write_bytes(BODY)
    certs = make_certs(lab, [lab["h2"].ip()])
    nginx = start_nginx(lab, "h2", certs, root, port=PORT, protocols=(PROTOCOL_NAME[version],))
    st.worker = child_of(nginx.pid)
    context, host = client_context(certs.ca, version), lab["h2"].ip()
    st.connect = lambda: LabHTTPSConnection(lab["h1"], host, PORT, context)
    # Warm-up (untimed): a first new connection resolves ARP across the router and warms
    # both ends' code; then the kept-alive connection and the pool, one request each.
    warm = st.connect()
    warm_s = get(warm, PATH, BODY)
    check_tls(warm, version)
    warm.close()
    st.taps = open_taps(lab, "h1", "h2")
    st.owner = {lab["h1"].ip(): "h1", lab["h2"].ip(): "h2"}
    st.keepalive, st.pool = st.connect(), [st.connect() for _ in range(POOL_SIZE)]
    for conn in [st.keepalive, *st.pool]:
        get(conn, PATH, BODY)
        check_tls(conn, version)
        lab.undo.push("close a client connection", conn.close)
    st.executor = concurrent.futures.ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="pool")
    lab.undo.push("stop the pool's threads", st.executor.shutdown)
    st.cpu = []
    ctx.raw.write_text("warmup.txt", f"warm-up GET on a new connection (not a trial): "
                                     f"{(warm_s[1] - warm_s[0]) * 1e3:.3f} ms\n")
    ctx.raw.write_text("server_cpu.csv", "repeat,new_conn_cpu_ms,keepalive_cpu_ms,"
                                         "pool4_cpu_ms,pool4_batch_ms,pool4_max_in_flight\n")


def _new_conn_ms(st, version: str) -> float:
    """connect(), the full handshake, one GET: connect() to the last body byte, ms."""
    conn = st.connect()
    try:
        t0 = time.perf_counter()
        conn.connect()
        _, t1 = get(conn, PATH, BODY)
        check_tls(conn, version)
    finally:
        conn.close()
    return (t1 - t0) * 1e3


def split(events: dict, owner: dict) -> tuple[float, float]:
    """(network, the two ends' processing), ms, on a new connection's critical path:
    from the client's SYN leaving h1 to the last response byte reaching h1 (before the
    client closes), through the taps' EVENTS on h1 and h2."""
    span = fetch_span(events["h1"], PORT, len(BODY))
    path = critical_path(events, owner, span["start"], "h1", span["last"], nodelay=NODELAY)
    return path.network_ms, path.total_compute_ms


def exchange(events: dict, owner: dict, sport: int) -> float:
    """The network's time, ms, on the critical path of one request on an open connection
    (the client's port SPORT): from its first byte leaving h1 to the last response byte
    reaching h1, through the taps' EVENTS on h1 and h2."""
    mine = {n: [e for e in evs if e.seg.proto == 6 and sport in (e.seg.sport, e.seg.dport)]
            for n, evs in events.items()}
    first, last = exchange_span(mine["h1"], PORT)
    return critical_path(mine, owner, first.ts, "h1", last, nodelay=NODELAY).network_ms


def trial(lab, params: dict, ctx) -> dict:
    st = ctx.state
    c0 = cpu_ns(st.worker)
    wall_ms, events = tapped(st.taps, lambda: _new_conn_ms(st, params["tls"]))
    c1 = cpu_ns(st.worker)
    network_ms, compute_ms = split(events, st.owner)
    (k0, k1), k_events = tapped(st.taps, lambda: get(st.keepalive, PATH, BODY))
    c2 = cpu_ns(st.worker)
    spans, p_events = tapped(st.taps, lambda: list(st.executor.map(lambda c: get(c, PATH, BODY), st.pool)))
    c3 = cpu_ns(st.worker)
    batch_ms = (max(e for _, e in spans) - min(s for s, _ in spans)) * 1e3
    ctx.raw.write_text("server_cpu.csv", f"{ctx.repeat},{(c1 - c0) / 1e6:.3f},{(c2 - c1) / 1e6:.3f},"
                       f"{(c3 - c2) / 1e6:.3f},{batch_ms:.3f},{in_flight(spans)}\n")
    st.cpu.append((c1 - c0, c2 - c1))
    n = len(st.cpu)
    per_new, per_req = (sum(x[i] for x in st.cpu) / n / 1e6 for i in (0, 1))
    ctx.raw.path("server_cpu_summary.txt").write_text(
        f"trials: {n}\nnginx worker CPU per new connection (mean): {per_new:.3f} ms\n"
        f"per kept-alive request (mean): {per_req:.3f} ms\nper handshake (difference): "
        f"{per_new - per_req:.3f} ms\n(one scheduler tick per sample: a mean over many "
        "trials is an estimate)\n")
    return {"new_conn_ms": network_ms, "new_conn_wall_ms": wall_ms, "new_conn_compute_ms": compute_ms,
            "keepalive_ms": exchange(k_events, st.owner, st.keepalive.sock.getsockname()[1]),
            "keepalive_wall_ms": (k1 - k0) * 1e3,
            "pool4_ms": statistics.fmean(exchange(p_events, st.owner, c.sock.getsockname()[1])
                                         for c in st.pool),
            "pool4_wall_ms": statistics.fmean((e - s) * 1e3 for s, e in spans)}
