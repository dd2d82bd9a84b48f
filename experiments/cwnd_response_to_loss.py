"""[12] cwnd_response_to_loss: what the congestion window does after one lost segment and
after a timeout, per congestion control.

Server h2 sends 8 MiB to client h1 across r1 (rtt_ms/2 each way), congestion control set
on the socket (TCP_CONGESTION), TCP_INFO sampled every 5 ms.  r1 drops two marked
segments once each (xt_string, GSO off on h2): the first, early in slow start, ends slow
start (ssthresh set, congestion avoidance after recovery); the second, about 1.5 MB in,
is the loss measured: cwnd grows at most one segment per round trip there, so the 5 ms
sample before recovery is the window that was cut.  At 2.5 s r1 drops everything for
1 s: the retransmission timer fires.

    recovery after the 2nd drop  ssthresh = cwnd x 0.5 (reno), x 717/1024 (cubic); bbr keeps
                                 its window (no multiplicative cut: cwnd through recovery)
    after the timeout            cwnd = 1 (tcp_enter_loss), then slow start to ssthresh
"""
from __future__ import annotations

import csv
import io

from wirelab.errors import LabError
from wirelab.lab import firewall
from wirelab.measure.tcpinfo import CA_LOSS, CA_RECOVERY, episodes
from wirelab.models.tcp import TCP_INFINITE_SSTHRESH
from wirelab.peers import bulk
from wirelab.spec import Bars, Choice, Metric, Param, Tolerance
from wirelab.topologies.routed_path import RoutedPath

ID = "cwnd_response_to_loss"
ALIASES = ("cwnd_loss",)
CLAIM = ("After one loss reno halves ssthresh, cubic keeps 0.7 of the window and bbr all of it; "
         "after a timeout the window restarts at one segment")
SECTION = "§3 congestion control"
TEXT_SAYS = "Packet loss: ssthresh = cwnd/2, cwnd = ssthresh. Timeout: cwnd = 1 MSS"
TOPOLOGY, TOPOLOGY_PARAMS = RoutedPath, ("rtt_ms",)
NEEDS = {"netem", "cc_bbr"}
BETA = {"reno": 0.5, "cubic": 717 / 1024}       # tcp_reno_ssthresh, tcp_cubic.c beta
CCS = ("reno", "cubic", "bbr")
PARAMS = [
    Choice("cc", CCS, default="cubic", grid=CCS, quick=CCS,
           help="congestion control on the server socket (TCP_CONGESTION)"),
    Param("rtt_ms", default=50, min=20, max=200, grid=(50,), quick=(50,),
          help="round-trip time added by the router, ms"),
]
REPEATS = 3
QUICK_REPEATS = 1
METRICS = [
    Metric("ssthresh_ratio", "ssthresh set by the loss in congestion avoidance / cwnd just before it",
           Tolerance(abs=0.05, rel=0.0, symmetric=True)),
    Metric("cwnd_kept_ratio", "bbr: the smallest cwnd through the recovery / cwnd just before it",
           Tolerance(abs=0.15, rel=0.0, symmetric=True)),
    Metric("cwnd_after_rto_segs", "the smallest cwnd after the timeout",
           Tolerance(abs=0.0, rel=0.0, symmetric=True)),
]
X = "cc"
FIGURE = Bars("After a loss, how far does each congestion control cut its window?",
              (("ssthresh / cwnd", "ssthresh_ratio"), ("kept cwnd / cwnd", "cwnd_kept_ratio")),
              x="cc", unit="ratio", ylabel="window after the loss / before", trace="cwnd.csv")
PORT, SIZE, SAMPLE_S, MSS = 7501, 8 << 20, 0.005, 1448
DROPS = {50: b"<wirelab-cwnd-drop-1>", 1020: b"<wirelab-cwnd-drop-2>"}    # segment: marker
BLACKHOLE_S = 1.0
#: bbr, with no ssthresh to hold it, is past both drops within 0.5 s and its rate is what
#: the CPU gives (no bottleneck): its black hole comes sooner and its response is longer,
#: long enough to outlast a rule that lands late (32 MiB once ended in 1.7 s in a polling
#: UML guest, before the black hole took effect)
BLACKHOLE_AT_S, SIZES = {"reno": 2.5, "cubic": 2.5, "bbr": 0.8}, {"bbr": 64 << 20}


def predict(params: dict, kernel: dict) -> dict:
    if params["cc"] == "bbr":       # model-based: no ssthresh, packet conservation only
        return {"cwnd_kept_ratio": 1.0, "cwnd_after_rto_segs": 1.0}
    return {"ssthresh_ratio": BETA[params["cc"]], "cwnd_after_rto_segs": 1.0}


def prepare(lab, params: dict, ctx) -> None:
    h2 = lab["h2"]
    h2.run(["ethtool", "-K", h2.intf().name, "tso", "off", "gso", "off"])
    size = SIZES.get(params["cc"], SIZE)
    ctx.state.session = bulk.start(lab, "h1", "h2", PORT, params["cc"], size, ctx.raw)
    for segment, marker in DROPS.items():
        ctx.state.session.server.mark(segment * MSS + MSS // 2, marker)


def analyse(samples: list[dict], model_based: bool = False) -> dict:
    """The cut at the second recovery (the window in congestion avoidance; for a
    MODEL_BASED one like bbr, the smallest window through that recovery) and the smallest
    cwnd in the loss state after it."""
    runs = episodes(samples, CA_RECOVERY)
    if len(runs) < 2:
        raise LabError(f"{len(runs)} fast recoveries in the TCP_INFO trace, not 2: a drop did "
                       "not happen")
    first, end = runs[1]
    before = next((s for s in reversed(samples[:first]) if s["ca_state"] < CA_RECOVERY), None)
    if before is not None and model_based:
        kept = min(s["snd_cwnd"] for s in samples[first:end])
        before = before | {"kept": kept / before["snd_cwnd"]}
    elif before is None or before["snd_ssthresh"] >= TCP_INFINITE_SSTHRESH \
            or before["snd_cwnd"] < before["snd_ssthresh"]:
        raise LabError(f"not in congestion avoidance before the second drop: {before}")
    loss = [s["snd_cwnd"] for s in samples[first:] if s["ca_state"] == CA_LOSS]
    if not loss:
        raise LabError(f"no timeout (loss state) in the TCP_INFO trace of {len(samples)} samples "
                       f"over {samples[-1]['t_s'] - samples[0]['t_s']:.2f} s")
    return {"ssthresh_ratio": samples[first]["snd_ssthresh"] / before["snd_cwnd"],
            "cwnd_after_rto_segs": float(min(loss)), "cwnd_before": before["snd_cwnd"],
            "ssthresh_before": before["snd_ssthresh"], "cwnd_kept_ratio": before.get("kept")}


def trial(lab, params: dict, ctx) -> dict:
    session, r1 = ctx.state.session, lab["r1"]
    # on r1: the first segment carrying each marker, once (armed afresh for each trial),
    # and everything from the server for BLACKHOLE_S from BLACKHOLE_AT_S on
    drops = [firewall.nth_drop(0, *firewall.carrying(m, PORT)) for m in DROPS.values()]
    session.server.sample_next(SAMPLE_S)
    with firewall.armed(r1, drops), firewall.outage(r1, BLACKHOLE_AT_S[params["cc"]], BLACKHOLE_S,
                                                    "-p", "tcp", "--sport", str(PORT)):
        res, rec = session.fetch(SIZES.get(params["cc"], SIZE))
    if ctx.repeat == 0:                                 # the figure's trace: one trial
        ctx.raw.write_text("cwnd.csv", bulk.cwnd_csv(rec, res.t0_s))
    bbr = params["cc"] == "bbr"
    found = analyse(rec.samples, model_based=bbr)
    out = io.StringIO()
    csv.writer(out).writerow([ctx.repeat, found["cwnd_before"], found["ssthresh_before"],
                              f"{res.transfer_ms:.1f}"])
    ctx.raw.write_text("cuts.csv", out.getvalue())
    cut = "cwnd_kept_ratio" if bbr else "ssthresh_ratio"
    return {cut: found[cut], "cwnd_after_rto_segs": found["cwnd_after_rto_segs"]}
