"""[10] iw10_vs_iw1_initcwnd_sweep: a new connection starts with cwnd = IW segments;
with IW = 10 (Linux since 2.6.39) 14480 B fit in one round trip, with the textbook's
1 MSS they need four.

The server h2's route toward the client carries ``initcwnd N`` (a route metric:
tcp_init_cwnd() prefers RTAX_INITCWND over TCP_INIT_CWND), so every connection it
accepts starts with cwnd = N.  The client h1 connects, sends a one-line request and
reads S bytes; the clock runs from connect() to the last byte:
T = (1 + rounds) r, rounds = ceil(log2(S / (N * MSS_eff) + 1)).

    h1 10.0.1.2 -- r1 (rtt_ms/2 each way) -- 10.0.2.2 h2
    h1: route 10.0.2.0/24 via 10.0.1.1 initrwnd 64
    h2: route 10.0.1.0/24 via 10.0.2.1 initcwnd N

TCP_INFO of the accepted socket, read before it sends, gives the cwnd a new connection
starts with (``ss -ti`` shows the same field) and the MSS the prediction uses.
"""
from __future__ import annotations

from wirelab.errors import LabError
from wirelab.models.tcp import iw_of, mss_from_kernel, receiver_from_kernel, round_note, simulate
from wirelab.peers import bulk
from wirelab.spec import Metric, Param, Rounds, Tolerance
from wirelab.topologies.routed_path_deep import RoutedPathDeep

ID = "iw10_vs_iw1_initcwnd_sweep"
ALIASES = ("initcwnd",)
CLAIM = ("A new connection starts at IW segments (10 on Linux): S bytes take "
         "1 + ceil(log2(S / (IW x MSS_eff) + 1)) RTTs")
SECTION = "§3 congestion control ('initial cwnd increased from 4 to 10'; 'cwnd = 1 MSS')"
TEXT_SAYS = "Slow start: cwnd = 1 MSS, doubles every RTT ... initial cwnd increased from 4 to 10"
TOPOLOGY = RoutedPathDeep
NEEDS = {"netem"}
PARAMS = [
    Param("initcwnd_segs", default=0, min=0, max=64, type=int, grid=(0, 1, 4, 10, 32),
          quick=(0, 1, 10), help="initcwnd on the server's route, segments (0: none, so "
                                 "the kernel's own initial window, read in the lab)"),
    Param("size_bytes", default=14480, min=1, max=4 * 1024 * 1024, type=int,
          grid=(14480, 65536), quick=(14480,), help="response size, bytes"),
    Param("rtt_ms", default=100, min=1, max=1000, grid=(100,), quick=(50,),
          help="round-trip time added by the router, ms"),
]
REPEATS = 10
QUICK_REPEATS = 10
_EXACT = Tolerance(abs=0.0, rel=0.0, symmetric=True)
METRICS = [
    # (1 + rounds) r: never fewer rounds, at most a third of one late.
    Metric("transfer_ms", "time from the client's connect() call to its reading the last byte",
           Tolerance(abs=0.0, rel=0.0, rtt_frac=1 / 3)),
    Metric("initial_cwnd_segs", "tcpi_snd_cwnd of the accepted socket before it sends", _EXACT),
    Metric("snd_mss_bytes", "tcpi_snd_mss of the accepted socket", _EXACT, plot=False),
]
X = "initcwnd_segs"
FIGURE = Rounds("How many round trips does a small response take with an initial window of 1 or 10?",
                hue=("initcwnd_segs",), labels={"0": "the kernel's own IW (no initcwnd)"})
#: initrwnd on the client's route: at least the 44 segments its buffer allows, so
#: min(rcv_wnd, initrwnd x mss) leaves the window to tcp_rmem[1].
INITRWND_SEGS = 64
CC = "reno"
PORT = 5001
CLIENT_NET, SERVER_NET = "10.0.1.0/24", "10.0.2.0/24"
SYSCTLS = {n: bulk.TRANSFER_SYSCTLS for n in ("h1", "h2")}


def predict(params: dict, kernel: dict) -> dict:
    """T = (1 + rounds) r with IW = initcwnd, or the kernel's own IW without one; the
    window model adds a round only if the client's window would cap one (it does not
    on this grid)."""
    mss, iw = mss_from_kernel(kernel), iw_for(params, kernel)
    rcv = receiver_from_kernel(kernel, initrwnd_segs=INITRWND_SEGS)
    sched = simulate(params["size_bytes"], iw, mss, rcv)
    return {"transfer_ms": (1 + sched.n) * float(params["rtt_ms"]),
            "initial_cwnd_segs": float(iw), "snd_mss_bytes": float(mss)}


def iw_for(params: dict, kernel: dict) -> int:
    return int(params["initcwnd_segs"]) or iw_of(kernel)


def note(entry: dict) -> str:
    p = entry["params"]
    return round_note(int(p["size_bytes"]), int(entry["predicted"]["initial_cwnd_segs"]),
                      int(entry["predicted"]["snd_mss_bytes"]), float(p["rtt_ms"]),
                      entry["predicted"]["transfer_ms"], entry["measured"].get("transfer_ms"))


def prepare(lab, params: dict, ctx) -> None:
    n = params["initcwnd_segs"]
    server_route = lab["h2"].route_with_metrics(CLIENT_NET, "10.0.2.1", {"initcwnd": n}) \
        if n else "no initcwnd (the kernel's own IW)"
    client_route = lab["h1"].route_with_metrics(SERVER_NET, "10.0.1.1",
                                                {"initrwnd": INITRWND_SEGS})
    if (n and server_route["initcwnd"] != n) or client_route["initrwnd"] != INITRWND_SEGS:
        raise LabError(f"route metrics read back as {server_route}, {client_route}")
    ctx.raw.write_text("routes.txt", f"h2 {CLIENT_NET} via 10.0.2.1 {server_route}\n"
                                     f"h1 {SERVER_NET} via 10.0.1.1 {client_route}\n")
    transfers = ctx.state.transfers = bulk.start(lab, "h1", "h2", PORT, CC, params["size_bytes"], ctx.raw)
    # One untimed transfer with TCP_INFO sampled every r/4: the figure's cwnd(t) panel.
    transfers.server.sample_next(float(params["rtt_ms"]) / 4 / 1e3)
    res, rec = transfers.fetch(params["size_bytes"])
    ctx.raw.write_text("cwnd.csv", bulk.cwnd_csv(rec, res.t0_s))


def trial(lab, params: dict, ctx) -> dict:
    res, rec = ctx.state.transfers.fetch(params["size_bytes"])
    ctx.raw.write_text("trials_tcpinfo.csv", bulk.tcpinfo_row(ctx.repeat, res, rec))
    info = rec.info_at_accept
    return {"transfer_ms": res.transfer_ms, "initial_cwnd_segs": float(info["snd_cwnd"]),
            "snd_mss_bytes": float(info["snd_mss"])}
