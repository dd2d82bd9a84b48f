"""[41] openflow_reactive_flow_setup: under a reactive controller the first packets of a
conversation go through the controller at every switch on the path; later ones are
switched by the flows it installed, until those idle out.

SwitchLine(switches=N = switches_count) as an OpenFlow lab: h1 - s1 - ... - sN - h2, every bridge
OpenFlow 1.3 with the learning switch (controllers/learning_switch.py, flows idle out
after IDLE_S) on OVS's userspace datapath.  The hosts know each other's MACs (no ARP), and
the switch namespace sends no IPv6, so the only frames are the probe's.  Each trial: the
controller forgets (every switch back to its table-miss flow, tables empty) and, SPACING_S
later (the datapath's cached flows gone), h1 sends 4
ICMP echoes to h2, SPACING_S apart, then one more after IDLE_GAP_S of silence.  Per
exchange (request and reply): the IPv4 packet-ins the controller counted, and the round
trip.  The model (tests/unit/test_controllers_learning_switch.py walks it through the
logic): 2N packet-ins (the request flooded at every switch, the reply installing a flow at
each), then N (the request's flows), then none; 2N again once the flows have idled out
(the tables still know both hosts).  Exchanges are SPACING_S apart, more than OVS's
max-revalidator (500 ms): closer, the datapath's cached upcall keeps sending to the
controller after the flow is in, and a cached flow keeps forwarding after the controller
deleted it (the sidecar has the numbers).
"""
from __future__ import annotations

import statistics
import time

from wirelab.errors import LabError
from wirelab.lab.openflow import OpenFlowLab
from wirelab.peers.ping import echo
from wirelab.spec import Bars, Metric, Param, Tolerance
from wirelab.spec.metrics import REPORTED
from wirelab.topologies.switch_line import MAX_SWITCHES, SwitchLine

ID = "openflow_reactive_flow_setup"
ALIASES = ("reactive_flow_setup",)
CLAIM = ("Under a reactive controller a new conversation's first packets visit the controller at "
         "every switch (2N, then N packet-ins); later ones do not, until the flows idle out")
SECTION = "not in the course: issue F8, controllers on the Ryu API (reactive flow setup)"
TEXT_SAYS = "the cost of reactive flow setup (first packet against later ones)"
TOPOLOGY = SwitchLine
NEEDS: set[str] = set()
TOOLS = ("ovs-vswitchd",)
PARAMS = [
    Param("switches_count", default=2, min=1, max=MAX_SWITCHES, type=int, grid=(1, 2, 3, 4), quick=(1, 3),
          help="switches on the path between h1 and h2"),
]
REPEATS, QUICK_REPEATS = 3, 1
IDLE_S, SPACING_S, IDLE_GAP_S, EXCHANGES = 2, 0.7, 4.5, 4
_EXACT = Tolerance(abs=0.0, rel=0.0, symmetric=True)
METRICS = [
    Metric("first_trips_count", "packet-ins of the first exchange (cold tables)", _EXACT),
    Metric("second_trips_count", "packet-ins of the second exchange", _EXACT),
    Metric("later_trips_count", "packet-ins of exchanges 3 and 4", _EXACT),
    Metric("idle_trips_count", f"packet-ins of the exchange after {IDLE_GAP_S:g} s of silence", _EXACT),
    Metric("first_rtt_ms", "round trip of the first exchange", REPORTED, plot=False),
    Metric("warm_rtt_ms", "round trip of exchanges 3 and 4 (no controller)", REPORTED, plot=False),
    Metric("trip_ms", "(first - warm round trip) / packet-ins of the first exchange: "
           "one visit to the controller, user-space time", REPORTED, plot=False),
]
X = "switches_count"
FIGURE = Bars("How many times do a new conversation's packets visit the controller?", (
    ("1st exchange (cold)", "first_trips_count"), ("2nd exchange", "second_trips_count"),
    ("3rd and 4th", "later_trips_count"), (f"after {IDLE_GAP_S:g} s idle", "idle_trips_count")),
    x="switches_count", unit="count", ylabel="packet-ins", labels={str(n): f"{n} switch{'es' * (n > 1)}"
                                                            for n in range(1, MAX_SWITCHES + 1)},
    notes=(("trip_ms", "{value:.1f} ms a visit"),))
APP = "wirelab.controllers.learning_switch_app"


def topology_params(params: dict) -> dict:
    return {"switches": params["switches_count"]}


def build_lab(topo, params: dict, **kwargs) -> OpenFlowLab:
    return OpenFlowLab(topo, APP, config={"idle_timeout_s": IDLE_S}, **kwargs)


def predict(params: dict, kernel: dict) -> dict:
    n = float(params["switches_count"])
    return {"first_trips_count": 2 * n, "second_trips_count": n, "later_trips_count": 0.0,
            "idle_trips_count": 2 * n}


def prepare(lab, params: dict, ctx) -> None:
    lab["h1"].know(lab["h2"])
    lab["h2"].know(lab["h1"])


def _ipv4_packet_ins(lab) -> int:
    status = lab.controller.request({"op": "status"})
    return sum(by_type.get("0x0800", 0) for by_type in status["packet_ins"].values())


def _exchange(lab, seq: int) -> tuple[int, float]:
    """One echo h1 -> h2 and back: (its packet-ins, its round trip in ms)."""
    before = _ipv4_packet_ins(lab)
    rtt = echo(lab["h1"], lab["h2"].ip(), 2.0, seq)
    if rtt is None:
        raise LabError(f"echo {seq} from h1 to h2 got no answer in 2 s")
    return _ipv4_packet_ins(lab) - before, rtt


def trial(lab, params: dict, ctx) -> dict:
    lab.controller.request({"op": "forget"})
    time.sleep(SPACING_S)       # the datapath drops its cached flows when it revalidates
    out = []
    for k in range(EXCHANGES):
        t = time.monotonic()
        out.append(_exchange(lab, k))
        time.sleep(max(0.0, t + SPACING_S - time.monotonic()))
    time.sleep(IDLE_GAP_S - SPACING_S)
    idle = _exchange(lab, EXCHANGES)
    ctx.raw.write_text("exchanges.csv", "".join(f"{ctx.repeat},{k},{n},{rtt:.3f}\n"
                                                for k, (n, rtt) in enumerate([*out, idle])))
    warm = statistics.median(rtt for _, rtt in out[2:])
    return {"first_trips_count": float(out[0][0]), "second_trips_count": float(out[1][0]),
            "later_trips_count": float(sum(n for n, _ in out[2:])), "idle_trips_count": float(idle[0]),
            "first_rtt_ms": out[0][1], "warm_rtt_ms": warm,
            "trip_ms": (out[0][1] - warm) / max(1, out[0][0])}
