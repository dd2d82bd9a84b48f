"""[09] flow_control_rwnd_bdp_and_buffer_sysctls: a receive window smaller than the
bandwidth-delay product caps throughput at W / r; a receiver that stops reading closes the
window, and the sender probes it on the RTO's doubling schedule without giving up.

Client h1 sends to server h2 for SEND_S through r1 (tbf bw_mbps toward h2, netem rtt_ms/2
each way).  h2's listening socket has SO_RCVBUF = rcvbuf before listen() (the accepted
socket inherits it, autotuning off), or none ("auto": autotuning up to tcp_rmem[2]).

    SO_RCVBUF X    the kernel stores B = 2 min(X, rmem_max); 6.1 offers half (tcp_adv_win_scale 1)
                   less one reserved segment: W = min(X, rmem_max) - MSS, in whole segments
                   when that needs no window scale (below 64 KiB); 6.12 offers B x the
                   scaling_ratio it measured on the first segment / 256 (the kernel facts'
                   probe), in whole segments or scale units
    goodput        min(C x 1448 / 1514, W / r), measured by the reader over the last half
    pause          SO_RCVBUF 64 KiB, the reader stops for PAUSE_S: one zero-window
                   advertisement (TCPToZeroWindowAdv); the sender probes one RTO (as TCP_INFO
                   reports it) after the ACK that left nothing in flight, then 2 RTO after
                   the probe's answer (tcp_ack_probe re-arms the doubled timer)
"""
from __future__ import annotations

import statistics

from wirelab.measure import netstat
from wirelab.measure.tap import open_taps, persist_schedule, tapped, timeline
from wirelab.models.tcp import autotuned_window_max, locked_window
from wirelab.models.timers import hz_of, nominal_rto_ms, rto_min_of
from wirelab.peers import stream
from wirelab.spec import REPORTED, Bars, Choice, Metric, Param, Tolerance
from wirelab.topologies.routed_path import RoutedPath

ID = "flow_control_rwnd_bdp_and_buffer_sysctls"
ALIASES = ("flow_control",)
CLAIM = ("A receive window W below the bandwidth-delay product caps throughput at W / r; a reader "
         "that stops closes the window and the sender probes it, doubling, without giving up")
SECTION = "§3 flow control; §9 rmem_max/wmem_max = 16MB"
TEXT_SAYS = "Receiver advertises window size (how much buffer space available)"
TOPOLOGY, TOPOLOGY_PARAMS = RoutedPath, ("rtt_ms", "bw_mbps")
NEEDS = {"netem", "tbf"}
KIB = 1024
BUFFERS = {"16k": 16 * KIB, "64k": 64 * KIB, "256k": 256 * KIB, "auto": 0, "pause": 64 * KIB}
PARAMS = [
    Choice("case", tuple(BUFFERS), default="64k", grid=tuple(BUFFERS), quick=tuple(BUFFERS),
           help="the reader's SO_RCVBUF (auto: none, autotuning), or 64k with a reader that pauses"),
    Param("rtt_ms", default=100, min=20, max=300, grid=(50, 100), quick=(100,),
          help="round-trip time added by the router, ms"),
    Param("bw_mbps", default=20, min=1, max=50, grid=(20,), quick=(20,),
          help="the bottleneck toward the reader (tbf on r1), Mbit/s"),
    Param("rmem2_bytes", default=6291456, min=65536, max=1 << 26, type=int, grid=(262144, 6291456),
          quick=(6291456,), help="the reader's tcp_rmem[2]: how far autotuning may grow its buffer",
          sysctl="net.ipv4.tcp_rmem", effect=("goodput_mbps",),
          advice="raise tcp_rmem's maximum to 16 MB for fast, long paths"),
    Param("rmem_max_bytes", default=212992, min=4096, max=1 << 26, type=int, grid=(212992, 16777216),
          quick=(212992,), help="net.core.rmem_max: the cap on SO_RCVBUF (kernel-wide: UML only)",
          sysctl="net.core.rmem_max", effect=("goodput_mbps",), advice="set rmem_max = 16777216"),
]
REPEATS = 3
QUICK_REPEATS = 2
METRICS = [
    Metric("goodput_mbps", "bytes the reader got per second over the last half of the send",
           Tolerance(abs=0.0, rel=0.10, symmetric=True)),
    Metric("window_kb", "the window the reader advertised (the sender's TCP_INFO snd_wnd, median)",
           REPORTED),
    # Timers fire late, never early: by up to a tick (10 ms at HZ 100, 0.05 of the smallest
    # RTO), and a timer more than 63 ticks ahead by up to 1/8 (the timer wheel's level 1).
    Metric("first_probe_rto_ratio", "the ACK that left nothing in flight to the first probe, "
           "over the RTO TCP_INFO reported", Tolerance(abs=0.05, rel=0.0)),
    Metric("backoff_rto_ratio", "the first probe's ACK to the second probe, over the RTO",
           Tolerance(abs=0.05, rel=0.125)),
    Metric("zero_window_count", "zero-window advertisements (TCPToZeroWindowAdv on the reader)",
           Tolerance(abs=0.0, rel=0.0, symmetric=True), plot=False),
    Metric("rto_ms", "the sender's RTO (TCP_INFO) while the window was zero", REPORTED, plot=False),
]
X = "case"
FIGURE = Bars("How fast can a sender go through a small receive window?",
              (("goodput", "goodput_mbps"),), x="case", unit="Mbit/s", ylabel="goodput", labels={
                  "16k": "SO_RCVBUF 16 KiB", "64k": "64 KiB", "256k": "256 KiB",
                  "auto": "autotuned"}, notes=(
                  ("first_probe_rto_ratio", "reader paused: 1st probe {value:.2f} RTO after the window shut"),
                  ("backoff_rto_ratio", "the next {value:.2f} RTO after its answer")))
PORT, MSS, FRAME = 7601, 1448, 1514
SEND_S, PAUSE_AT_S, PAUSE_S, SAMPLE_S = 4.0, 1.0, 3.0, 0.02
RMEM_MAX = "net.core.rmem_max"


def lab_sysctls(params: dict) -> dict:
    # both ends (the kernel facts are read at h1); only the reader's matters
    return {"*": {"net.ipv4.tcp_rmem": f"4096 131072 {int(params['rmem2_bytes'])}"},
            "kernel": {RMEM_MAX: str(int(params["rmem_max_bytes"]))}}


def window_bytes(case: str, kernel: dict) -> int | None:
    """The window an SO_RCVBUF of BUFFERS[case] lets the receiver advertise by the running
    release's rule (wirelab.models.tcp.locked_window), None if autotuned: up to
    tcp_rmem[2]'s window (tcp.autotuned_window_max), reached as the flow grows."""
    return locked_window(BUFFERS[case], kernel, MSS) if BUFFERS[case] else None


def predict(params: dict, kernel: dict) -> dict:
    c = float(params["bw_mbps"]) * MSS / FRAME
    r = float(params["rtt_ms"]) / 1e3
    w = window_bytes(params["case"], kernel)
    if params["case"] == "pause":
        # the probe timer: max(RTO, TCP_RTO_MIN), doubled after each probe (tcp_probe0_when)
        return {"first_probe_rto_ratio": 1.0, "backoff_rto_ratio": 2.0, "zero_window_count": 1.0,
                "rto_ms": nominal_rto_ms(r * 1e3, hz_of(kernel), rto_min_of(kernel))}
    if w is None:
        return {"goodput_mbps": min(c, autotuned_window_max(kernel) * 8 / r / 1e6)}
    return {"goodput_mbps": min(c, w * 8 / r / 1e6), "window_kb": w / 1e3}


def note(entry: dict) -> str:
    w, got = entry["predicted"].get("window_kb"), entry["measured"].get("window_kb")
    if entry["params"]["case"] == "pause":
        rto = entry["measured"].get("rto_ms")
        return ("the reader stopped for 3 s: a zero window, probes on the RTO's doubling schedule"
                + (f"; RTO {rto:.0f} ms (TCP_INFO), the idle path's would be "
                   f"{entry['predicted']['rto_ms']:.0f} ms" if rto is not None else ""))
    seen = f"; the sender saw {got:.1f} kB" if got is not None else ""
    return (f"W = {w:.1f} kB by the SO_RCVBUF rule{seen}" if w is not None
            else f"autotuned: no SO_RCVBUF, the window grows past the BDP{seen}")


def prepare(lab, params: dict, ctx) -> None:
    pause = params["case"] == "pause"
    reader = stream.Reader(lab["h2"], PORT, BUFFERS[params["case"]], (PAUSE_AT_S, PAUSE_S) if pause else None)
    lab.undo.push("stop the reader", reader.close)
    ctx.state.reader = reader
    if pause:
        ctx.state.taps = open_taps(lab, "h1")


def trial(lab, params: dict, ctx) -> dict:
    reader, ns = ctx.state.reader, lab["h2"].ns
    if params["case"] == "pause":
        (samples, events), zeros = netstat.counted(ns, "TcpExt", ("TCPToZeroWindowAdv",), lambda: tapped(
            ctx.state.taps, lambda: stream.send_for(lab["h1"], reader, SEND_S, SAMPLE_S)))
        probed = persist_schedule(events["h1"], samples, PORT)      # the RTO as TCP_INFO had it
        near = [e for e in events["h1"] if probed.armed - 0.3 <= e.ts <= probed.armed + PAUSE_S]
        ctx.raw.write_text(f"zero_window_t{ctx.repeat}.txt", timeline(near, probed.armed, windows=True))
        ctx.raw.write_text("probes.csv", f"{ctx.repeat}," + " ".join(
            f"{(t - probed.armed) * 1e3:.1f}" for t in probed.probes) + "\n")
        return {"first_probe_rto_ratio": probed.first_probe_rto, "backoff_rto_ratio": probed.backoff_rto,
                "zero_window_count": float(zeros["TCPToZeroWindowAdv"]), "rto_ms": probed.rto_s * 1e3}
    windows = [s["snd_wnd"] for s in stream.send_for(lab["h1"], reader, SEND_S, SAMPLE_S)]
    goodput = reader.goodput_mbps()
    ctx.raw.write_text("windows.csv", f"{ctx.repeat}," + " ".join(map(str, windows)) + "\n")
    return {"goodput_mbps": goodput, "window_kb": statistics.median_high(windows[len(windows) // 2:]) / 1e3}
