"""[38] connection_pooling_latency: what a new TCP+TLS connection per request
costs against a kept-alive connection and a pool of four.

nginx serves a small static file over HTTPS in h2 (TLS pinned to one
version on both sides); the client is Python's ssl + http.client in-process
in h1 (sockets made in h1's namespace: no process start per request), which
verifies nginx against the lab CA.  Router r1 delays each direction by
rtt_ms/2.  Each trial makes one GET in each of three ways:

    new_conn   connect, full TLS handshake (no resumption), GET, close:
               TCP 1r + TLS (1r for 1.3, 2r for 1.2) + request 1r
    keepalive  a GET on one connection kept open (a pool of 1): 1r
    pool4      four GETs at once, one on each of four open connections: 1r each

Per-request latency is timed in the client from the connect() call (or the
request) to the last byte of the body.  The server's CPU time per request
(nginx worker, /proc/<pid>/schedstat) goes to raw/server_cpu.csv: a new
connection's minus a kept-alive request's is what one handshake costs it.
"""
from __future__ import annotations

import concurrent.futures
import http.client
import os
import ssl
import statistics
import time
from pathlib import Path

from wirelab.errors import LabError
from wirelab.experiment import Choice, Param, Tolerance
from wirelab.services import make_certs, start_nginx
from wirelab.wait import poll

ID = "connection_pooling_latency"
ALIASES = ("pooling",)
CLAIM = ("A new HTTPS connection per request costs (2 + TLS round trips) RTTs; "
         "a pooled, kept-alive connection costs 1 RTT per request")
SECTION = ("§11 'TCP handshake (1 RTT) + TLS handshake (1-2 RTTs) = 100-300ms per connection'; "
           "§3 'This is why CONNECTION POOLING exists'")
TEXT_SAYS = "TCP handshake (1 RTT) + TLS handshake (1-2 RTTs) = 100-300ms per connection"
LINUX_FACT = (
    "The handshake overhead is (1 + tls_rtts)*r: 2r for TLS 1.3, 3r for TLS 1.2 (a full "
    "handshake: RFC 8446 §2, RFC 5246 §7.3), plus the request's own r, so a request on a new "
    "connection takes 3r (TLS 1.3) or 4r (TLS 1.2) and one on a kept-alive connection r. "
    "The text's '100-300 ms per connection' is that overhead at r = 50-100 ms only: at "
    "r = 1 ms (a LAN, one data centre) it is 2-3 ms, at r = 200 ms 400-600 ms. The client "
    "sends its request right after its Finished with no extra wait because http.client "
    "sets TCP_NODELAY (Nagle would hold the request until the Finished is ACKed) and nginx "
    "sets tcp_nodelay on. TCP Fast Open (tcp_fastopen=0 here) and session resumption are "
    "not used; each new connection does a full handshake (ssl.SSLSocket.session_reused is "
    "checked)."
)
TOPOLOGY = "routed_path"
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
METRICS = {
    "new_conn_ms": "a GET on a new TCP+TLS connection, connect() to the last body byte, ms",
    "keepalive_ms": "a GET on a kept-alive connection (pool of 1), ms",
    "pool4_ms": "per-request latency of 4 concurrent GETs on a pool of 4 connections (mean of the 4), ms",
}
X = "rtt_ms"
TOLERANCE = Tolerance(abs=1.0, rel=0.05, symmetric=True)

PORT = 443
POOL_SIZE = 4
PATH = "/small.html"
BODY = b"<p>" + b"x" * 92 + b"</p>\n"  # 100 bytes: the response is one segment
TIMEOUT_S = 30.0
TLS_VERSION = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
TLS_NAME = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}


def topology_params(params: dict) -> dict:
    return {"rtt_ms": params["rtt_ms"]}


def lab_sysctls(params: dict) -> dict:
    # No Fast Open (it would let a SYN carry the ClientHello); no metrics
    # cached from earlier connections; an idle kept-alive connection keeps its
    # window; Linux's default buffers (the host's leak into new namespaces).
    return {"*": {"net.ipv4.tcp_fastopen": "0", "net.ipv4.tcp_no_metrics_save": "1",
                  "net.ipv4.tcp_slow_start_after_idle": "0", "net.ipv4.tcp_timestamps": "1",
                  "net.ipv4.tcp_rmem": "4096 131072 6291456",
                  "net.ipv4.tcp_wmem": "4096 16384 4194304"}}


def tls_round_trips(version: str) -> int:
    """Round trips of a full handshake before the client may send data:
    TLS 1.3 one (ClientHello -> ServerHello..Finished), TLS 1.2 two
    (ClientHello -> ..ServerHelloDone, ClientKeyExchange..Finished ->
    ChangeCipherSpec, Finished)."""
    return {"1.2": 2, "1.3": 1}[version]


def predict(params: dict, kernel: dict) -> dict:
    """new_conn = (TCP 1 + TLS t + request 1) * r; a request on an open
    connection = r, with four in flight too (they share no queue: 4 small
    requests and responses are far below any window).  No kernel constant
    enters: Fast Open is off, each response fits the initial window."""
    r = float(params["rtt_ms"])
    return {"new_conn_ms": (2 + tls_round_trips(params["tls"])) * r,
            "keepalive_ms": r, "pool4_ms": r}


# --- the client -----------------------------------------------------------------

class LabHTTPSConnection(http.client.HTTPSConnection):
    """http.client's HTTPS connection over a TCP socket made in a lab node's
    namespace (http.client itself sets TCP_NODELAY and wraps it in TLS)."""

    def __init__(self, node, host: str, port: int, context: ssl.SSLContext):
        super().__init__(host, port, timeout=TIMEOUT_S, context=context)
        self._node = node
        self._create_connection = self._lab_socket

    def _lab_socket(self, address, timeout, source_address=None):
        sock = self._node.socket()
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock


def client_context(ca: Path, version: str) -> ssl.SSLContext:
    """Verifies the server against the lab CA; exactly one TLS version."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.minimum_version = ctx.maximum_version = TLS_VERSION[version]
    return ctx


def get(conn: LabHTTPSConnection) -> tuple[float, float]:
    """One GET of PATH on CONN; (start, end) in perf_counter seconds.  Opens
    the connection first if it is not open (that is the new_conn case)."""
    t0 = time.perf_counter()
    conn.request("GET", PATH)
    resp = conn.getresponse()
    body = resp.read()
    t1 = time.perf_counter()
    if resp.status != 200 or body != BODY:
        raise LabError(f"GET {PATH}: status {resp.status}, {len(body)} bytes")
    if resp.will_close:
        raise LabError("nginx closed a keep-alive connection")
    return t0, t1


def check_tls(conn: LabHTTPSConnection, version: str, resumed: bool = False) -> None:
    got = conn.sock.version()
    if got != TLS_NAME[version] or conn.sock.session_reused != resumed:
        raise LabError(f"TLS {got}, session reused {conn.sock.session_reused}; expected "
                       f"{TLS_NAME[version]}, reused {resumed}")


# --- the server's CPU -------------------------------------------------------------

def worker_pid(master_pid: int) -> int:
    """The nginx worker (the master's only child: worker_processes 1)."""
    def child():
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == master_pid:
                    return int(entry)
        return None
    return poll(child, TIMEOUT_S, f"the nginx worker of master {master_pid}")


def cpu_ns(pid: int) -> int:
    """Nanoseconds PID has run on a CPU (/proc/<pid>/schedstat, first field;
    utime+stime where the kernel lacks schedstat).  Inside UML the scheduler
    clock advances in jiffies (10 ms at HZ=100): one request's value is 0 or
    a whole tick, and only a mean over many trials estimates its CPU time."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


# --- experiment hooks -------------------------------------------------------------

def prepare(lab, params: dict, ctx) -> None:
    version = params["tls"]
    wd = Path(lab.workdir)
    root = wd / "www"
    root.mkdir()
    (root / PATH.lstrip("/")).write_bytes(BODY)
    certs = make_certs(lab, [lab["h2"].ip()])
    nginx = start_nginx(lab, "h2", certs, root, port=PORT, protocols=(TLS_NAME[version],))
    ctx["worker"] = worker_pid(nginx.pid)
    ctx["context"] = client_context(certs.ca, version)
    host = lab["h2"].ip()
    ctx["connect"] = lambda: LabHTTPSConnection(lab["h1"], host, PORT, ctx["context"])
    # Warm-up (untimed): a first new connection resolves ARP across the router
    # and warms both ends' code; then the kept-alive connection and the pool
    # are opened, each with one request.
    warm = ctx["connect"]()
    warm_s = get(warm)
    check_tls(warm, version)
    warm.close()
    ctx["keepalive"] = ctx["connect"]()
    ctx["pool"] = [ctx["connect"]() for _ in range(POOL_SIZE)]
    for conn in [ctx["keepalive"], *ctx["pool"]]:
        get(conn)
        check_tls(conn, version)
        lab.undo.push("close a client connection", conn.close)
    executor = concurrent.futures.ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="pool")
    lab.undo.push("stop the pool's threads", executor.shutdown)
    ctx["executor"] = executor
    ctx["cpu"] = []
    ctx["raw"].write_text("warmup.txt", f"warm-up GET on a new connection (not a trial): "
                                        f"{(warm_s[1] - warm_s[0]) * 1e3:.3f} ms\n")
    ctx["raw"].write_text("server_cpu.csv", "repeat,new_conn_cpu_ms,keepalive_cpu_ms,"
                                            "pool4_cpu_ms,pool4_batch_ms,pool4_max_in_flight\n")


def in_flight(spans: list[tuple[float, float]]) -> int:
    """The largest number of SPANS (start, end) open at one instant."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def trial(lab, params: dict, ctx) -> dict:
    worker, version = ctx["worker"], params["tls"]
    c0 = cpu_ns(worker)
    conn = ctx["connect"]()
    try:
        t0 = time.perf_counter()
        conn.connect()
        _, t1 = get(conn)
        check_tls(conn, version)
    finally:
        conn.close()
    c1 = cpu_ns(worker)
    k0, k1 = get(ctx["keepalive"])
    c2 = cpu_ns(worker)
    spans = list(ctx["executor"].map(get, ctx["pool"]))
    c3 = cpu_ns(worker)
    batch_ms = (max(e for _, e in spans) - min(s for s, _ in spans)) * 1e3
    ctx["raw"].write_text("server_cpu.csv", f"{len(ctx['cpu'])},{(c1 - c0) / 1e6:.3f},"
                                            f"{(c2 - c1) / 1e6:.3f},{(c3 - c2) / 1e6:.3f},"
                                            f"{batch_ms:.3f},{in_flight(spans)}\n")
    ctx["cpu"].append((c1 - c0, c2 - c1))
    _write_cpu_summary(ctx)
    return {"new_conn_ms": (t1 - t0) * 1e3, "keepalive_ms": (k1 - k0) * 1e3,
            "pool4_ms": statistics.fmean((e - s) * 1e3 for s, e in spans)}


def _write_cpu_summary(ctx) -> None:
    """The nginx worker's CPU per handshake so far: the mean over trials of
    a new connection's CPU (handshake + request) less a kept-alive
    request's (means, not medians: see cpu_ns on tick granularity)."""
    n = len(ctx["cpu"])
    per_new = sum(a for a, _ in ctx["cpu"]) / n / 1e6
    per_req = sum(b for _, b in ctx["cpu"]) / n / 1e6
    out = ctx["raw"].dir / "server_cpu_summary.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"trials: {n}\nnginx worker CPU per new connection (mean): {per_new:.3f} ms\n"
                   f"per kept-alive request (mean): {per_req:.3f} ms\n"
                   f"per handshake (difference): {per_new - per_req:.3f} ms\n"
                   "(scheduler clock granularity: one tick per sample; a mean over many "
                   "trials is an estimate)\n")
