"""[37] memcached_reflection_and_edge_filtering: a 15 B spoofed UDP "get" makes an open
memcached send about 1 MiB to the victim; a flood of them fills the victim's access link,
and only a filter before that link (at the edge router) gives the link back.

Topology memcached_reflection: atk, mc (memcached 1.6, UDP on, lab address only) and web on
router isp (no source validation); vic behind router edge on an access link of access_mbps
(tbf).  Each trial: (1) amplification, byte for byte: atk sends one "get k" (then one naming
k ten times) with vic's address as its source (IP_TRANSPARENT); what atk's interface sent
against what mc's sent, and mc's UDP datagram count, against wirelab.models.reflection.
(2) A timeline: web streams TCP to vic from 0 s; from WARM_S atk sends requests_per_s
spoofed gets for attack_s; the filter (none; vic's INPUT; edge's FORWARD) is in force from
0 s.  Judged: vic's goodput over the attack (from 1 s in) against the access link's rate.
Safety (CLAIMS' rule): lab addresses only, atk's link capped at 1 Mbit/s and mc's at
reflector_mbps (<= 100), every generator bounded in time; memcached listens on 10.0.2.2 only.
"""
from __future__ import annotations

import threading

from wirelab.lab import faults, firewall
from wirelab.measure import series
from wirelab.models import reflection as rf
from wirelab.peers import memcached, stream
from wirelab.spec import Choice, Metric, Param, Timeline, Tolerance
from wirelab.topologies.memcached_reflection import MemcachedReflection

ID = "memcached_reflection_and_edge_filtering"
ALIASES = ("memcached_reflection",)
CLAIM = ("A 15 B spoofed memcached get returns ~1 MiB to the victim (~19,000x on the wire); the "
         "flood fills its access link, and only a filter at the edge, not on the host, gives it back")
SECTION = "§10 GitHub DDoS (February 2018); lesson 3 'rate limiting at the network edge'"
TEXT_SAYS = "A 1KB request can generate a 50MB response aimed at the victim"
TOPOLOGY, TOPOLOGY_PARAMS = MemcachedReflection, ("access_mbps", "reflector_mbps")
NEEDS = {"tbf"}
TOOLS = ("memcached",)
FILTERS = ("none", "host", "edge")
PARAMS = [
    Choice("filter", FILTERS, default="edge", grid=FILTERS, quick=FILTERS,
           help="none; host: vic drops UDP from port 11211 (INPUT); edge: edge drops it (FORWARD)"),
    Param("value_bytes", default=1 << 20, min=1000, max=1 << 20, type=int, grid=(1 << 20,),
          quick=(1 << 20,), help="the stored value, bytes (memcached runs with -I 2m)"),
    Param("requests_per_s", default=5.0, min=0.5, max=20.0, grid=(5.0,), quick=(5.0,),
          help="spoofed gets a second during the attack"),
    Param("attack_s", default=20.0, min=3.0, max=60.0, grid=(20.0,), quick=(6.0,),
          help="the attack's length"),
    Param("access_mbps", default=20.0, min=1.0, max=100.0, grid=(20.0,), quick=(20.0,),
          help="the victim's access link (C), Mbit/s"),
    Param("reflector_mbps", default=50.0, min=1.0, max=100.0, grid=(50.0,), quick=(50.0,),
          help="the cap on memcached's own link, Mbit/s"),
]
REPEATS, QUICK_REPEATS = 2, 1
WARM_S, TAIL_S, SETTLE_S, MULTI, KEY = 3.0, 2.0, 1.0, 10, "k"
MC, VIC, WEB, MC_PORT, VIC_PORT, WEB_PORT = "10.0.2.2", "10.0.5.2", "10.0.3.2", 11211, 7777, 8080
_AMP = Tolerance(abs=0.0, rel=0.10, symmetric=True)      # CLAIMS: within 10% of the byte accounting
_SHARE = Tolerance(abs=0.15, rel=0.0, symmetric=True)    # edge >= 0.81 C, the others <= 0.15 C
METRICS = [
    Metric("amplification_x", "bytes mc's link sent for one 1-key get / bytes atk's link sent", _AMP),
    Metric("amplification_payload_x", "the same in UDP payload", _AMP),
    Metric("amplification_10keys_x", "on the wire, for a get naming the key 10 times", _AMP),
    Metric("datagrams_count", "UDP datagrams mc sent for one 1-key get",
           Tolerance(abs=0.0, rel=0.0, symmetric=True), plot=False),
    Metric("flood_mbps", "what mc's link sent during the attack, Mbit/s",
           Tolerance(abs=0.0, rel=0.1, symmetric=True)),
    Metric("before_ratio", "vic's TCP goodput before the attack / C",
           Tolerance(abs=0.05, rel=0.0, symmetric=True)),
    Metric("goodput_ratio", "vic's TCP goodput during the attack / C", _SHARE),
]
X = "filter"
FIGURE = Timeline("Does a filter on the victim save its link, or one at the edge?", panels=(
    ("goodput_kbit_per_s", "TCP goodput at vic [kbit/s]"), ("flood_kbit_per_s", "reflected [kbit/s]")),
    labels={"none": "no filter", "host": "filter on the victim (INPUT)",
            "edge": "filter at the edge (FORWARD)"})
_RULES = {"host": ("vic", ("INPUT", "-p", "udp", "--sport", str(MC_PORT), "-j", "DROP")),
          "edge": ("edge", ("FORWARD", "-p", "udp", "--sport", str(MC_PORT), "-d", VIC, "-j", "DROP"))}


def predict(params: dict, kernel: dict) -> dict:
    n = int(params["value_bytes"])
    one, many = rf.reflection(KEY, n), rf.reflection(KEY, n, MULTI)
    c = float(params["access_mbps"])
    flood = rf.flood_mbps(one, float(params["requests_per_s"]), float(params["reflector_mbps"]))
    return {"amplification_x": one.by_frames, "amplification_payload_x": one.by_payload,
            "amplification_10keys_x": many.by_frames, "datagrams_count": float(one.datagrams),
            "flood_mbps": flood, "before_ratio": rf.goodput_ratio(c, 0.0, False),
            "goodput_ratio": rf.goodput_ratio(c, flood, params["filter"] == "edge")}


def prepare(lab, params: dict, ctx) -> dict:
    argv = memcached.start(lab, "mc", MC, MC_PORT)
    memcached.store(lab["atk"], MC, MC_PORT, KEY, int(params["value_bytes"]))
    rp = {k: lab["isp"].sysctl(f"net.ipv4.conf.{k}.rp_filter") for k in ("all", "isp-eth0")}
    udp = lab["mc"].run(["ss", "-uamn", "src", MC]).stdout      # its send buffer: tb
    ctx.raw.write_text("reflector.txt", f"{' '.join(argv)}\nisp rp_filter {rp}\n{udp}")
    spoof = memcached.Spoofer(lab["atk"], (VIC, VIC_PORT), (MC, MC_PORT), KEY)
    lab.undo.push("close the spoofing socket", spoof.close)
    spoof.get()                             # resolves every hop's neighbours; not counted
    memcached.settled(lab["mc"], "isp")
    return {"spoof": spoof}


def trial(lab, params: dict, ctx) -> dict:
    st, c, attack_s = ctx.state, float(params["access_mbps"]), float(params["attack_s"])
    amp = [memcached.amplification(st["spoof"], lab["atk"], lab["mc"], "isp", k) for k in (1, MULTI)]
    end, s, stop = WARM_S + attack_s + TAIL_S, series.Series(1.0), threading.Event()
    rate = float(params["requests_per_s"])
    events = [faults.Event(WARM_S, faults.periodic(f"attack: {rate:g} spoofed gets/s", rate, st["spoof"].get),
                           for_s=attack_s)]
    if params["filter"] in _RULES:
        node, rule = _RULES[params["filter"]]
        events.insert(0, faults.Event(0.0, faults.Action(f"filter on {node}: {' '.join(rule)}", lambda lab: (
            firewall.rule(lab[node], *rule), lambda: firewall.delete(lab[node], *rule))[1])))
    download = stream.Download(lab["web"], lab["vic"], WEB, WEB_PORT, s)
    try:
        with faults.Player(lab, faults.Timeline(events)) as pl:
            s.start(pl.t0)
            download.start()
            series.sample(s, "flood_kbit", lambda: memcached.link_tx(lab["mc"], "isp")[0], stop)
            stop.wait(end - pl.now())
    finally:
        stop.set()
        download.stop()
    series.write(ctx.raw, ctx.repeat, s, end, pl)
    (req1, resp1, dgrams), (req10, resp10, _) = amp
    a, b = WARM_S + SETTLE_S, WARM_S + attack_s
    return {"amplification_x": resp1 / req1, "amplification_10keys_x": resp10 / req10,
            "amplification_payload_x": (resp1 - dgrams * rf.UDP_IP_ETH) / (req1 - rf.UDP_IP_ETH),
            "datagrams_count": float(dgrams), "flood_mbps": s.rate("flood_kbit", a, b) / 1000.0,
            "before_ratio": s.rate("goodput_kbit", 1.0, WARM_S) / 1000.0 / c,
            "goodput_ratio": s.rate("goodput_kbit", a, b) / 1000.0 / c}
