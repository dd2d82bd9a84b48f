"""[07] rto_backoff_partition: what an established connection does when its peer stops
answering mid-conversation: how soon it sends again, how the wait grows, when it gives up.

Client h1, server h2 across r1 (rtt_ms/2 each way).  Each trial opens a connection,
exchanges five 1-byte messages 0.1 s apart (an RTT estimate), then h2's filter drops
everything from h1 and h1 writes 100 B and waits in recv() until ETIMEDOUT.  A packet tap
on h1 stamps the first transmission and every retransmission.

Prediction (wirelab.models.retransmit): a tail loss probe at min(2 srtt + 200 ms, RTO),
then the RTO timer: RTO0 = srtt + 4 rttvar (rttvar held at TCP_RTO_MIN: r + 200 ms, a
whole jiffy up), doubling; the connection is abandoned at the first expiry 12.6 s
(tcp_retries2 = 5), 102.2 s (8) or 924.6 s (15, the default: full grid only) after the
first RTO retransmission, or at TCP_USER_TIMEOUT from it when the socket sets one.
"""
from __future__ import annotations

import json
import statistics

from wirelab.errors import LabError
from wirelab.measure.tap import tapped
from wirelab.models.retransmit import data_schedule, loss_probe_s, model_timeout_s
from wirelab.models.timers import hz_of, nominal_rto_ms, rto_min_of
from wirelab.peers import partition
from wirelab.peers.partition import until_dead
from wirelab.spec import Metric, Param, Schedule, Tolerance
from wirelab.topologies.routed_path import RoutedPath

ID = "rto_backoff_partition"
ALIASES = ("rto_backoff",)
CLAIM = ("Data is sent again after max(srtt + 4 rttvar, 200 ms), not 1 s, the wait doubling; the "
         "connection gives up after a time computed from tcp_retries2 (15.4 min at 15), or TCP_USER_TIMEOUT")
SECTION = "§3 retransmission timeout; §3 'a network partition causes LONG stalls'"
TEXT_SAYS = "Initial RTO: ~1 second. Doubles on each retry: 1s -> 2s -> 4s -> 8s -> 16s"
TOPOLOGY = RoutedPath
NEEDS = {"netem"}
PARAMS = [
    Param("retries2_count", default=15, min=1, max=15, type=int, grid=(5, 8, 15), quick=(5,),
          help="net.ipv4.tcp_retries2 in the client's namespace", sysctl="net.ipv4.tcp_retries2",
          advice="lower it to 5-8 so a dead peer is dropped in seconds, not 15 minutes", effect=("abort_s",)),
    Param("user_timeout_ms", default=0, min=0, max=600_000, type=int, grid=(0, 3000),
          quick=(0, 3000), help="TCP_USER_TIMEOUT on the socket, ms (0: not set)"),
    Param("rtt_ms", default=50, min=1, max=500, grid=(10, 50), quick=(50,),
          help="round-trip time added by the router, ms"),
]
REPEATS = 3
QUICK_REPEATS = 2
_LATE = Tolerance(abs=0.05, rel=0.13)           # timers fire late, never early
METRICS = [
    Metric("first_retrans_s", "the first retransmission (the loss probe) after the data left",
           _LATE),
    Metric("rto_retrans_s", "the first retransmission by the RTO timer", _LATE),
    Metric("backoff_ratio", "median ratio of successive waits after the first RTO retransmission",
           Tolerance(abs=0.15, rel=0.0, symmetric=True), plot=False),
    Metric("abort_s", "the data's first transmission to ETIMEDOUT", _LATE),
    Metric("retrans_count", "retransmissions before giving up",
           Tolerance(abs=0.0, rel=0.0, symmetric=True), plot=False),
]
X = "retries2_count"
FIGURE = Schedule("How soon is unanswered data sent again, and when does the connection give up?",
                  event="retransmission", end="recv() fails (ETIMEDOUT)")
PORT = 7301
WARM_WRITES, WARM_GAP_S = 4, 0.1


def lab_sysctls(params: dict) -> dict:
    return {"h1": {"net.ipv4.tcp_retries2": str(int(params["retries2_count"]))}}


def schedule(params: dict, kernel: dict) -> tuple[list[float], float]:
    r = float(params["rtt_ms"]) / 1e3
    rto = nominal_rto_ms(r * 1e3, hz_of(kernel), rto_min_of(kernel)) / 1e3
    user = int(params["user_timeout_ms"]) / 1e3 or None
    return data_schedule(rto, int(params["retries2_count"]), user, loss_probe_s(r, rto))


def predict(params: dict, kernel: dict) -> dict:
    times, fail = schedule(params, kernel)
    return {"first_retrans_s": times[0], "rto_retrans_s": times[1], "backoff_ratio": 2.0,
            "abort_s": fail, "retrans_count": float(len(times))}


def note(entry: dict) -> str:
    p = entry["params"]
    given = f"TCP_USER_TIMEOUT {int(p['user_timeout_ms']) / 1e3:g} s" if int(p["user_timeout_ms"]) \
        else f"tcp_retries2 = {p['retries2_count']}: model {model_timeout_s(int(p['retries2_count'])):g} s"
    return f"{given} from the first RTO retransmission; the course's 1 s is the SYN's, not data's"


def prepare(lab, params: dict, ctx) -> None:
    ctx.state.tap = partition.start(lab, PORT)


def trial(lab, params: dict, ctx) -> dict:
    user = int(params["user_timeout_ms"]) or None
    failed_at, events = tapped({"h1": ctx.state.tap}, lambda: until_dead(
        lab["h1"], lab["h2"], PORT, user_timeout_ms=user, write=b"d" * 100,
        warm_writes=WARM_WRITES, warm_gap_s=WARM_GAP_S, wait_s=1200.0))
    data = [e.ts for e in events["h1"] if e.out and e.seg.proto == 6 and e.seg.dport == PORT
            and len(e.seg.payload) == 100]
    if len(data) < 3:
        raise LabError(f"the tap saw {len(data)} transmissions of the 100 B, expected >= 3")
    t0 = data[0]
    times = [t - t0 for t in data[1:]]
    waits = [b - a for a, b in zip(times[1:], times[2:], strict=False)]
    ratios = [b / a for a, b in zip([times[1] - times[0], *waits], waits, strict=False)]
    if not ratios:
        raise LabError(f"retransmissions at {times}: too few to measure the backoff")
    nominal, nominal_fail = schedule(params, ctx.kernel)
    ctx.raw.write_text("schedule.jsonl", json.dumps({
        "repeat": ctx.repeat, "events": times, "end": failed_at - t0, "predicted": nominal,
        "predicted_end": nominal_fail}) + "\n")
    return {"first_retrans_s": times[0], "rto_retrans_s": times[1],
            "backoff_ratio": statistics.median(ratios),
            "abort_s": failed_at - t0, "retrans_count": float(len(times))}
