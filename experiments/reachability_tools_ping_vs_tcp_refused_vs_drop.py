"""[33] reachability_tools_ping_vs_tcp_refused_vs_drop: what a client learns, and how fast,
when a server blocks ICMP, listens, has a port closed, REJECTs or DROPs.

Client h1, server h2 across router r1 (rtt_ms/2 each way).  h2's filter (iptables INPUT,
in its own namespace) drops ICMP echo requests, REJECTs one port with tcp-reset and one
with icmp-port-unreachable, and DROPs one; one port has a listener and one nothing.
Each trial is one attempt, timed in-process in h1 with an application timeout:

    ping          an ICMP echo                      -> no reply: lost at the timeout
    open          connect() to the listener         -> connected after 1 r
    closed        connect() to a port nobody holds  -> RST: ECONNREFUSED after 1 r
    reject_rst    REJECT --reject-with tcp-reset    -> the same
    reject_icmp   REJECT icmp-port-unreachable      -> ICMP: ECONNREFUSED after 1 r
    drop          DROP                              -> SYNs on the schedule of [06] until
                                                       the application's timeout

A packet tap on h1 counts the SYNs each attempt sent.
"""
from __future__ import annotations

import errno
import socket
import time

from wirelab.errors import LabError
from wirelab.lab import firewall
from wirelab.measure.tap import Tap, answered_ms, tapped
from wirelab.models.retransmit import SYN_RETRIES, linear_timeouts, syn_schedule
from wirelab.peers import ping
from wirelab.peers.listener import Listener
from wirelab.spec import Bars, Choice, Metric, Param, Tolerance
from wirelab.topologies.routed_path import RoutedPath

ID = "reachability_tools_ping_vs_tcp_refused_vs_drop"
ALIASES = ("reachability",)
CLAIM = ("Blocked ICMP makes ping fail while TCP works; a closed or REJECTed port is refused after "
         "one round trip; a DROPped one hangs on the SYN schedule until the application gives up")
SECTION = "§8 ping and telnet/nc; §9 set connect timeouts"
TEXT_SAYS = "Limitation: many servers block ICMP (ping may fail even if HTTP works)"
TOPOLOGY = RoutedPath
NEEDS = {"netem"}
CASES = ("ping", "open", "closed", "reject_rst", "reject_icmp", "drop")
PARAMS = [
    Choice("case", CASES, default="drop", grid=CASES, quick=CASES,
           help="what the client tries against what the server does"),
    Param("rtt_ms", default=50, min=1, max=1000, grid=(10, 50), quick=(50,),
          help="round-trip time added by the router, ms"),
    Param("timeout_ms", default=2500, min=100, max=60_000, grid=(2500,), quick=(2500,),
          help="the application's timeout for an answer, ms"),
]
REPEATS = 5
QUICK_REPEATS = 3
#: Outcome codes: what the client's call reported.
CONNECTED, REFUSED, TIMED_OUT, OTHER = 0.0, 1.0, 2.0, 3.0
OUTCOMES = {"ping": TIMED_OUT, "open": CONNECTED, "closed": REFUSED, "reject_rst": REFUSED,
            "reject_icmp": REFUSED, "drop": TIMED_OUT}
METRICS = [
    # "Times exact within +(1 ms + 2%)": nothing answers before its round trip, and a
    # timeout never fires early.
    Metric("time_ms", "answered: the SYN out to the answer in, at the client's tap; unanswered: "
           "the call to the application's timeout",
           Tolerance(abs=1.0, rel=0.02)),
    Metric("outcome_code", "0 connected or replied, 1 refused, 2 timed out, 3 anything else",
           Tolerance(abs=0.0, rel=0.0, symmetric=True), plot=False),
    Metric("syn_count", "SYNs the attempt sent (from a tap on the client)",
           Tolerance(abs=0.0, rel=0.0, symmetric=True), plot=False),
]
X = "case"
FIGURE = Bars("Ping fails, TCP works: how fast does a client learn 'refused' or 'dropped'?",
              (("time to the outcome", "time_ms"),), x="case", labels={
                  "ping": "ping (echo dropped)", "open": "open port", "closed": "closed port (RST)",
                  "reject_rst": "REJECT tcp-reset", "reject_icmp": "REJECT icmp-port-unreach.",
                  "drop": "DROP"})
PORTS = {"open": 7001, "closed": 7002, "reject_rst": 7003, "reject_icmp": 7004, "drop": 7005}


def predict(params: dict, kernel: dict) -> dict:
    """Refused or connected after one round trip; lost or dropped at the timeout, the
    DROP case having sent the SYNs the schedule puts before it."""
    case, r, t = params["case"], float(params["rtt_ms"]), float(params["timeout_ms"])
    retries = int(kernel.get("sysctls", {}).get("net.ipv4.tcp_syn_retries", SYN_RETRIES))
    syns, _fail = syn_schedule(retries, linear_timeouts(kernel))
    sent_before = sum(1 for s in syns if s * 1000.0 < t)
    return {"time_ms": t if OUTCOMES[case] == TIMED_OUT else r,
            "outcome_code": OUTCOMES[case],
            "syn_count": 0.0 if case == "ping" else float(sent_before if case == "drop" else 1)}


class _Acceptor(Listener):
    def handle(self, conn: socket.socket) -> None:
        conn.recv(1)            # until the client closes


def prepare(lab, params: dict, ctx) -> None:
    h2 = lab["h2"]
    firewall.rule(h2, "INPUT", "-p", "icmp", "--icmp-type", "echo-request", "-j", "DROP")
    firewall.rule(h2, "INPUT", "-p", "tcp", "--dport", str(PORTS["reject_rst"]),
                  "-j", "REJECT", "--reject-with", "tcp-reset")
    firewall.rule(h2, "INPUT", "-p", "tcp", "--dport", str(PORTS["reject_icmp"]),
                  "-j", "REJECT", "--reject-with", "icmp-port-unreachable")
    firewall.rule(h2, "INPUT", "-p", "tcp", "--dport", str(PORTS["drop"]), "-j", "DROP")
    server = _Acceptor(h2, PORTS["open"], name="open-port")
    lab.undo.push("stop the listener", server.close)
    ctx.state.tap = Tap(lab["h1"], icmp=True)
    lab.undo.push("close the tap", ctx.state.tap.close)
    _attempt(lab, "open", params)           # untimed: ARP on both hops, warm paths


def _attempt(lab, case: str, params: dict) -> tuple[float, float]:
    """(ms to the outcome, outcome code) of one attempt of CASE."""
    timeout_s, dst = float(params["timeout_ms"]) / 1e3, lab["h2"].ip()
    if case == "ping":
        t0 = time.perf_counter()
        rtt = ping.echo(lab["h1"], dst, timeout_s)
        return (time.perf_counter() - t0) * 1e3, CONNECTED if rtt is not None else TIMED_OUT
    sock = lab["h1"].socket()
    sock.settimeout(timeout_s)
    t0 = time.perf_counter()
    try:
        sock.connect((dst, PORTS[case]))
        outcome = CONNECTED
    except TimeoutError:
        outcome = TIMED_OUT
    except OSError as e:
        outcome = REFUSED if e.errno == errno.ECONNREFUSED else OTHER
    finally:
        elapsed = (time.perf_counter() - t0) * 1e3
        sock.close()
    return elapsed, outcome


def trial(lab, params: dict, ctx) -> dict:
    (ms, outcome), events = tapped({"h1": ctx.state.tap}, lambda: _attempt(lab, params["case"], params))
    syns = [e for e in events["h1"] if e.out and e.seg.proto == 6 and e.seg.flags & 0x02
            and not e.seg.flags & 0x10]
    if OUTCOMES[params["case"]] != TIMED_OUT:       # answered: judge the network's time
        net = answered_ms(events["h1"], syns)  # the network's time, not connect()'s in UML
        if net is None:
            raise LabError(f"{params['case']}: the tap saw no answer to the SYN")
        ms = net
    ctx.raw.write_text("attempts.csv", f"{ctx.repeat},{ms:.3f},{outcome:g},"
                       + " ".join(f"{(e.ts - syns[0].ts) * 1e3:.1f}" for e in syns) + "\n")
    return {"time_ms": ms, "outcome_code": outcome, "syn_count": float(len(syns))}
