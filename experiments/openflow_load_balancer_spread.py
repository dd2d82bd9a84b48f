"""[43] openflow_load_balancer_spread: an L4 load balancer in the controller
(controllers/load_balancer.py) puts every connection to its virtual IP on the backend
its policy names; round robin spreads N connections over k backends to within one, a
hash of the client's address and source port spreads them like N fair dice.

Dumbbell(pairs=2) as an OpenFlow lab: the client h1 and the backend h2 on s1, backends h3
and h4 on s2 (k = 3), each backend with the MAC the controller was given and a server
on BACKEND_PORT that answers with its own name.  Each trial: the controller resets (no
connection known, the rotation at its first backend), and SPACING_S later (the datapath's
cached flows gone) h1 opens N connections to VIP:80 one after another and reads each
answer.  Judged: connections not answered by the backend the policy names (the hash of
the source port the kernel picked; the next in turn), 0; for round robin the gap between
the busiest and the idlest backend, exact (1 if k does not divide N, else 0); for the
hash, Pearson's chi-square of the counts against N/k each, which for fair dice follows
chi-square with k - 1 = 2 degrees of freedom (an exponential of mean 2): median 2 ln 2,
and the band is its 0.1%-99.9% range.
"""
from __future__ import annotations

import math
import socket
import time

from wirelab.controllers.load_balancer import pick_hash
from wirelab.errors import LabError
from wirelab.lab.openflow import OpenFlowLab
from wirelab.peers.listener import Listener
from wirelab.spec import Bars, Choice, Metric, Param, Tolerance
from wirelab.spec.metrics import REPORTED
from wirelab.topologies.dumbbell import Dumbbell

ID = "openflow_load_balancer_spread"
ALIASES = ("lb_spread",)
CLAIM = ("An L4 load balancer keeps each connection on the backend its policy names: round robin "
         "spreads N connections to within one, a hash of the source port like N fair dice")
SECTION = "not in the course: issue F8, controllers on the Ryu API (an L4 load balancer)"
TEXT_SAYS = "the load balancer's spread"
TOPOLOGY = Dumbbell
NEEDS: set[str] = set()
TOOLS = ("ovs-vswitchd",)
POLICIES = ("hash", "round_robin")
PARAMS = [
    Choice("policy", POLICIES, default="hash", grid=POLICIES, quick=POLICIES,
           help="how the controller picks a connection's backend"),
    Param("connections_count", default=30, min=3, max=300, type=int, grid=(10, 30, 100), quick=(31,),
          help="connections per trial (N)"),
]
REPEATS, QUICK_REPEATS = 3, 1
BACKENDS = ("h2", "h3", "h4")
VIP, VPORT, BACKEND_PORT, SPACING_S = "10.0.0.100", 80, 8080, 0.7
_EXACT = Tolerance(abs=0.0, rel=0.0, symmetric=True)
_DF = len(BACKENDS) - 1                     # 2: chi-square is exponential, quantile -2 ln(1 - q)
_CHI2_MEDIAN = 2 * math.log(2)
_CHI2 = Tolerance(abs=-2 * math.log(0.001) - _CHI2_MEDIAN, rel=0.0, below=_CHI2_MEDIAN)
METRICS = [
    Metric("misplaced_count", "connections not answered by the backend the policy names", _EXACT),
    Metric("gap_count", "busiest minus idlest backend's connections (round robin)", _EXACT),
    Metric("chi2_ratio", "Pearson's chi-square of the counts against N/k (hash)", _CHI2, plot=False),
    *[Metric(f"{h}_count", f"connections {h} served", REPORTED) for h in BACKENDS],
    Metric("strays_count", "non-SYN packets of connections the controller had not placed (dropped)",
           REPORTED, plot=False),
]
X = "policy"
FIGURE = Bars("How evenly does the load balancer spread connections?",
              tuple((f"backend {h}", f"{h}_count") for h in BACKENDS) + (("busiest - idlest", "gap_count"),),
              x="policy", unit="count", ylabel="connections",
              labels={"hash": "hash of the source port", "round_robin": "round robin"},
              notes=(("chi2_ratio", "chi-square {value:.2f} (fair dice: median 1.39)"),))
APP = "wirelab.controllers.load_balancer_app"


def _mac(h: str) -> str:
    return f"02:00:00:00:01:0{h[1:]}"


def topology_params(params: dict) -> dict:
    return {"pairs": 2}


def build_lab(topo, params: dict, **kwargs) -> OpenFlowLab:
    config = {"vip": VIP, "port": VPORT, "policy": params["policy"],
              "backends": [{"ip": f"10.0.0.{h[1:]}", "mac": _mac(h), "port": BACKEND_PORT} for h in BACKENDS]}
    return OpenFlowLab(topo, APP, config=config, **kwargs)


def predict(params: dict, kernel: dict) -> dict:
    if params["policy"] == "hash":
        return {"misplaced_count": 0.0, "chi2_ratio": _CHI2_MEDIAN}
    return {"misplaced_count": 0.0, "gap_count": float(params["connections_count"] % len(BACKENDS) != 0)}


class _Named(Listener):
    """Answers every connection with its host's name, then closes."""

    def __init__(self, node, port: int):
        self.name_bytes = node.name.encode()
        super().__init__(node, port, name=f"backend {node.name}")

    def handle(self, conn: socket.socket) -> None:
        conn.sendall(self.name_bytes)


def prepare(lab, params: dict, ctx) -> None:
    for h in BACKENDS:          # the controller knows its backends by these MACs
        lab[h].ipr.link("set", index=lab[h].intf().index, address=_mac(h))
        server = _Named(lab[h], BACKEND_PORT)
        lab.undo.push(f"stop the server on {h}", server.close)


def _fetch(node) -> tuple[int, str]:
    with node.socket() as s:
        s.settimeout(3.0)
        s.connect((VIP, VPORT))
        port, data = s.getsockname()[1], b""
        while chunk := s.recv(64):
            data += chunk
    return port, data.decode()


def trial(lab, params: dict, ctx) -> dict:
    lab.controller.request({"op": "reset"})
    time.sleep(SPACING_S)
    client, n, k = lab["h1"], int(params["connections_count"]), len(BACKENDS)
    served: list[tuple[int, str]] = []
    for _ in range(n):
        try:
            served.append(_fetch(client))
        except OSError as e:
            raise LabError(f"connection {len(served) + 1} to {VIP}:{VPORT} failed: {e}") from e
    if params["policy"] == "hash":
        named = [BACKENDS[pick_hash(client.ip(), port, k)] for port, _ in served]
    else:
        named = [BACKENDS[i % k] for i in range(n)]
    pairs = list(zip(served, named, strict=True))
    ctx.raw.write_text("connections.csv", "".join(f"{ctx.repeat},{port},{got},{want}\n"
                                                  for (port, got), want in pairs))
    counts = {h: sum(got == h for _, got in served) for h in BACKENDS}
    strays = lab.controller.request({"op": "status"})["strays"]
    row: dict = {"misplaced_count": float(sum(got != want for (_, got), want in pairs)),
                 "strays_count": float(strays), **{f"{h}_count": float(c) for h, c in counts.items()}}
    if params["policy"] == "hash":
        row["chi2_ratio"] = sum((c - n / k) ** 2 / (n / k) for c in counts.values())
    else:
        row["gap_count"] = float(max(counts.values()) - min(counts.values()))
    return row
