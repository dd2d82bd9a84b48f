"""[10] iw10_vs_iw1_initcwnd_sweep: a new connection starts with cwnd = IW
segments; with IW = 10 (Linux since 2.6.39) 14480 B fit in one round trip,
with the textbook's 1 MSS they need four.

The server h2's route toward the client carries ``initcwnd N`` (a route
metric: tcp_init_cwnd() in include/net/tcp.h prefers RTAX_INITCWND over
TCP_INIT_CWND), so every connection it accepts starts with cwnd = N.  The
client h1 connects, sends a one-line request and reads S bytes; the clock runs
from connect() to the last byte (see slow_start_1MB_transfer for the
timeline): T = (1 + rounds) r, rounds = ceil(log2(S / (N * MSS_eff) + 1)).

    h1 10.0.1.2 -- r1 (rtt_ms/2 each way) -- 10.0.2.2 h2
    h1: route 10.0.2.0/24 via 10.0.1.1 initrwnd 64
    h2: route 10.0.1.0/24 via 10.0.2.1 initcwnd N

TCP_INFO of the accepted socket, read before it sends, gives the cwnd a new
connection starts with (``ss -ti`` shows the same field) and the MSS the
prediction uses.
"""
from __future__ import annotations

from wirelab import slowstart, tcptransfer
from wirelab.experiment import Param, Tolerance

ID = "iw10_vs_iw1_initcwnd_sweep"
ALIASES = ("initcwnd",)
CLAIM = ("A new connection starts at IW segments (10 on Linux): S bytes take "
         "1 + ceil(log2(S / (IW x MSS_eff) + 1)) RTTs")
SECTION = "§3 congestion control ('initial cwnd increased from 4 to 10'; 'cwnd = 1 MSS')"
TEXT_SAYS = "Slow start: cwnd = 1 MSS, doubles every RTT ... initial cwnd increased from 4 to 10"
LINUX_FACT = (
    "A new Linux connection starts at TCP_INIT_CWND = 10 segments (include/net/tcp.h, since "
    "2.6.39, RFC 6928), not 1 MSS; the route metric initcwnd overrides it per destination "
    "(tcp_init_cwnd reads RTAX_INITCWND; set on the server's route, it is what TCP_INFO "
    "tcpi_snd_cwnd reports on the accepted socket).  initrwnd (RTAX_INITRWND) can only "
    "lower the initial receive window in 6.1 (tcp_select_initial_window: rcv_wnd = "
    "min(space, initrwnd x mss)); before 4.19 it raised the default 10-segment cap, which "
    "no longer exists.  Here the client's window comes from tcp_rmem[1] = 131072 "
    "(half of it, minus a segment: 64076 B, 44 segments), enough for N = 32's first "
    "round, and initrwnd 64 on its route is set so it cannot lower it.  MSS_eff = 1500 - 40 "
    "- 12 (timestamps) = 1448 B, read back from the socket (tcpi_snd_mss).  The server "
    "runs reno, whose slow start is the pure doubling (cwnd += acked segments), with "
    "TCP_NODELAY so Nagle never holds a response's sub-MSS tail (see "
    "slow_start_1MB_transfer)."
)
TOPOLOGY = "routed_path_deep"
NEEDS = {"netem"}
PARAMS = [
    Param("initcwnd_segs", default=10, min=1, max=64, type=int, grid=(1, 4, 10, 32),
          quick=(1, 10), help="initcwnd on the server's route, segments"),
    Param("size_bytes", default=14480, min=1, max=4 * 1024 * 1024, type=int,
          grid=(14480, 65536), quick=(14480,), help="response size, bytes"),
    Param("rtt_ms", default=100, min=1, max=1000, grid=(100,), quick=(50,),
          help="round-trip time added by the router, ms"),
]
REPEATS = 10
QUICK_REPEATS = 10
METRICS = {
    "transfer_ms": "time from the client's connect() call to its reading the last byte, ms",
    "initial_cwnd_segs": "tcpi_snd_cwnd of the accepted socket before it sends, segments",
    "snd_mss_bytes": "tcpi_snd_mss of the accepted socket, bytes",
}
X = "initcwnd_segs"
# CLAIMS [10]: transfer time = (1 + rounds) r ± (0.3 r + 5 ms); the cwnd a new
# socket reports and its MSS are exact.
TOLERANCE = {
    "transfer_ms": Tolerance(abs=5.0, rel=0.0, rtt_frac=0.3, symmetric=True),
    "initial_cwnd_segs": Tolerance(abs=0.0, rel=0.0, symmetric=True),
    "snd_mss_bytes": Tolerance(abs=0.0, rel=0.0, symmetric=True),
}
#: initrwnd on the client's route: at least the 44 segments its buffer allows,
#: so min(rcv_wnd, initrwnd x mss) leaves the window to tcp_rmem[1].
INITRWND_SEGS = 64
CC = "reno"
PORT = 5001
WARMUP_BYTES = 1000
CLIENT_NET, SERVER_NET = "10.0.1.0/24", "10.0.2.0/24"


def topology_params(params: dict) -> dict:
    return {"rtt_ms": params["rtt_ms"]}


def lab_sysctls(params: dict) -> dict:
    return {"h1": dict(slowstart.TCP_SYSCTLS), "h2": dict(slowstart.TCP_SYSCTLS)}


def predict(params: dict, kernel: dict) -> dict:
    """T = (1 + rounds) r with IW = initcwnd; the window model of
    wirelab.slowstart adds a round only if the client's window would cap one
    (it does not on this grid: the rounds equal the formula's)."""
    mss = slowstart.mss_from_kernel(kernel)
    rcv = slowstart.receiver_from_kernel(kernel, initrwnd_segs=INITRWND_SEGS)
    sched = slowstart.simulate(params["size_bytes"], params["initcwnd_segs"], mss, rcv)
    return {"transfer_ms": (1 + sched.n) * float(params["rtt_ms"]),
            "initial_cwnd_segs": float(params["initcwnd_segs"]),
            "snd_mss_bytes": float(mss)}


def check(entry: dict) -> tuple[bool, str]:
    """Notes only (the bands decide): the formula's rounds and the median's RTTs."""
    p = entry["params"]
    return True, slowstart.round_note(int(p["size_bytes"]), int(p["initcwnd_segs"]),
                                      int(entry["predicted"]["snd_mss_bytes"]),
                                      float(p["rtt_ms"]), entry["predicted"]["transfer_ms"],
                                      entry["measured"].get("transfer_ms"))


def _route_metrics(node, dst: str, via: str, metrics: dict) -> dict:
    """Replace NODE's route to DST (via VIA) with one carrying METRICS
    (RTAX_* names as pyroute2 spells them, e.g. initcwnd), and read the route
    back: {metric: value} as the kernel stored it."""
    node.ipr.route("replace", dst=dst, gateway=via, metrics=metrics)
    node.lab.undo.push(f"delete the route to {dst} in {node.name}",
                       lambda: node.ipr.route("del", dst=dst, gateway=via))
    prefix, plen = dst.split("/")
    for route in node.ipr.get_routes(dst=prefix, dst_len=int(plen)):
        got = route.get_attr("RTA_METRICS")
        if got is None:
            continue
        return {name: got.get_attr(f"RTAX_{name.upper()}") for name in metrics}
    raise LookupError(f"no route to {dst} with metrics in {node.name} after setting it")


def prepare(lab, params: dict, ctx) -> None:
    n = params["initcwnd_segs"]
    server_route = _route_metrics(lab["h2"], CLIENT_NET, "10.0.2.1", {"initcwnd": n})
    client_route = _route_metrics(lab["h1"], SERVER_NET, "10.0.1.1", {"initrwnd": INITRWND_SEGS})
    if server_route["initcwnd"] != n or client_route["initrwnd"] != INITRWND_SEGS:
        raise LookupError(f"route metrics read back as {server_route}, {client_route}")
    ctx["raw"].write_text("routes.txt", f"h2 {CLIENT_NET} via 10.0.2.1 {server_route}\n"
                                        f"h1 {SERVER_NET} via 10.0.1.1 {client_route}\n")
    server = tcptransfer.BulkServer(lab["h2"], PORT, CC)
    lab.undo.push("stop the bulk server", server.close)
    ctx["server"] = server
    ctx["addr"] = lab["h2"].ip()
    # Buffers made now, not inside a timed transfer (page faults in UML).
    server.reserve(params["size_bytes"])
    ctx["buf"] = tcptransfer.recv_buffer()
    # Untimed: resolves ARP on both hops (the router's reply crosses its delay).
    warm = tcptransfer.fetch(lab["h1"], ctx["addr"], PORT, WARMUP_BYTES, ctx["buf"])
    rec = server.record()
    ctx["raw"].write_text("warmup.txt", f"warm-up transfer of {WARMUP_BYTES} B (not a trial): "
                                        f"{warm.transfer_ms:.3f} ms, cwnd at accept "
                                        f"{rec.info_at_accept['snd_cwnd']}\n")
    ctx["raw"].write_text("trials_tcpinfo.csv", "repeat,transfer_ms,cwnd_at_accept,snd_mss,"
                          "maxseg,peer_wnd_at_accept,rwnd_limited_us,total_retrans\n")
    ctx["repeat"] = 0


def trial(lab, params: dict, ctx) -> dict:
    res = tcptransfer.fetch(lab["h1"], ctx["addr"], PORT, params["size_bytes"], ctx["buf"])
    rec = ctx["server"].record()
    info, end = rec.info_at_accept, rec.info_at_end
    ctx["raw"].write_text("trials_tcpinfo.csv", ",".join(str(v) for v in (
        ctx["repeat"], f"{res.transfer_ms:.3f}", info["snd_cwnd"], info["snd_mss"],
        rec.maxseg_bytes, info.get("snd_wnd", ""), end.get("rwnd_limited", ""),
        end.get("total_retrans", ""))) + "\n")
    ctx["repeat"] += 1
    return {"transfer_ms": res.transfer_ms, "initial_cwnd_segs": float(info["snd_cwnd"]),
            "snd_mss_bytes": float(info["snd_mss"])}
