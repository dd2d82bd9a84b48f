"""[06] syn_retransmission_schedule: when a SYN gets no answer, when it is sent again and
when connect() gives up.

Client h1 connects to h2 across r1 (rtt_ms/2 each way); h2's filter DROPs the port, so
nothing ever answers.  A packet tap on h1 stamps every SYN; the client's blocking
connect() is timed until it fails.  Cases:

    sysctl        net.ipv4.tcp_syn_retries = syn_retries in h1's namespace
    syncnt        TCP_SYNCNT = 1 on the socket (overrides the sysctl)
    user_timeout  TCP_USER_TIMEOUT = 2500 ms on the socket (the last wait is clamped to it)

The prediction is the kernel's schedule (wirelab.models.retransmit): 1 s, then doubling,
after ``tcp_syn_linear_timeouts`` linear 1 s steps on 6.5+ kernels (read in the lab; 6.1
has none).  Timers fire late, never early: every SYN inside [nominal, nominal x 1.13 +
0.05 s], the count exact.
"""
from __future__ import annotations

import errno
import json
import socket
import time

from wirelab.errors import LabError
from wirelab.lab import firewall
from wirelab.measure.tap import Tap, tapped
from wirelab.models.retransmit import linear_timeouts, syn_schedule
from wirelab.spec import Choice, Metric, Param, Schedule, Tolerance
from wirelab.topologies.routed_path import RoutedPath

ID = "syn_retransmission_schedule"
ALIASES = ("syn_schedule",)
CLAIM = ("An unanswered SYN is sent again after 1 s, then at doubling intervals; connect() fails "
         "after tcp_syn_retries of them (linear 1 s steps first on kernels 6.5 and later)")
SECTION = "§3 retransmission timeout; §9 set connect timeouts"
TEXT_SAYS = "Initial RTO: ~1 second. Doubles on each retry: 1s -> 2s -> 4s -> 8s -> 16s"
TOPOLOGY = RoutedPath
NEEDS = {"netem"}
CASES = ("sysctl", "syncnt", "user_timeout")
PARAMS = [
    Choice("case", CASES, default="sysctl", grid=CASES, quick=CASES,
           help="what bounds the attempt: the sysctl, TCP_SYNCNT=1, or TCP_USER_TIMEOUT=2500 ms"),
    Param("syn_retries_count", default=6, min=1, max=10, type=int, grid=(2, 3, 6), quick=(2,),
          help="net.ipv4.tcp_syn_retries in the client's namespace", sysctl="net.ipv4.tcp_syn_retries",
          advice="lower it to 2 or 3 so that connect() to a dead address fails in seconds",
          effect=("etimedout_s",)),
    Param("rtt_ms", default=50, min=1, max=1000, grid=(50,), quick=(50,),
          help="round-trip time added by the router, ms"),
]
REPEATS = 3
QUICK_REPEATS = 1
SYNCNT, USER_TIMEOUT_MS = 1, 2500
_LATE = Tolerance(abs=0.05, rel=0.13)          # timers fire late, never early
_EXACT = Tolerance(abs=0.0, rel=0.0, symmetric=True)
METRICS = [
    Metric("etimedout_s", "from connect() to its ETIMEDOUT", _LATE),
    Metric("last_syn_s", "the last SYN's send time after the first", _LATE),
    Metric("syn_count", "SYNs sent (the first and every retransmission)", _EXACT, plot=False),
    Metric("schedule_miss_count", "SYNs outside [nominal, nominal x 1.13 + 0.05 s]", _EXACT,
           plot=False),
]
X = "syn_retries_count"
FIGURE = Schedule("When is an unanswered SYN sent again, and when does connect() give up?", labels={
    "sysctl": "tcp_syn_retries", "syncnt": "TCP_SYNCNT=1", "user_timeout": "TCP_USER_TIMEOUT=2.5 s"})
PORT = 7101


def lab_sysctls(params: dict) -> dict:
    return {"h1": {"net.ipv4.tcp_syn_retries": str(int(params["syn_retries_count"]))}}


def schedule(params: dict, kernel: dict) -> tuple[list[float], float]:
    """The SYN send times and the failure time the kernel's rules give for this case."""
    case, linear = params["case"], linear_timeouts(kernel)
    if case == "syncnt":
        return syn_schedule(SYNCNT, linear)
    retries = int(params["syn_retries_count"])
    return syn_schedule(retries, linear, USER_TIMEOUT_MS / 1e3 if case == "user_timeout" else None)


def predict(params: dict, kernel: dict) -> dict:
    syns, fail = schedule(params, kernel)
    return {"etimedout_s": fail, "last_syn_s": syns[-1], "syn_count": float(len(syns)),
            "schedule_miss_count": 0.0}


def misses(measured: list[float], nominal: list[float]) -> int:
    """SYNs that left early or too late (or are missing, or extra)."""
    late = [n * (1 + _LATE.rel) + _LATE.abs for n in nominal]
    inside = sum(1 for m, n, hi in zip(measured, nominal, late, strict=False) if n - 0.002 <= m <= hi)
    return max(len(measured), len(nominal)) - inside


def prepare(lab, params: dict, ctx) -> None:
    firewall.rule(lab["h2"], "INPUT", "-p", "tcp", "--dport", str(PORT), "-j", "DROP")
    ctx.state.tap = Tap(lab["h1"])
    lab.undo.push("close the tap", ctx.state.tap.close)
    res = lab["h1"].run(["ping", "-c1", "-W2", lab["h2"].ip()], check=False)   # ARP, untimed
    ctx.raw.write_text("warmup.txt", res.stdout)


def _connect(lab, case: str) -> float:
    """Seconds until the blocking connect() fails (ETIMEDOUT expected)."""
    sock = lab["h1"].socket()
    if case == "syncnt":
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, SYNCNT)
    elif case == "user_timeout":
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)
    t0 = time.perf_counter()
    try:
        sock.connect((lab["h2"].ip(), PORT))
        raise LabError(f"connect() to the DROPped port {PORT} succeeded")
    except OSError as e:
        if e.errno != errno.ETIMEDOUT:
            raise LabError(f"connect() failed with {e!r}, not ETIMEDOUT") from e
        return time.perf_counter() - t0
    finally:
        sock.close()


def trial(lab, params: dict, ctx) -> dict:
    fail_s, events = tapped({"h1": ctx.state.tap}, lambda: _connect(lab, params["case"]))
    syns = [e.ts for e in events["h1"] if e.out and e.seg.proto == 6 and e.seg.dport == PORT
            and e.seg.flags & 0x02 and not e.seg.flags & 0x10]
    if not syns:
        raise LabError("the tap saw no SYN")
    times = [t - syns[0] for t in syns]
    nominal, nominal_fail = schedule(params, ctx.kernel)
    ctx.raw.write_text("schedule.jsonl", json.dumps({
        "repeat": ctx.repeat, "events": times, "end": fail_s, "predicted": nominal,
        "predicted_end": nominal_fail}) + "\n")
    return {"etimedout_s": fail_s, "last_syn_s": times[-1], "syn_count": float(len(times)),
            "schedule_miss_count": float(misses(times, nominal))}
