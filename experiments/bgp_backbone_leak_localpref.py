"""[34] bgp_backbone_leak_localpref: Cloudflare's outage of 2020-07-17 as it happened.  ATL (a
route reflector in bgp_pops' FRR backbone) exports only its site /24 (term 10, local-pref 200)
and the transit's prefix; the mis-edit deletes term 10's prefix-list match, so every route
leaves ATL with local-pref 200 and all inter-PoP traffic crosses ATL's thin (tbf) links.  Two
TCP flows h-ewr -> h-sjc, h-ord are paced by schedule (what a socket cannot take is shed); the
six PoP pairs' FIB next hops are read every 0.05 s.  The sidecar says more."""
from __future__ import annotations

import contextlib
import math
import socket
import threading
import time

from pyroute2.netlink.exceptions import NetlinkError

from wirelab.lab import faults
from wirelab.lab.wait import poll
from wirelab.measure import series
from wirelab.peers import frr
from wirelab.spec import Choice, Metric, Param, Timeline, Tolerance
from wirelab.topologies.bgp_pops import BgpPops

ID = "bgp_backbone_leak_localpref"
CLAIM = ("A backbone router that leaks every route with local-pref 200 pulls all inter-PoP "
         "traffic onto its own links; a maximum-prefix limit or a lower local-pref undoes it")
SECTION = "§10 Cloudflare DNS outage (July 2020)"
TEXT_SAYS = ("Cloudflare accidentally withdrew their BGP route for 1.1.1.1 (their DNS resolver) ... "
             "For 27 minutes, ~15% of Cloudflare's traffic was unreachable")
TOPOLOGY, TOPOLOGY_PARAMS = BgpPops, ()
NEEDS, FIXES = {"tbf"}, ("max_prefix", "local_pref")
PARAMS = [
    Choice("fix", FIXES, default="max_prefix", grid=FIXES, quick=FIXES, help="max-prefix, or local-pref 50"),
    Param("offered_mbps", 20, 1, 45, grid=(20,), quick=(20,), help="each flow's offered payload, Mbit/s"),
    Param("thin_mbps", 10, 1, 50, grid=(10,), quick=(10,), help="tbf rate of ATL's backbone links, Mbit/s"),
    Param("leak_s", 30, 10, 600, grid=(30,), quick=(12,), help="how long the leak runs before the fix, s"),
    Param("rmap_delay_s", 5, 1, 60, type=int, grid=(5,), quick=(5,), help="FRR's route-map delay, s"),
]
REPEATS, QUICK_REPEATS = 3, 1
_RATE, _TIMER = Tolerance(abs=0.0, rel=0.05, symmetric=True), Tolerance(abs=1.0, rel=0.0, below=0.1)
METRICS = [
    Metric("atl_path_pct", "PoP pairs via ATL (FIB) before the fix", Tolerance(0.0, 0.0, symmetric=True)),
    Metric("leak_onset_s", "from ATL's mis-edit to every pair routed via ATL", _TIMER),
    Metric("before_goodput_mbps", "both flows' goodput before the leak", _RATE),
    Metric("leak_goodput_mbps", "goodput while leaked: C_ATL", Tolerance(0.0, 0.15, symmetric=True)),
    Metric("leak_loss_pct", "offered, not delivered, while leaked", Tolerance(4.0, 0.0, symmetric=True)),
    Metric("recovery_s", "from the fix to every pair routed directly again", _TIMER),
    Metric("after_goodput_mbps", "both flows' goodput once recovered", _RATE),
]
X = "fix"
FIGURE = Timeline("What does a local-pref 200 leak at one PoP do to the backbone?", panels=(
    ("goodput_kbit_per_s", "goodput, both flows [kbit/s]"), ("atl_path_pct_p50", "PoP pairs via ATL [%]")),
    labels={"max_prefix": "fix: maximum-prefix 2", "local_pref": "fix: local-pref 50"},
    limits=(("goodput_kbit_per_s", 10_000 * 1448 / 1514, "C_ATL at 10 Mbit/s (payload)"),))
POPS, SRC, DSTS = ("sjc", "ord", "ewr"), "ewr", ("sjc", "ord")
SITE_LOCAL, TRANSIT = ("10.2.0.0/24",), ("198.51.100.0/24",)
MAX_PREFIX, FIX_LP, BACKBONE_MBPS = len(SITE_LOCAL) + len(TRANSIT), 50, 100
PRE_S, TAIL_S, SETTLE_S, PORT = 4.0, 6.0, 2, 5201
T10, MATCH, BGP, LP200 = ("route-map EXPORT permit 10", "match ip address prefix-list SITE-LOCAL",
                          "router bgp 65000", "set local-preference 200")


def predict(params: dict, kernel: dict) -> dict:
    offered = len(DSTS) * float(params["offered_mbps"])
    ts = kernel["sysctls"].get("net.ipv4.tcp_timestamps", "1") != "0"
    c = float(params["thin_mbps"]) * (kernel["mtu"] - 40 - 12 * ts) / (kernel["mtu"] + 14)
    delay = float(params["rmap_delay_s"])
    return {"atl_path_pct": 100.0, "leak_onset_s": delay, "before_goodput_mbps": offered,
            "leak_goodput_mbps": c, "leak_loss_pct": 100.0 * (1.0 - c / offered),
            "recovery_s": 0.0 if params["fix"] == "max_prefix" else delay, "after_goodput_mbps": offered}


def note(entry: dict) -> str:
    m = {k: 0.0 for k in ("leak_goodput_mbps", "leak_loss_pct", "recovery_s")} | entry["measured"]
    return (f"leaked: {m['leak_goodput_mbps']:.2f} Mbit/s delivered, {m['leak_loss_pct']:.0f}% lost "
            f"(Cloudflare: ~50%); direct {m['recovery_s']:.2f} s after the fix (Cloudflare: 27 min)")


def _vty(lab, st, node: str, *lines: str) -> str:
    return frr.vty(lab[node], st["dirs"][node], *lines)


def _via_atl(lab, st, a: str, dst: str) -> bool:
    try:
        return lab[a].ipr.route("get", dst=dst)[0].get_attr("RTA_GATEWAY") == st["atl"][a]
    except NetlinkError:       # no route (ENETUNREACH): not via ATL; anything else is a fault
        return False


def _via_atl_pct(lab, st) -> float:       # of the PoP pairs
    return 100.0 * sum(_via_atl(lab, st, a, st["host"][b]) for a, b in st["pairs"]) / len(st["pairs"])


def prepare(lab, params: dict, ctx) -> dict:
    names = ("sjc", "atl", "ord", "ewr")
    for a, b in ((a, b) for a in names for b in names if a != b):
        lab.shape_toward(a, b, bw_mbps=float(params["thin_mbps"]) if "atl" in (a, b) else BACKBONE_MBPS)
    lab.shape_toward("h-ewr", "ewr", bw_mbps=BACKBONE_MBPS)      # bounds the generator
    st = {"dirs": {n: frr.start(lab, n, lab.topo.nodeInfo(n)["frr"]) for n in (*names, "transit")},
          "atl": {p: lab["atl"].egress(p).ip.split("/")[0] for p in POPS},
          "host": {p: lab[f"h-{p}"].ip() for p in POPS},
          "pairs": [(a, b) for a in POPS for b in POPS if a != b]}
    cmds = ["configure terminal", f"bgp route-map delay-timer {params['rmap_delay_s']}",
            *(f"ip prefix-list SITE-LOCAL seq {5 + 5 * i} permit {n}" for i, n in enumerate(SITE_LOCAL)),
            *(f"ip prefix-list TRANSIT seq {5 + 5 * i} permit {n}" for i, n in enumerate(TRANSIT)),
            T10, MATCH, LP200, "exit", "route-map EXPORT permit 20",
            "match ip address prefix-list TRANSIT", "exit", BGP, "bgp route-reflector allow-outbound-policy",
            "address-family ipv4 unicast"]
    nb = ("route-reflector-client", "next-hop-self force", "route-map EXPORT out")
    _vty(lab, st, "atl", *cmds, *(f"neighbor {lab[p].egress('atl').ip.split('/')[0]} {x}" for p in POPS
                                  for x in nb))
    return st


def _change(lab, st, kind: str, times: dict, t0: float):
    """Apply the leak or a fix (KIND) as vtysh edits; return the edits that undo it."""
    cfg, conf = [BGP, "address-family ipv4 unicast"], "configure terminal"
    do, undo = {   # {node: vtysh lines} each
        "leak": ({"atl": [T10, f"no {MATCH}"]}, {"atl": [conf, T10, MATCH]}),
        "local_pref": ({"atl": [T10, f"set local-preference {FIX_LP}"]}, {"atl": [conf, T10, LP200]}),
        "max_prefix": ({p: [*cfg, f"neighbor {st['atl'][p]} maximum-prefix {MAX_PREFIX}"] for p in POPS},
                       {p: [conf, *cfg, f"no neighbor {st['atl'][p]} maximum-prefix", "end",
                            f"clear bgp {st['atl'][p]}"] for p in POPS})}[kind]
    times["show"] = _vty(lab, st, "sjc", "show ip bgp")          # before the fix: the leak as sjc saw it
    times[kind if kind == "leak" else "fix"] = time.monotonic() - t0
    for node, lines in do.items():
        _vty(lab, st, node, conf, *lines)
    return lambda: [_vty(lab, st, n, *ls) for n, ls in undo.items()]


def _workload(lab, st, params, s: series.Series, stop: threading.Event, log: list):
    def receive(conn):
        left = 0
        while data := conn.recv(65536):
            k, left = divmod(left + len(data), 125)         # 125 bytes: 1 kbit
            s.count("goodput_kbit", n=k)

    def send(conns):
        rate, t0, due = float(params["offered_mbps"]) * 1000.0, time.monotonic(), 0
        while not stop.wait(0.002):
            k = int((time.monotonic() - t0) * rate) - due
            due += k
            s.count("offered_kbit", n=len(conns) * k)
            for c in conns:
                with contextlib.suppress(BlockingIOError):
                    c.send(bytes(125 * k))     # shed what the socket cannot take now
        list(map(socket.socket.close, conns))       # the receivers see EOF

    def watch():
        while not stop.wait(0.05):
            log.append((time.monotonic() - s.t0, pct := _via_atl_pct(lab, st)))
            s.value("atl_path_pct", pct)
    socks, jobs = [], [(watch, ())]
    for d in DSTS:
        srv, cli = lab[f"h-{d}"].socket(), lab[f"h-{SRC}"].socket()
        srv.bind((st["host"][d], PORT))
        srv.listen(1)
        cli.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)   # a small backlog
        cli.connect((st["host"][d], PORT))
        socks += [cli, srv, srv.accept()[0]]
        cli.setblocking(False)
        jobs.append((receive, (socks[-1],)))
    jobs.append((send, (socks[0::3],)))
    return socks, [threading.Thread(target=f, args=a, daemon=True) for f, a in jobs]


def trial(lab, params: dict, ctx) -> dict:
    st = ctx.state
    poll(lambda: _via_atl_pct(lab, st) == 0.0 and all(_via_atl(lab, st, p, "10.2.0.10") for p in POPS), 60,
         "every PoP pair direct, ATL's /24 via ATL")
    fix_at, end = PRE_S + params["leak_s"], PRE_S + params["leak_s"] + params["rmap_delay_s"] + TAIL_S
    s, stop, log, times = series.Series(1.0), threading.Event(), [], {}    # log: (t, % via ATL)
    timeline = faults.Timeline([
        faults.Event(t, faults.Action(text, lambda lab, k=k: _change(lab, st, k, times, s.t0)))
        for t, k, text in ((PRE_S, "leak", "ATL: EXPORT term 10 matches every route"),
                           (fix_at, params["fix"], f"fix: {params['fix']}"))])
    socks, threads = _workload(lab, st, params, s, stop, log)
    try:
        with faults.Player(lab, timeline) as pl:
            s.start(pl.t0)
            for t in threads:
                t.start()
            stop.wait(end - pl.now())
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        list(map(socket.socket.close, socks))
    series.write(ctx.raw, ctx.repeat, s, end, pl)
    ctx.raw.write_text("sjc_bgp_leaked.txt", f"# trial {ctx.repeat}\n{times.get('show', '')}")
    onset = next(t for t, p in log if t >= times["leak"] and p == 100.0) - times["leak"]
    recovery = next(t for t, p in log if t >= times["fix"] and p == 0.0) - times["fix"]
    # judged from SETTLE_S after a path change: TCP moves to the new path (loss recovery, backlogs)
    a, b = math.ceil(times["leak"] + onset) + SETTLE_S, math.floor(times["fix"])
    c = math.ceil(times["fix"] + recovery) + SETTLE_S
    got, offered = s.rate("goodput_kbit", a, b), s.rate("offered_kbit", a, b)
    return {"atl_path_pct": [p for t, p in log if t < times["fix"]][-1], "leak_onset_s": onset,
            "before_goodput_mbps": s.rate("goodput_kbit", 1, PRE_S) / 1000.0,
            "leak_goodput_mbps": got / 1000.0, "leak_loss_pct": 100.0 * (1.0 - got / offered),
            "recovery_s": recovery, "after_goodput_mbps": s.rate("goodput_kbit", c, math.floor(end)) / 1000.0}
