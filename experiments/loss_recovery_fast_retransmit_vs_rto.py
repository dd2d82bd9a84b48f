"""[08] loss_recovery_fast_retransmit_vs_rto: one segment lost, and how Linux finds out:
SACKs of what came after it (RACK, or three duplicate ACKs), a tail loss probe, or the
retransmission timeout.

Server h2 sends 60 full segments (86,880 B) to client h1 across r1 (rtt_ms/2 each way) on a
new connection per trial, GSO/TSO off on h2 so every wire packet is one segment.  r1's
filter drops exactly the segment that carries a marker (xt_string, first occurrence only;
a second rule drops its first retransmission too):

    middle      segment 30 of 60: later segments are SACKed -> fast recovery, about 1 r
    tail        the last segment: nothing after it to SACK -> a tail loss probe
    tail_twice  the last segment and the probe -> the retransmission timeout

A tap on h2 stamps the marked segment's transmissions (recovery time = first to last);
h2's TcpExt counters name the mechanism.  tcp_recovery (RACK) and tcp_sack are swept in
the full grid.
"""
from __future__ import annotations

from wirelab.errors import LabError
from wirelab.lab import firewall
from wirelab.measure import netstat
from wirelab.measure.tap import open_taps, tapped
from wirelab.models.retransmit import loss_probe_s
from wirelab.models.timers import hz_of, nominal_rto_ms, rto_min_of
from wirelab.peers import stream
from wirelab.spec import Bars, Choice, Metric, Param, Tolerance
from wirelab.topologies.routed_path import RoutedPath

ID = "loss_recovery_fast_retransmit_vs_rto"
ALIASES = ("loss_recovery",)
CLAIM = ("A segment lost mid-flight is resent about one round trip later (SACK/RACK fast recovery), "
         "a lost tail by a loss probe; only a lost retransmission waits for the RTO")
SECTION = "§3 '3 duplicate ACKs -> FAST RETRANSMIT'; §3 retransmission timeout"
TEXT_SAYS = "3 duplicate ACKs -> FAST RETRANSMIT (don't wait for timeout)"
TOPOLOGY = RoutedPath
NEEDS = {"netem"}
CASES = ("middle", "tail", "tail_twice")
PARAMS = [
    Choice("case", CASES, default="middle", grid=CASES, quick=CASES,
           help="which segment is lost: one mid-flight, the last, or the last and its probe"),
    Choice("recovery", ("1", "0"), default="1", grid=("1", "0"), quick=("1",),
           help="net.ipv4.tcp_recovery (1: RACK loss detection)", sysctl="net.ipv4.tcp_recovery",
           advice="leave it at 1 (RACK, the default)"),
    Choice("sack", ("1", "0"), default="1", grid=("1", "0"), quick=("1",),
           help="net.ipv4.tcp_sack on both ends", sysctl="net.ipv4.tcp_sack",
           advice="keep SACK on (some hardening guides turned it off after CVE-2019-11477)"),
    Param("rtt_ms", default=50, min=10, max=500, grid=(50,), quick=(50,),
          help="round-trip time added by the router, ms"),
]
REPEATS = 5
QUICK_REPEATS = 3
SEGMENTS, MSS = 60, 1448
DROP_AT = {"middle": 30, "tail": SEGMENTS - 1, "tail_twice": SEGMENTS - 1}
FAST, PROBE, TIMEOUT = 1.0, 2.0, 3.0
MECHANISM = {"middle": FAST, "tail": PROBE, "tail_twice": TIMEOUT}
COUNTERS = ("TCPFastRetrans", "TCPSackRecovery", "TCPRenoRecovery", "TCPLossProbes", "TCPTimeouts")
METRICS = [
    Metric("recovery_ms", "the lost segment's first transmission to its last", Tolerance(
        abs=0.0, rel=0.20, symmetric=True)),
    Metric("mechanism_code", "what the counters say recovered it: 1 fast retransmit, 2 loss "
           "probe, 3 timeout", Tolerance(abs=0.0, rel=0.0, symmetric=True), plot=False),
]
X = "case"
FIGURE = Bars("One segment lost: how long until it is sent again, and what noticed?",
              (("recovery time", "recovery_ms"),), x="case", labels={
                  "middle": "mid-flight (SACK / RACK)", "tail": "the tail (loss probe)",
                  "tail_twice": "the tail and its probe (RTO)"})
PORT = 7401


def lab_sysctls(params: dict) -> dict:
    both = {"net.ipv4.tcp_sack": params["sack"], "net.ipv4.tcp_recovery": params["recovery"]}
    return {"h1": both, "h2": both}


def predict(params: dict, kernel: dict) -> dict:
    """middle: the SACKs of the next segments come back one r later and the loss is
    marked at once (three SACKed, DupThresh).  tail: the last ACK before the silence
    comes one r after the tail left, leaving one packet in flight, and re-arms the probe
    timer for min(2 srtt + TCP_RTO_MIN, RTO) (``tcp_schedule_loss_probe(sk, true)``: the
    cap is the whole RTO when an ACK advanced it).  tail_twice: the probe is lost too; the
    RTO timer, re-armed when the probe left, fires one RTO later.  Without SACK there is
    no probe (tcp_schedule_loss_probe needs it): the RTO from the last ACK, then twice it."""
    r, case = float(params["rtt_ms"]), params["case"]
    rto = nominal_rto_ms(r, hz_of(kernel), rto_min_of(kernel))
    if str(params["sack"]) == "0" and case != "middle":
        return {"recovery_ms": r + rto + (2 * rto if case == "tail_twice" else 0.0),
                "mechanism_code": TIMEOUT}
    probe = r + 1e3 * loss_probe_s(r / 1e3, rto / 1e3, packets_out=1)
    times = {"middle": r, "tail": probe, "tail_twice": probe + rto}
    return {"recovery_ms": times[case], "mechanism_code": MECHANISM[case]}


def _marker(k: int) -> bytes:
    return f"<wirelab-lost-{k:04d}>".encode()


def response(case: str) -> bytes:
    """SEGMENTS full segments, the one to lose marked in its middle."""
    body = bytearray(b"." * (SEGMENTS * MSS))
    at = DROP_AT[case] * MSS + MSS // 2
    body[at:at + len(_marker(0))] = _marker(DROP_AT[case])
    return bytes(body)


def _drop_rules(case: str) -> list[tuple[str, ...]]:
    """One-shot drops on r1: the marked segment's first transmission, and for tail_twice
    the first one that passes that rule too (each rule counts what reaches it)."""
    match = firewall.carrying(_marker(DROP_AT[case]), PORT)
    return [firewall.nth_drop(0, *match)] * (2 if case == "tail_twice" else 1)


def prepare(lab, params: dict, ctx) -> None:
    h2 = lab["h2"]
    h2.run(["ethtool", "-K", h2.intf().name, "tso", "off", "gso", "off"])
    server = stream.Sender(h2, PORT, response(params["case"]))
    lab.undo.push("stop the server", server.close)
    ctx.state.taps = open_taps(lab, "h2")


def trial(lab, params: dict, ctx) -> dict:
    # the sender's FIN waits for the client's: after the tail it would be SACKed and turn
    # a tail loss into a fast retransmit (stream.Sender)
    with firewall.armed(lab["r1"], _drop_rules(params["case"])):     # afresh for each trial
        (_, events), delta = netstat.counted(lab["h2"].ns, "TcpExt", COUNTERS, lambda: tapped(
            ctx.state.taps, lambda: stream.receive(lab["h1"], lab["h2"].ip(), PORT, SEGMENTS * MSS)))
    marker = _marker(DROP_AT[params["case"]])
    sent = [e.ts for e in events["h2"] if e.out and marker in e.seg.payload]
    if len(sent) < 2:
        raise LabError(f"the marked segment left {len(sent)} times; the drop did not happen")
    code = TIMEOUT if delta["TCPTimeouts"] else PROBE if delta["TCPLossProbes"] else FAST
    ctx.raw.write_text("recoveries.csv", f"{ctx.repeat},{len(sent)},"
                       + ",".join(f"{k}={v}" for k, v in delta.items()) + "\n")
    return {"recovery_ms": (sent[-1] - sent[0]) * 1e3, "mechanism_code": code}
