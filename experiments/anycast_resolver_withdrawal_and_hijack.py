"""[35] anycast_resolver_withdrawal_and_hijack: Cloudflare's 1.1.1.1 outage of 2025-07-14, small.  Two
sites announce 10.53.0.0/24 to a transit (anycast_dns, FRR); c1 lists only 10.53.0.1, c2 10.53.0.1 then
10.54.0.1.  The event (a fault Action): both sites withdraw the prefix and the transit (a) has no route
(ICMP net unreachable), (b) a blackhole /16 (silence), or (c) AS 64755 announces it and answers wrongly.
Lookups (glibc's getaddrinfo) judged against glibc's res_send (wirelab.models.resolver); see the .md."""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

from pyroute2.netlink.exceptions import NetlinkError

from wirelab.errors import BadInput, LabError
from wirelab.lab import faults
from wirelab.lab.wait import poll
from wirelab.measure import series
from wirelab.models.resolver import glibc_lookup
from wirelab.peers import dns, frr
from wirelab.spec import Choice, Metric, Param, Timeline, Tolerance
from wirelab.topologies.anycast_dns import ANYCAST, CLIENTS, EDGES, NAME, RIGHT, SECONDARY, WRONG, AnycastDns

ID = "anycast_resolver_withdrawal_and_hijack"
ALIASES = ("anycast_resolver",)
CLAIM = ("An anycast resolver withdrawn: a second resolver saves lookups at once if the network "
         "answers unreachable, 5 s late each if it drops silently, and not at all against a hijack")
SECTION = "§10 Cloudflare lesson: if 1.1.1.1 goes down"
TEXT_SAYS = "If 1.1.1.1 goes down, every application using it for DNS resolution stops working."
TOPOLOGY, TOPOLOGY_PARAMS = AnycastDns, ()
NEEDS: set[str] = set()
EVENTS = ("unreachable", "blackhole", "hijack")
PARAMS = [
    Choice("event", EVENTS, default="blackhole", grid=EVENTS, quick=EVENTS,
           help="the sites withdraw; the transit: no route, a blackhole /16, or AS 64755's route"),
    Param("event_s", 60, 25, 600, grid=(60,), quick=(25,), help="how long the event lasts, s"),
    Param("timeout_s", 5, 1, 30, type=int, grid=(5,), quick=(5,), help="resolv.conf timeout:"),
    Param("attempts_count", 2, 1, 5, type=int, grid=(2,), quick=(2,), help="resolv.conf attempts:"),
]
REPEATS, QUICK_REPEATS = 3, 1
_PCT, _TIMER, _BGP = Tolerance(0.0, 0.0, symmetric=True), Tolerance(0.1, 0.0), Tolerance(1.0, 0.0)
METRICS = [
    Metric("mrai_s", "advertisement interval at the announcers (show bgp neighbors)", _PCT, plot=False),
    Metric("converge_s", "from the withdrawal to the transit's FIB in its event state", _BGP),
    Metric("two_lookup_s", "lookup time, 10.53.0.1 then 10.54.0.1 (median, during the event)", _TIMER),
    Metric("one_lookup_s", "lookup time, only 10.53.0.1 (median, during the event)", _TIMER),
    Metric("two_ok_pct", "right answers, 10.53.0.1 then 10.54.0.1, during the event", _PCT),
    Metric("one_ok_pct", "right answers, only 10.53.0.1, during the event", _PCT),
    Metric("wrong_pct", "the hijacker's answer, both clients, during the event", _PCT),
    Metric("recovery_s", "from the re-announcement to the transit's FIB via a site", _BGP),
    Metric("after_ok_pct", "right answers after recovery, both clients", _PCT),
]
X = "event"
FIGURE = Timeline("What do clients see when an anycast resolver is withdrawn or hijacked?", panels=(
    (("two_lookup_s_p50", "one_lookup_s_p50"), "lookup [s]: 10.53.0.1,\n10.54.0.1; dashed:\n10.53.0.1 only"),
    (("two_outcome_code_p50", "one_outcome_code_p50"), "answer: 2 right,\n1 wrong, 0 none"),
    ("route_code_p50", "transit's route: 2\na site, 1 the\nhijacker, 0 none")),
    labels={"unreachable": "(a) withdrawn: net unreachable", "blackhole": "(b) withdrawn into a blackhole",
            "hijack": "(c) withdrawn, AS 64755 hijacks"}, limits=(("two_lookup_s_p50", 5.0, "glibc's 5 s"),))
PREFIX, COVER, SITES = "10.53.0.0/24", "10.53.0.0/16", ("site-a", "site-b")
#: per event: what 10.53.0.1 does (for glibc_lookup), what the transit's route to it is
KIND = {"unreachable": ("icmp", "none"), "blackhole": ("silent", "blackhole"), "hijack": ("wrong", "hijack")}
CODE = {"ok": 2, "wrong": 1, "failed": 0, "site": 2, "hijack": 1, "none": 0, "blackhole": 0, "sec": 3}
SYSCTLS = {"transit": {"net.ipv4.icmp_ratelimit": "0"}}    # its per-destination ICMP limit off: the .md
PRE_S, POST_S, SETTLE_S, PERIOD_S = 3.0, 8.0, 0.3, 2.5     # a lookup every PERIOD_S (0.2 s after a slow one)
MRAI = re.compile(r"Minimum time between advertisement runs is (\d+) seconds")
LOOP = ("import json,socket,sys,time\nname,period,end=sys.argv[1],*map(float,sys.argv[2:])\nwhile (t0:=time."
        "monotonic())<end:\n try:\n  out=sorted({a[4][0] for a in socket.getaddrinfo(name,53,socket.AF_INET,"
        "socket.SOCK_DGRAM)})\n except socket.gaierror as e:\n  out=[str(e)]\n t1=time.monotonic()\n print("
        "json.dumps([t0,t1,out]),flush=True)\n time.sleep(max(0.0,max(t0+period,t1+0.2)-time.monotonic()))\n")


def predict(params: dict, kernel: dict) -> dict:
    t, a, kind = int(params["timeout_s"]), int(params["attempts_count"]), KIND[params["event"]][0]
    if params["event_s"] < (least := 2 * a * t + PERIOD_S + 1):
        raise BadInput(f"event_s {params['event_s']:g}: a lookup may take {a * t} s; give >= {least:g} s")
    out = {"two": glibc_lookup([kind, "ok"], t, a), "one": glibc_lookup([kind], t, a)}
    conf = "".join(frr.configs(r, AnycastDns().nodeInfo(r)["frr"])["bgpd"] for r in (*SITES, "hijack"))
    mrai = float(max(map(int, re.findall(r"advertisement-interval (\d+)", conf))))    # the announcers'
    return {"mrai_s": mrai, "converge_s": mrai, "recovery_s": mrai, "after_ok_pct": 100.0,
            **{f"{k}_lookup_s": w for k, (w, _) in out.items()}, **{f"{k}_ok_pct": 100.0 * (o == "ok")
                                                                   for k, (_, o) in out.items()},
            "wrong_pct": 50.0 * sum(o == "wrong" for _, o in out.values())}


def note(entry: dict) -> str:
    m = {k: 0.0 for k in ("two_lookup_s", "one_lookup_s", "converge_s")} | entry["measured"]
    return (f"{m['two_lookup_s']:.2f} s with a second resolver, {m['one_lookup_s']:.2f} s with only the "
            f"anycast one; FIB {m['converge_s']:.2f} s after the withdrawal (2025: 62 min, AS4755 seen)")


def prepare(lab, params: dict, ctx) -> dict:
    info, opts = lab.topo.nodeInfo, "timeout:{timeout_s} attempts:{attempts_count}".format(**params)
    dirs = {r: frr.start(lab, r, info(r)["frr"]) for r in ("transit", *(e[0] for e in EDGES))}
    for ns in (e[4] for e in EDGES):
        dns.start_dnsmasq(lab, ns, info(ns)["dnsmasq"]["listen"], name=ns, args=info(ns)["dnsmasq"]["args"])
    files = {c: dns.client_files(lab.workdir, c, n, options=opts).binds() for c, n in CLIENTS.items()}
    return {"dirs": dirs, "files": files,
            "via": {lab[r].egress("transit").ip.split("/")[0]: r if r in ("hijack", "sec") else "site"
                    for r, *_ in EDGES}}


def _route(lab, st, addr: str = ANYCAST) -> str:     # the transit's FIB: site, hijack, sec, blackhole, none
    try:
        return st["via"].get(lab["transit"].ipr.route("get", dst=addr)[0].get_attr("RTA_GATEWAY"), "none")
    except NetlinkError as e:
        return "blackhole" if e.code == 22 else "none"


def _event(lab, st, event: str, times: dict, t0: float):
    def announce(routers, on: bool):
        for r in routers:
            asn, no = lab.topo.nodeInfo(r)["frr"]["asn"], "" if on == (r != "hijack") else "no "
            frr.vty(lab[r], st["dirs"][r], "configure terminal", f"router bgp {asn}",
                    "address-family ipv4 unicast", f"{no}network {PREFIX}")
    times["event"], hijack = time.monotonic() - t0, ("hijack",) if event == "hijack" else ()
    if event == "blackhole":
        lab["transit"].run(["ip", "route", "add", "blackhole", COVER])     # not ipr: watch() uses it
    announce((*SITES, *hijack), False)

    def undo():
        times["undo"] = time.monotonic() - t0
        announce((*hijack, *SITES), True)
        if event == "blackhole":
            lab["transit"].run(["ip", "route", "del", "blackhole", COVER])
    return undo


def _read(proc, key: str, s: series.Series, out: list) -> None:
    for line in proc.stdout:
        t0, t1, addrs = json.loads(line)
        o = "ok" if addrs == [RIGHT] else "wrong" if addrs == [WRONG] else "failed"
        out.append((t0 - s.t0, t1 - s.t0, o, addrs, key))
        for b in range(int(t0 - s.t0), int(max(t1, t0 + PERIOD_S) - s.t0)):    # drawn over the seconds it ran
            for name, v in ((f"{key}_lookup_s", t1 - t0), (f"{key}_outcome_code", CODE[o])):
                s.value(name, v, s.t0 + b + 0.5)


def trial(lab, params: dict, ctx) -> dict:
    st, event, end = ctx.state, str(params["event"]), PRE_S + params["event_s"] + POST_S
    poll(lambda: _route(lab, st) == "site" and _route(lab, st, SECONDARY) == "sec", 60, "routes via sites")
    shown = "".join(frr.vty(lab[r], st["dirs"][r], "show bgp neighbors") for r in (*SITES, "hijack"))
    s, stop, log, procs, threads = series.Series(1.0), threading.Event(), [], [], []
    times, got = dict[str, float](), dict[str, list](one=[], two=[])
    act = faults.Action(f"both sites withdraw {PREFIX}", lambda _: _event(lab, st, event, times, s.t0))
    timeline = faults.Timeline([faults.Event(PRE_S, act, for_s=float(params["event_s"]))])

    def watch():
        while not stop.wait(0.02):
            log.append((time.monotonic() - s.t0, r := _route(lab, st)))
            s.value("route_code", CODE[r])
    try:
        with faults.Player(lab, timeline) as pl:
            s.start(pl.t0)
            args = [NAME + ".", str(PERIOD_S), str(pl.t0 + end)]
            for c, k in (("c1", "one"), ("c2", "two")):     # env: no RES_OPTIONS or LOCALDOMAIN of ours
                procs.append(p := lab[c].popen([sys.executable, "-c", LOOP, *args], env={"PATH": os.defpath},
                                               binds=st["files"][c], stdout=subprocess.PIPE, text=True))
                threads.append(threading.Thread(target=_read, args=(p, k, s, got[k])))
            threads.append(threading.Thread(target=watch))
            list(map(threading.Thread.start, threads))
            stop.wait(end - pl.now())
    finally:
        stop.set()
        [(p.terminate(), p.wait(5)) for p in procs]
        list(map(threading.Thread.join, filter(threading.Thread.is_alive, threads)))
    series.write(ctx.raw, ctx.repeat, s, end, pl)
    ctx.raw.write_text("lookups.jsonl", "".join(f"{json.dumps([ctx.repeat, *x])}\n"
                                                for x in sum(got.values(), [])))
    ctx.raw.write_text("show_bgp_neighbors.txt", f"# trial {ctx.repeat}\n{shown}")
    conv = next((t for t, r in log if t >= times["event"] and r == KIND[event][1]), None)
    back = next((t for t, r in log if t >= times.get("undo", end) and r == "site"), None)
    if conv is None or back is None or not MRAI.findall(shown):
        raise LabError(f"no route change seen ({log[-1:]}), or no advertisement interval in {shown[-300:]}")
    ev = {k: [x for x in xs if x[0] >= conv + SETTLE_S and x[1] <= times["undo"]] for k, xs in got.items()}
    after = [x for xs in got.values() for x in xs if x[0] >= back + SETTLE_S]
    if not all(ev.values()) or not after:
        raise LabError(f"too few lookups timed: {[len(v) for v in ev.values()]}, after {len(after)}")

    def pct(xs, o):
        return 100.0 * sum(x[2] == o for x in xs) / len(xs)
    return {"mrai_s": float(max(map(int, MRAI.findall(shown)))), "converge_s": conv - times["event"],
            "recovery_s": back - times["undo"], **{f"{k}_ok_pct": pct(ev[k], "ok") for k in ev},
            **{f"{k}_lookup_s": statistics.median(x[1] - x[0] for x in ev[k]) for k in ev},
            "wrong_pct": pct(ev["one"] + ev["two"], "wrong"), "after_ok_pct": pct(after, "ok")}
