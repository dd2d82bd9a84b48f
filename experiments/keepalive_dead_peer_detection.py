"""[32] keepalive_dead_peer_detection: how long an established connection takes to notice
that its peer is gone, idle (keep-alive) or with data outstanding (retransmissions).

Client h1 and server h2 across r1 (rtt_ms/2 each way), one new connection per trial with
a byte exchanged; then h2's filter drops everything from h1 (a dead peer, as the client
sees it) and the client blocks in recv() until the kernel reports ETIMEDOUT:

    keepalive      idle; TCP_KEEPIDLE 2 s, TCP_KEEPINTVL 1 s, TCP_KEEPCNT 3 on the socket
    data           the same keep-alive settings, but 100 B sent just before: unacked
                   data, so keep-alive does not apply; tcp_retries2 = 5 decides
    user_timeout   unacked data with TCP_USER_TIMEOUT = 3000 ms

A packet tap on h1 stamps the probes and retransmissions, the last packet it received
(where idle starts) and the data's first transmission (where the RTO clock starts).  The
system defaults, 7200 s + 9 x 75 s = 2 h 11 min 15 s, are predicted, not run.
"""
from __future__ import annotations

import json

from wirelab.errors import LabError
from wirelab.measure.tap import tapped
from wirelab.models.retransmit import data_schedule, keepalive_detection_s, loss_probe_s
from wirelab.models.timers import hz_of, nominal_rto_ms, rto_min_of
from wirelab.peers import partition
from wirelab.peers.partition import until_dead
from wirelab.spec import Choice, Metric, Param, Schedule, Tolerance
from wirelab.topologies.routed_path import RoutedPath

ID = "keepalive_dead_peer_detection"
ALIASES = ("dead_peer",)
CLAIM = ("An idle connection with keep-alive notices a dead peer after idle + count x interval; "
         "with data outstanding keep-alive does not apply and the retransmission timeout decides")
SECTION = "§9 enable TCP keep-alive; §11 keep-alive with a 30 s interval"
TEXT_SAYS = "Enable TCP keep-alive to detect dead connections"
TOPOLOGY = RoutedPath
NEEDS = {"netem"}
CASES = ("keepalive", "data", "user_timeout")
PARAMS = [
    Choice("case", CASES, default="keepalive", grid=CASES, quick=CASES,
           help="idle with keep-alive, unacked data (tcp_retries2 = 5), or TCP_USER_TIMEOUT 3 s"),
    Param("rtt_ms", default=10, min=1, max=500, grid=(10, 50), quick=(10,),
          help="round-trip time added by the router, ms"),
]
REPEATS = 3
QUICK_REPEATS = 1
KEEPIDLE_S, KEEPINTVL_S, KEEPCNT = 2, 1, 3
RETRIES2, USER_TIMEOUT_MS = 5, 3000
_LATE = Tolerance(abs=0.3, rel=0.05)           # "+[0, 0.3 s + 5%]": timers fire late
_EXACT = Tolerance(abs=0.0, rel=0.0, symmetric=True)
METRICS = [
    Metric("detect_s", "from the last packet heard (idle) or the data's first transmission "
           "(unacked) to ETIMEDOUT", _LATE),
    Metric("sent_count", "keep-alive probes, or retransmissions, before the error", _EXACT,
           plot=False),
]
X = "case"
FIGURE = Schedule("How long until a connection notices its peer is gone?", event="probe or retransmission",
                  end="recv() fails (ETIMEDOUT)", labels={
                      "keepalive": "idle, keep-alive 2 + 3 x 1 s", "data": "100 B unacked, tcp_retries2=5",
                      "user_timeout": "100 B unacked, TCP_USER_TIMEOUT 3 s"})
PORT = 7201
SYSCTLS = {"h1": {"net.ipv4.tcp_retries2": str(RETRIES2)}}


def schedule(params: dict, kernel: dict) -> tuple[list[float], float]:
    """(probe or retransmission times, the error time) from the kernel's rules."""
    if params["case"] == "keepalive":
        return ([KEEPIDLE_S + i * KEEPINTVL_S for i in range(KEEPCNT)],
                keepalive_detection_s(KEEPIDLE_S, KEEPINTVL_S, KEEPCNT))
    r = float(params["rtt_ms"])
    rto = nominal_rto_ms(r, hz_of(kernel), rto_min_of(kernel)) / 1e3
    user = USER_TIMEOUT_MS / 1e3 if params["case"] == "user_timeout" else None
    return data_schedule(rto, RETRIES2, user, loss_probe_s(r / 1e3, rto))


def predict(params: dict, kernel: dict) -> dict:
    sent, fail = schedule(params, kernel)
    return {"detect_s": fail, "sent_count": float(len(sent))}


def prepare(lab, params: dict, ctx) -> None:
    ctx.state.tap = partition.start(lab, PORT)


def trial(lab, params: dict, ctx) -> dict:
    case = params["case"]
    failed_at, events = tapped({"h1": ctx.state.tap}, lambda: until_dead(
        lab["h1"], lab["h2"], PORT, keepalive=(KEEPIDLE_S, KEEPINTVL_S, KEEPCNT),
        user_timeout_ms=USER_TIMEOUT_MS if case == "user_timeout" else None,
        write=b"" if case == "keepalive" else b"d" * 100))
    mine = [e for e in events["h1"] if e.seg.proto == 6 and PORT in (e.seg.sport, e.seg.dport)]
    heard = [e.ts for e in mine if not e.out]
    data = [e for e in mine if e.out and len(e.seg.payload) == 100]
    if case == "keepalive":
        # A probe repeats the last byte sent's sequence number (snd_una - 1): the
        # delayed ACK of the echo does not.
        t0, last = heard[-1], [e for e in mine if e.out and e.seg.payload][-1]
        sent = [e.ts for e in mine if e.out and not e.seg.payload and e.ts > t0
                and e.seg.seq == last.seg.seq]
    else:
        if not data:
            raise LabError("the tap saw no data segment")
        t0, sent = data[0].ts, [e.ts for e in data[1:]]
    nominal, nominal_fail = schedule(params, ctx.kernel)
    ctx.raw.write_text("schedule.jsonl", json.dumps({
        "repeat": ctx.repeat, "events": [t - t0 for t in sent], "end": failed_at - t0,
        "predicted": nominal, "predicted_end": nominal_fail}) + "\n")
    return {"detect_s": failed_at - t0, "sent_count": float(len(sent))}
