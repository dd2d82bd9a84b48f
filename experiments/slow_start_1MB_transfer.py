"""[11] slow_start_1MB_transfer: a new connection needs k = ceil(log2(S/(IW*MSS)+1))
round trips after the handshake to deliver S bytes.

Client h1 connects to server h2 across router r1 (rtt_ms/2 of netem on each of r1's
egresses, deep queues so netem never drops), sends a one-line request and reads S
bytes; the clock runs from connect() to the last byte, on one clock, in one process
(both ends are in-process sockets in their namespaces).

    t = 0        h1 connect()          SYN ->
    t = r        SYN-ACK back; h1 sends the request with the ACK
    t = 1.5 r    h2 reads it, sends round 1: IW = 10 segments
    t = 2 r      round 1 arrives; each further round one RTT later, twice the segments
    T = (1 + k) r

The sender's congestion control is chosen per socket (TCP_CONGESTION on the listener;
accepted sockets inherit it).  The receiver's tcp_rmem[1] sets the window its ACKs offer
in the first rounds (wirelab.models.tcp): the model adds the rounds that window costs,
and the summary marks those points "rwnd-limited".  For one 1 MiB transfer per point,
TCP_INFO of the server socket is sampled every r/4 into raw/pointNNN/cwnd.csv and
cwnd.png.
"""
from __future__ import annotations

from wirelab.models import tcp
from wirelab.peers import bulk
from wirelab.report.cwnd import plot_cwnd
from wirelab.spec import Choice, Metric, Param, Rounds, Tolerance
from wirelab.topologies.routed_path_deep import RoutedPathDeep

ID = "slow_start_1MB_transfer"
ALIASES = ("slow_start",)
CLAIM = ("A new connection delivers S bytes in (1 + k) RTTs, "
         "k = ceil(log2(S / (10 x MSS_eff) + 1)): 1 MiB takes 8 RTTs")
SECTION = "§3 slow start ('To send a 1MB response on a new connection... 6 RTTs ~880KB... ~300ms')"
TEXT_SAYS = ("To send a 1MB response on a new connection: cwnd 10, 20, 40, 80, 160, 320 "
             "segments... 6 RTTs ~880KB... ~300ms at 50 ms RTT")
TOPOLOGY = RoutedPathDeep
NEEDS = {"netem"}
MIB = 1024 * 1024
PARAMS = [
    Param("size_bytes", default=MIB, min=1, max=16 * MIB, type=int,
          grid=(1000, 14480, 100_000, MIB, 10 * MIB), quick=(14480, 100_000, MIB),
          help="response size, bytes (1 KB = 1000, 100 KB = 100000, 1 MiB = 1048576)"),
    Param("rtt_ms", default=50, min=1, max=1000, grid=(10, 50, 100), quick=(50,),
          help="round-trip time added by the router, ms"),
    Choice("cc", ("reno", "cubic", "bbr"), default="reno", grid=("reno", "cubic", "bbr"),
           quick=("reno",), help="the server's congestion control (TCP_CONGESTION)"),
    Param("rcv_rmem1_bytes", default=131072, min=32768, max=131072, type=int,
          grid=(87380, 131072), quick=(131072,),
          help="the client's tcp_rmem[1] (initial receive buffer), bytes; above 131072 "
               "the window model would depend on a 6.1 stable backport",
          sysctl="net.ipv4.tcp_rmem", advice="raise tcp_rmem to 4096 87380 16777216"),
]
# 9 and 11: a reader woken by every segment made the 100 KB points bimodal (see the
# sidecar); the reader now waits for whole flights (flights()), and 22 of 22 agreed.
REPEATS = 9
QUICK_REPEATS = 11
METRICS = [
    # Whole rounds: never fewer, at most a third of one more.
    Metric("transfer_ms", "time from the client's connect() call to its reading the last byte",
           Tolerance(abs=0.0, rel=0.0, rtt_frac=1 / 3)),
    Metric("snd_mss_bytes", "the server socket's send MSS (TCP_INFO tcpi_snd_mss)",
           Tolerance(abs=0.0, rel=0.0, symmetric=True), plot=False),
]
X = "size_bytes"
FIGURE = Rounds("How many round trips does slow start need for 1 MiB?", hue=("cc",))
PORT = 5001
TRACE_BYTES = MIB


def lab_sysctls(params: dict) -> dict:
    rmem = bulk.TRANSFER_SYSCTLS["net.ipv4.tcp_rmem"].split()
    client = {**bulk.TRANSFER_SYSCTLS,
              "net.ipv4.tcp_rmem": f"{rmem[0]} {params['rcv_rmem1_bytes']} {rmem[2]}"}
    return {"h1": client, "h2": dict(bulk.TRANSFER_SYSCTLS)}


def schedule(params: dict, kernel: dict) -> tcp.Schedule:
    rcv = tcp.receiver_from_kernel(kernel)
    if rcv.rmem1 != params["rcv_rmem1_bytes"]:
        raise ValueError(f"the kernel facts show tcp_rmem[1]={rcv.rmem1} in the first host, "
                         f"not the client's {params['rcv_rmem1_bytes']}")
    return tcp.simulate(params["size_bytes"], tcp.iw_of(kernel), tcp.mss_from_kernel(kernel), rcv)


def predict(params: dict, kernel: dict) -> dict:
    """T = (1 + rounds) r, rounds from the slow-start model with the client's receive
    window (= the formula's k when the window does not limit)."""
    return {"transfer_ms": (1 + schedule(params, kernel).n) * float(params["rtt_ms"]),
            "snd_mss_bytes": tcp.mss_from_kernel(kernel)}


def note(entry: dict) -> str:
    """The formula's k and whether the window model adds a round (rwnd-limited)."""
    p = entry["params"]
    return tcp.round_note(int(p["size_bytes"]), tcp.TCP_INIT_CWND,  # the formula's IW
                      int(entry["predicted"]["snd_mss_bytes"]), float(p["rtt_ms"]),
                      entry["predicted"]["transfer_ms"], entry["measured"].get("transfer_ms"))


def prepare(lab, params: dict, ctx) -> None:
    ctx.state.transfers = bulk.start(lab, "h1", "h2", PORT, params["cc"],
                                     max(params["size_bytes"], TRACE_BYTES), ctx.raw)
    if params["size_bytes"] == TRACE_BYTES:
        _cwnd_trace(lab, params, ctx)


def _cwnd_trace(lab, params: dict, ctx) -> None:
    """One untimed 1 MiB transfer with TCP_INFO sampled every r/4 on the server socket:
    raw cwnd.csv and cwnd.png."""
    r, transfers = float(params["rtt_ms"]), ctx.state.transfers
    transfers.server.sample_next(r / 4 / 1e3)
    res, rec = transfers.fetch(TRACE_BYTES, flights({**params, "size_bytes": TRACE_BYTES}, ctx.kernel))
    ctx.raw.write_text("cwnd.csv", bulk.cwnd_csv(rec, res.t0_s))
    model = [rd.cwnd_segs for rd in schedule(params, ctx.kernel).rounds]
    plot_cwnd(ctx.raw.path("cwnd.png"), rec, res.t0_s, r, model,
              f"server cwnd, {TRACE_BYTES} B, r={r:g} ms, cc={params['cc']}, client "
              f"tcp_rmem[1]={params['rcv_rmem1_bytes']}: {res.transfer_ms:.1f} ms (untimed)")


def flights(params: dict, kernel: dict) -> tuple[int, ...]:
    """The reader sleeps until the first two flights are whole (bulk.fetch ROUNDS): at the
    second's last ACK it is behind by exactly that flight, as the model's reader is."""
    return tuple(rd.sent_bytes for rd in schedule(params, kernel).rounds[:2])


def trial(lab, params: dict, ctx) -> dict:
    res, rec = ctx.state.transfers.fetch(params["size_bytes"], flights(params, ctx.kernel))
    if rec.congestion != params["cc"]:
        raise bulk.TransferError(f"the accepted socket runs {rec.congestion}, not {params['cc']}")
    ctx.raw.write_text("trials_tcpinfo.csv", bulk.tcpinfo_row(ctx.repeat, res, rec))
    return {"transfer_ms": res.transfer_ms, "snd_mss_bytes": float(rec.info_at_accept["snd_mss"])}
