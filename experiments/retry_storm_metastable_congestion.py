"""[36] retry_storm_metastable_congestion: a surge pushes a service into overload; whether it
comes back when the surge ends depends on what the clients' retries offer meanwhile.

Clients c1..cN send new requests (UDP) at new_per_s to srv through r1, a device of
device_mbps (tbf).  srv serves mu_per_s from a FIFO of queue_count without deadlines
(wirelab.peers.queue_service: it also serves requests whose clients gave up).  Each attempt
times out after timeout_ms; the policy retries (wirelab.peers.retry_clients).  The fault
timeline: after WARM_S, a surge of surge_x the new requests for surge_s; then observe_s.
A monitor beside the clients (through r1) and one over its own link to srv probe a
health answer 20 times a second.  Judged over the second half of the observation window:
goodput and offered load against wirelab.models.metastable, the monitors' loss; for a
policy that recovers, when goodput came back (>= 90% of new_per_s for 3 s).  Host kernel
(tbf only); the service and the clients are bounded by the parameters and the duration.
"""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time

from wirelab.errors import BadInput, LabError
from wirelab.lab import faults
from wirelab.measure import series
from wirelab.models import metastable as ms
from wirelab.peers.retry_clients import POLICIES, Clients, Policy
from wirelab.spec import REPORTED, Choice, Metric, Param, Timeline, Tolerance
from wirelab.topologies.retry_storm import RetryStorm

ID = "retry_storm_metastable_congestion"
ALIASES = ("retry_storm",)
CLAIM = ("A surge ends but immediate retries keep the service failing (metastable); backoff alone "
         "does not help open-loop clients, a retry budget does; an in-path monitor loses its view")
SECTION = "§10 AWS us-east-1 outage (December 2021) and its lessons"
TEXT_SAYS = "Retry storms make network congestion WORSE (exponential backoff is essential)"
TOPOLOGY, TOPOLOGY_PARAMS = RetryStorm, ("clients_count", "device_mbps")
NEEDS = {"tbf"}
PARAMS = [
    Choice("policy", POLICIES, default="immediate", grid=POLICIES, quick=POLICIES,
           help="immediate: 3 retries at once; backoff: 5 tries, full jitter; budget: backoff "
                "plus retries <= 10% of new requests"),
    Param("new_per_s", default=250, min=10, max=400, grid=(250,), quick=(250,),
          help="new requests a second (lambda)"),
    Param("mu_per_s", default=400, min=20, max=800, grid=(400,), quick=(400,),
          help="requests the service serves a second"),
    Param("queue_count", default=800, min=10, max=10_000, type=int, grid=(800,), quick=(800,),
          help="the service's FIFO, requests"),
    Param("timeout_ms", default=300, min=50, max=5000, grid=(300,), quick=(300,),
          help="a client's timeout per attempt"),
    Param("surge_x", default=3.0, min=1.0, max=5.0, grid=(3.0,), quick=(3.0,),
          help="new requests during the surge, x lambda"),
    Param("surge_s", default=15.0, min=1.0, max=60.0, grid=(15.0,), quick=(5.0,), help="the surge's length"),
    Param("observe_s", default=60.0, min=10.0, max=300.0, grid=(60.0,), quick=(20.0,),
          help="time watched after the surge"),
    Param("request_bytes", default=1200, min=16, max=1400, type=int, grid=(1200,), quick=(1200,),
          help="a request's UDP payload"),
    Param("device_mbps", default=8.0, min=1.0, max=100.0, grid=(8.0,), quick=(8.0,),
          help="the device's capacity"),
    Param("clients_count", default=4, min=1, max=8, type=int, grid=(4,), quick=(2,), help="client hosts"),
]
REPEATS, QUICK_REPEATS = 2, 1
WARM_S, PORT, RECOVERED, SRV, SRV_OOB = 5.0, 9000, 0.9, "10.0.2.2", "10.0.3.2"
BLIND_RATIO, BLIND_LOST = 0.05, 3        # >= 5% dropped: ~10 of ~200 probes expected lost
_RATIO = Tolerance(abs=0.1, rel=0.0, symmetric=True)
METRICS = [
    Metric("goodput_after_ratio", "goodput over the window's second half / new_per_s", _RATIO),
    Metric("load_after_per_s", "attempts a second then (new + retries)",
           Tolerance(abs=0.0, rel=0.1, symmetric=True)),
    Metric("recovery_s", "from the surge's end until >= 90% of requests succeed, 3 s running",
           Tolerance(abs=2.0, rel=0.0, below=1.0)),
    Metric("device_drop_ratio", "the device's drops / packets offered to it (tbf counters), second half",
           Tolerance(abs=0.05, rel=0.0, symmetric=True)),
    Metric("inpath_blind_count", "1 when the monitor behind the device lost probes (3 or more), else 0",
           Tolerance(abs=0.0, rel=0.0, symmetric=True), plot=False),
    Metric("inpath_loss_ratio", "probes lost by the monitor behind the device, second half", REPORTED),
    Metric("oob_loss_ratio", "probes lost by the out-of-band monitor, second half", _RATIO),
    Metric("queue_at_end_count", "requests waiting at the service when the surge ends",
           Tolerance(abs=0.0, rel=0.02, symmetric=True), plot=False),
]
X = "policy"
FIGURE = Timeline("Does the service come back when the surge ends?", panels=(
    ("goodput_per_s", "in time [req/s]"), ("attempts_per_s", "offered [req/s]"),
    ("queue_p50", "queued [req]"), (("inpath_ok_per_s", "oob_ok_per_s"), "probes answered [/s]\n"
                                    "in-path; dashed: own path")), labels={
        "immediate": "immediate retries (3)", "backoff": "backoff + full jitter (5 tries)",
        "budget": "backoff + 10% retry budget"}, limits=(("goodput_per_s", 50.0, "20% of lambda"),))


def policy_of(params: dict) -> Policy:
    return Policy(str(params["policy"]))


def service(params: dict) -> ms.Service:
    return ms.Service(float(params["mu_per_s"]), int(params["queue_count"]),
                      float(params["timeout_ms"]) / 1000)


def predict(params: dict, kernel: dict) -> dict:
    pol, svc, lam = policy_of(params), service(params), float(params["new_per_s"])
    size, mbps = int(params["request_bytes"]), float(params["device_mbps"])
    device_per_s = mbps * 1e6 / 8 / (size + ms.ETH_IP_UDP_BYTES)
    if device_per_s <= svc.mu_per_s or lam >= svc.mu_per_s:
        raise BadInput(f"the device passes {device_per_s:.0f} requests/s and the service serves "
                       f"{svc.mu_per_s:g}: the device must pass more than the service serves, which "
                       f"must exceed new_per_s {lam:g}")
    load = ms.failed_load(pol.name, lam, pol.retries, pol.tries, pol.budget_ratio)
    out = {"queue_at_end_count": float(svc.queue_max), "oob_loss_ratio": 0.0}
    if ms.metastable(load, svc):
        drop = ms.device_loss(load, size, mbps)
        return out | {"goodput_after_ratio": 0.0, "load_after_per_s": load, "device_drop_ratio": drop,
                      "inpath_blind_count": float(drop >= BLIND_RATIO)}
    return out | {"goodput_after_ratio": 1.0, "load_after_per_s": lam, "device_drop_ratio": 0.0,
                  "inpath_blind_count": 0.0, "recovery_s": ms.recovery_s(load, svc)}


def _stats(proc, s: series.Series) -> None:
    for line in proc.stdout:
        rec = json.loads(line)
        if "queue" in rec:
            s.value("queue", float(rec["queue"]), rec["t"])


def trial(lab, params: dict, ctx) -> dict:
    svc, lam = service(params), float(params["new_per_s"])
    srv = lab["srv"].popen([sys.executable, "-m", "wirelab.peers.queue_service", str(PORT),
                            str(svc.mu_per_s), str(svc.queue_max)], stdout=subprocess.PIPE, text=True)
    lab.undo.push("stop the service", lambda: (srv.kill(), srv.wait()))
    if json.loads(srv.stdout.readline() or "{}").get("ready") is not True:
        raise LabError("the service did not start")
    s, udp = series.Series(bucket_s=1.0), socket.SOCK_DGRAM
    socks = [lab[f"c{i}"].socket(type=udp) for i in range(1, int(params["clients_count"]) + 1)]
    mons = {"inpath": (lab["mon"].socket(type=udp), (SRV, PORT)),
            "oob": (lab["oob"].socket(type=udp), (SRV_OOB, PORT))}
    cl = Clients(socks, (SRV, PORT), policy_of(params), lam_per_s=lam, timeout_s=svc.timeout_s, series=s,
                 request_bytes=int(params["request_bytes"]), monitors=mons, seed=ctx.seed + ctx.repeat)

    def surge(lab):
        cl.surge = float(params["surge_x"])
        return lambda: setattr(cl, "surge", 1.0)
    end_surge = WARM_S + float(params["surge_s"])
    a, b = end_surge + float(params["observe_s"]) / 2, end_surge + float(params["observe_s"])
    surge_event = faults.Event(WARM_S, faults.Action(f"surge: new requests x{params['surge_x']:g}", surge),
                               for_s=float(params["surge_s"]))
    tbf: list[tuple[int, int]] = []
    try:
        with faults.Player(lab, faults.Timeline([surge_event])) as player:
            s.start(player.t0)
            threads = [threading.Thread(target=fn, args=args, daemon=True) for fn, args in (
                (_stats, (srv, s)), (_device, (lab["r1"], s, (a, b), tbf)))]
            for t in threads:
                t.start()
            cl.run(b)
            threads[1].join(10.0)           # the device's counters, read at b
    finally:
        for k in (*socks, *(m[0] for m in mons.values())):
            k.close()
        srv.kill()
        srv.wait()
    series.write(ctx.raw, ctx.repeat, s, b, player)
    if len(tbf) != 2:
        raise LabError(f"the device's counters were read {len(tbf)} times, not at {a:g} s and {b:g} s")
    (sent0, drop0), (sent1, drop1) = tbf
    out = {"device_drop_ratio": (drop1 - drop0) / max(1, sent1 - sent0 + drop1 - drop0),
           "goodput_after_ratio": s.rate("goodput", a, b) / lam, "load_after_per_s": s.rate("attempts", a, b),
           "queue_at_end_count": max(s.values("queue", end_surge - 1.0, end_surge) or [0.0])}
    for m in ("inpath", "oob"):
        sent = s.rate(f"{m}_sent", a, b)
        out[f"{m}_loss_ratio"] = 1.0 - s.rate(f"{m}_ok", a, b) / sent if sent else 1.0
    lost = (s.rate("inpath_sent", a, b) - s.rate("inpath_ok", a, b)) * (b - a)
    out["inpath_blind_count"] = float(lost >= BLIND_LOST)
    if "recovery_s" in ctx.predicted:
        out["recovery_s"] = _recovered(s, end_surge, b)
    return out


def _device(r1, s: series.Series, at: tuple[float, float], out: list) -> None:
    """The device's tbf counters (packets sent, dropped) at the times AT (from s's start)."""
    for t in at:
        time.sleep(max(0.0, s.t0 + t - time.monotonic()))
        text = r1.run(["tc", "-s", "qdisc", "show", "dev", "r1-eth1"]).stdout
        m = re.search(r"Sent \d+ bytes (\d+) pkt \(dropped (\d+)", text)
        if m:
            out.append((int(m.group(1)), int(m.group(2))))


def _recovered(s: series.Series, start: float, end: float) -> float:
    """Seconds from START until RECOVERED of the requests settled in a second (answered in
    time, or given up) succeed, 3 seconds running (END - START: never).  A share, not a rate:
    Poisson arrivals make a second's count wander by sqrt(lambda)."""
    t = start
    while t + 3 <= end:
        ok = [s.rate("goodput", t + k, t + k + 1) for k in range(3)]
        bad = [s.rate("failed", t + k, t + k + 1) for k in range(3)]
        if all(g > 0 and g / (g + f) >= RECOVERED for g, f in zip(ok, bad, strict=True)):
            return t - start
        t += 1.0
    return end - start
