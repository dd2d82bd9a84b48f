"""[42] openflow_controller_failure_fail_mode: what traffic does when the OpenFlow
controller dies.  Fail-mode secure keeps the flows it has and admits no new one, for
good; standalone turns into a plain learning switch once the controller has been gone
for 3 inactivity probes.

Dumbbell(pairs=2) as an OpenFlow lab: h1, h2 on s1, h3, h4 on s2, both bridges OpenFlow
1.3 with the learning switch (controllers/learning_switch.py) on OVS's userspace
datapath, fail_mode secure or standalone, inactivity_probe probe_s.  Hosts know each
other's MACs (no ARP).  Each trial: the controller forgets everything, h1 and h3 exchange
3 echoes (their flows installed); then a fault timeline kills (SIGKILL) or pauses
(SIGSTOP) the controller at WARM_S, and every 0.1 s h1 pings h3 (an established flow) and
h2 pings h4 (a new flow, its first packet after the fault) until 3 x probe_s + TAIL_S
after it.  Open vSwitch fails open when no controller has spoken to it for 3 probe
intervals, counted in whole seconds from the last message it had from it (rconn's
last_admitted; ofproto/fail-open.c): it then flushes every flow and forwards with NORMAL.
So the controller's last word is made the fault's instant: a barrier to every switch,
answered, just before the signal.
"""
from __future__ import annotations

import datetime as dt
import itertools
import re
import time

from wirelab.errors import LabError
from wirelab.lab import faults
from wirelab.lab.openflow import OpenFlowLab
from wirelab.measure import series
from wirelab.peers.ping import echo
from wirelab.spec import Choice, Metric, Param, Timeline, Tolerance
from wirelab.spec.metrics import REPORTED
from wirelab.topologies.dumbbell import Dumbbell

ID = "openflow_controller_failure_fail_mode"
ALIASES = ("controller_failure",)
CLAIM = ("When the OpenFlow controller dies, fail-mode secure keeps forwarding installed flows "
         "but admits no new one; standalone becomes a learning switch after 3 inactivity probes")
SECTION = "not in the course: issue F8 (controllers on the Ryu API); OVS's fail-mode"
TEXT_SAYS = "what traffic does when the controller dies (fail-mode secure against standalone)"
TOPOLOGY = Dumbbell
NEEDS: set[str] = set()
TOOLS = ("ovs-vswitchd",)
MODES, FAULTS = ("secure", "standalone"), ("kill", "pause")
PARAMS = [
    Choice("fail_mode", MODES, default="secure", grid=MODES, quick=MODES,
           help="what the bridges do without a controller"),
    Choice("fault", FAULTS, default="kill", grid=FAULTS, quick=("kill",),
           help="kill: SIGKILL (the connection closes at once); pause: SIGSTOP (it stays open, silent)"),
    Param("probe_s", default=5, min=5, max=30, type=int, grid=(5, 8), quick=(5,),
          help="the controller's inactivity_probe, s (OVS's floor is 5)"),
]
REPEATS, QUICK_REPEATS = 3, 1
WARM_S, TAIL_S, EVERY_S, WAIT_S = 1.0, 2.0, 0.1, 0.045
# OVS counts the outage in whole seconds (time_now()), so it fails open up to 1 s early,
# and acts when its main loop next wakes (a reconnect attempt each second): up to 1 s
# late, plus the 0.1 s between probes.
_OVS_SECONDS = Tolerance(abs=1.1, rel=0.0, below=1.1)
_EXACT = Tolerance(abs=0.0, rel=0.0, symmetric=True)
METRICS = [
    Metric("new_flow_s", "from the fault to the new pair's first answered echo (standalone)", _OVS_SECONDS),
    Metric("new_answered_count", "new-pair echoes answered after the fault (secure)", _EXACT),
    Metric("kept_lost_count", "established-pair echoes lost after the fault: at most the one in flight "
           "when fail-open flushes the tables (standalone), none in secure", Tolerance(abs=1.0, rel=0.0)),
    Metric("failopen_log_s", "from the fault to OVS's 'failing open' log line", REPORTED, plot=False),
]
X = "fail_mode"
FIGURE = Timeline("The controller dies: which traffic still flows?", panels=(
    ("kept_ok_per_s", "h1-h3, established: echoes answered /s"),
    ("new_ok_per_s", "h2-h4, new: echoes answered /s")), labels={
    "secure": "fail-mode secure", "standalone": "fail-mode standalone"})
APP = "wirelab.controllers.learning_switch_app"
_FAILING_OPEN = re.compile(r"^(\S+)\|\d+\|fail_open\|WARN\|.*failing open", re.M)


def topology_params(params: dict) -> dict:
    return {"pairs": 2}


def build_lab(topo, params: dict, **kwargs) -> OpenFlowLab:
    return OpenFlowLab(topo, APP, fail_mode=params["fail_mode"], inactivity_probe_s=int(params["probe_s"]),
                       **kwargs)


def predict(params: dict, kernel: dict) -> dict:
    if params["fail_mode"] == "secure":
        return {"new_answered_count": 0.0, "kept_lost_count": 0.0}
    return {"new_flow_s": 3.0 * params["probe_s"], "kept_lost_count": 0.0}


def prepare(lab, params: dict, ctx) -> None:
    for a, b in (("h1", "h3"), ("h3", "h1"), ("h2", "h4"), ("h4", "h2")):
        lab[a].know(lab[b])


def _failing_open(lab, after_wall: float) -> float | None:
    """The wall time of OVS's first 'failing open' line after AFTER_WALL, if any."""
    for stamp in _FAILING_OPEN.findall((lab.workdir / "ovs" / "vswitchd.log").read_text()):
        t = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()
        if t >= after_wall:
            return t
    return None


def trial(lab, params: dict, ctx) -> dict:
    ctl = lab.controller
    if ctl.alive():
        ctl.kill()          # a paused one from the last trial
    lab.restart_controller()
    lab.controller.request({"op": "forget"})
    h1, h2, h3, h4 = (lab[h] for h in ("h1", "h2", "h3", "h4"))
    if None in [echo(h1, h3.ip(), 2.0, seq) for seq in range(3)]:
        raise LabError("h1 and h3 did not exchange echoes with the controller up")
    end = WARM_S + 3 * params["probe_s"] + TAIL_S
    s, lost, answered, first = series.Series(0.5), 0, 0, None
    # OVS counts the outage from the last message it had from the controller: make that
    # the instant of the fault (a barrier to every switch, answered, then the signal).
    last_word = faults.Action("controller's last message (a barrier)",
                              lambda lab: (lab.controller.request({"op": "barrier"}), None)[1])
    events = [faults.Event(WARM_S, last_word),
              faults.Event(WARM_S, faults.Signal("controller", params["fault"]))]
    with faults.Player(lab, faults.Timeline(events), registry={"controller": lab.controller.proc}) as pl:
        s.start(pl.t0)
        wall0 = dt.datetime.now(dt.UTC).timestamp() - pl.now()
        for k in itertools.count(1):             # echo k at (k - 1) x EVERY_S
            time.sleep(max(0.0, (k - 1) * EVERY_S - pl.now()))
            if pl.now() >= end:
                break
            after = len(pl.marks) > 1
            if echo(h1, h3.ip(), WAIT_S, k) is not None:
                s.count("kept_ok")
            elif after:
                lost += 1
            if after and echo(h2, h4.ip(), WAIT_S, k) is not None:
                s.count("new_ok")
                answered += 1
                first = first if first is not None else pl.now()
        t_fault = pl.marks[1].t_s if len(pl.marks) > 1 else None
    if t_fault is None:
        raise LabError("the fault never took effect")
    series.write(ctx.raw, ctx.repeat, s, end, pl)
    row: dict = {"kept_lost_count": float(lost)}
    if params["fail_mode"] == "secure":
        row["new_answered_count"] = float(answered)
    else:
        if first is None:
            raise LabError(f"the new pair never got an answer in {end:g} s of standalone")
        row["new_flow_s"] = first - t_fault
    opened = _failing_open(lab, wall0 + t_fault)
    if opened is not None:
        row["failopen_log_s"] = opened - (wall0 + t_fault)
    return row


def check(entry: dict) -> str | None:
    lost = entry["measured"].get("kept_lost_count")
    if entry["params"]["fail_mode"] == "secure" and lost:
        return f"secure mode has no table to flush, yet {lost:g} established echoes were lost"
    return None
