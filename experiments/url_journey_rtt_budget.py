"""[01] url_journey_rtt_budget: the round trips before the first byte of an HTTPS page,
in curl's ``-w`` phases, on the wire.

The client h1 fetches ``https://<name>.lab.test/`` from nginx in h2, one RTT r away
across two routers, with curl.  The name comes from the client's hosts file, or from a
caching resolver d1 (dnsmasq) at RTT r_dns = r behind its own link, warm (the resolver
has the answer cached) or cold (it must ask the authoritative server d2, auth_rtt_ms
further).  curl resolves through getaddrinfo, so it runs with its own resolv.conf,
hosts and nsswitch.conf bound over the machine's (wirelab.lab.mounts).

    t=0      getaddrinfo -> d1 (A and AAAA in parallel)   namelookup = r_dns (+ auth RTT if cold)
             SYN -> h2, SYN/ACK back                       connect    = namelookup + r
             TLS 1.3: 1 flight each way; TLS 1.2: 2        appconnect = connect + r | 2r
             GET -> h2, server thinks s, first byte back   starttransfer = appconnect + r + s
             (the page fits in the initial window)         total      = starttransfer

Each trial is one transfer on a new connection to a name that curl process has not used,
after one untimed transfer (a process's first TLS handshake loads OpenSSL).  Packet taps
on h1, h2 and d1 time each phase where it ends on the client's wire and split it into
network time (judged) and each end's processing (wirelab.measure.phases); a transfer
with a resent packet is excluded, an end over its processing budget is a lab fault.
"""
from __future__ import annotations

from wirelab.errors import LabError
from wirelab.lab import firewall
from wirelab.measure import curl
from wirelab.measure.critical_path import over_budget
from wirelab.measure.phases import PHASES, describe, wire_phases
from wirelab.measure.tap import Tap, run_tapped, timelines
from wirelab.models.tcp import formula_rounds, iw_of, mss_from_kernel
from wirelab.models.tls import PROTOCOL_NAME, handshake_round_trips
from wirelab.peers import dns, web
from wirelab.spec import Choice, Metric, Param, Tolerance, Waterfall
from wirelab.spec.context import exclusion
from wirelab.topologies.web_with_resolver import WebWithResolver

ID = "url_journey_rtt_budget"
ALIASES = ("url_journey",)
CLAIM = ("An HTTPS page's first byte costs DNS + TCP + TLS + request round trips: 4 RTT with "
         "TLS 1.3 and 5 with TLS 1.2 only when the resolver is as far as the server")
SECTION = "§1 what happens when you type a URL; §8 curl -w timing"
TEXT_SAYS = ("MINIMUM: 4-5 RTTs before first byte... RTT=50ms: 200-250ms; "
             "curl -w: DNS 0.025 / Connect 0.050 / TLS 0.120 (read as per-phase times)")
TOPOLOGY = WebWithResolver
NEEDS = {"netem"}
TOOLS = ("curl", "nginx", "dnsmasq", "openssl")
PARAMS = [
    Param("rtt_ms", default=50, min=0, max=2000, grid=(1, 10, 50, 100, 200), quick=(10, 50),
          help="client-server round-trip time, ms (the resolver, when used, is as far)"),
    Choice("dns", ("hosts", "warm", "cold", "pinned"), default="warm",
           grid=("hosts", "warm", "cold"), quick=("hosts", "warm"),
           help="hosts: the client's hosts file (r_dns = 0); warm: a caching resolver at "
                "RTT r that has the name; cold: the same resolver without it; pinned: curl "
                "--resolve, no lookup at all"),
    Choice("tls", ("1.2", "1.3"), default="1.3", grid=("1.2", "1.3"), quick=("1.2", "1.3"),
           help="TLS version curl offers (and the only one)"),
    Param("think_ms", default=0, min=0, max=5000, grid=(0, 200), quick=(0,),
          help="server think time, ms (0: nginx serves a static file; >0: a backend "
               "behind nginx sleeps this long)"),
    Param("auth_rtt_ms", default=20, min=0, max=2000, grid=(20,), quick=(20,),
          help="RTT from the resolver to the authoritative server, ms (cold cache only)"),
    Param("drop_syn_index", default=-1, min=-1, max=1000, type=int, grid=(-1,), quick=(-1,),
          help="a fault: r1 drops the client's Nth SYN of the point (0: the first, which is "
               "a batch's untimed one; -1: none); the transfer is resent and excluded"),
]
REPEATS = 10
QUICK_REPEATS = 5
_CURL = {"namelookup_ms": "name resolved", "connect_ms": "TCP connected",
         "appconnect_ms": "TLS handshake done", "starttransfer_ms": "first response byte",
         "total_ms": "last byte"}
#: Processing each end may spend on a transfer's path, more is a lab fault: curl, nginx
#: (plus think time), dnsmasq.  curl's clock starts before its first packet (resolver
#: thread, hosts file) and a phase ends after its last (certificate checks): 2-6 ms in UML.
BUDGET_MS, CURL_OVERHEAD_MS = {"h1": 20.0, "h2": 10.0, "d1": 5.0}, 10.0
NODELAY = frozenset({"h1", "h2"})   # curl and nginx set TCP_NODELAY
# Network time: +[0.5 ms + 3%], never earlier; curl's own: never below the model, above
# it by at most every end's budget and curl's overhead.
METRICS = [Metric(m, f"start to {what}, as the packets show it: time in the network on the "
                  "phase's critical path (cumulative, processing taken out)",
                  Tolerance(abs=0.5, rel=0.03)) for m, what in _CURL.items()]
METRICS += [Metric(f"curl_{m}", f"curl -w: start to {what}, all included (cumulative)",
                   Tolerance(abs=sum(BUDGET_MS.values()) + CURL_OVERHEAD_MS, rel=0.03))
            for m, what in _CURL.items()]
METRICS += [Metric("curl_overhead_ms", "what curl -w reports beyond the packets' network "
                   "time and the ends' processing (worst phase)",
                   Tolerance(abs=CURL_OVERHEAD_MS, rel=0.0, below=0.5), plot=False)]
X = "rtt_ms"
FIGURE = Waterfall("Where do the round trips before a page's first byte go?", (("DNS", "namelookup_ms"), (
    "TCP", "connect_ms"), ("TLS", "appconnect_ms"), ("request to first byte", "starttransfer_ms"), (
    "rest of the page", "total_ms")), rows=("rtt_ms", "dns", "tls"))
SYSCTLS = {"*": {"net.ipv4.tcp_timestamps": "1"}}
PAGE_BYTES = 1024          # the page: far below one initial window
DOMAIN = "lab.test"
SERVER_IP, RESOLVER_IP, AUTH_IP = "10.0.2.2", "10.0.3.2", "10.0.4.2"
BATCH = 5                  # timed transfers per curl process (plus one untimed first)
GAP_MS = 100.0             # idle time between transfers: the last one's teardown is done


def topology_params(params: dict) -> dict:
    resolver = params["dns"] in ("warm", "cold")
    return {"rtt_ms": params["rtt_ms"], "rdns_ms": params["rtt_ms"] if resolver else 0.0,
            "auth_rtt_ms": params["auth_rtt_ms"], "resolver": resolver}


def predict(params: dict, kernel: dict) -> dict:
    """Cumulative times, as curl reports them, from round-trip counts: in the network
    (no think time: that is the server's processing), and as curl sees them (with it)."""
    r, lookup = float(params["rtt_ms"]), params["dns"]
    namelookup = (r if lookup in ("warm", "cold") else 0.0) + \
        (float(params["auth_rtt_ms"]) if lookup == "cold" else 0.0)
    connect = namelookup + r
    appconnect = connect + handshake_round_trips(params["tls"]) * r
    starttransfer = appconnect + r
    rounds = formula_rounds(PAGE_BYTES, iw_of(kernel), mss_from_kernel(kernel))
    net = {"namelookup_ms": namelookup, "connect_ms": connect, "appconnect_ms": appconnect,
           "starttransfer_ms": starttransfer, "total_ms": starttransfer + (rounds - 1) * r}
    s = float(params["think_ms"])
    return {**net, **{f"curl_{m}": v + (s if m in ("starttransfer_ms", "total_ms") else 0.0)
                      for m, v in net.items()}, "curl_overhead_ms": 0.0}


def note(entry: dict) -> str:
    r, m = float(entry["params"]["rtt_ms"]), entry["measured"]
    return "" if not r or "starttransfer_ms" not in m else (
        f"first byte after {m['starttransfer_ms'] / r:.2f} RTT in the network (model "
        f"{entry['predicted']['starttransfer_ms'] / r:g}); curl: "
        f"{m.get('curl_starttransfer_ms', float('nan')):.1f} ms with processing")


def prepare(lab, params: dict, ctx) -> None:
    """The server (nginx, and a thinking backend), the DNS servers, the taps."""
    st = ctx.state
    st.certs = web.make_certs(lab, [f"www.{DOMAIN}", f"*.{DOMAIN}"])
    st.path = web.serve_page(lab, "h2", st.certs, PAGE_BYTES, float(params["think_ms"]))
    st.resolver = params["dns"] in ("warm", "cold")
    if st.resolver:
        dns.start_dnsmasq(lab, "d2", AUTH_IP, name="authoritative", args=[
            f"--address=/{DOMAIN}/{SERVER_IP}", f"--local=/{DOMAIN}/", "--local-ttl=3600"])
        dns.start_dnsmasq(lab, "d1", RESOLVER_IP, name="resolver", args=[
            f"--server=/{DOMAIN}/{AUTH_IP}", "--cache-size=10000", "--neg-ttl=3600"])
    if params["drop_syn_index"] >= 0:   # a fault: r1 drops one chosen SYN of the client
        firewall.drop_nth(lab["r1"], params["drop_syn_index"], "-p", "tcp", "--syn",
                          "-d", SERVER_IP, "--dport", "443")
    # d2, the authoritative server, counts as network (the delay to it sits on its
    # egress, where a tap would see it as processing).
    st.taps = {n: Tap(lab[n]) for n in ("h1", "h2", *(("d1",) if st.resolver else ()))}
    for name, tap in st.taps.items():
        lab.undo.push(f"close the packet tap on {name}", tap.close)
    st.owner = {i.ip.split("/")[0]: n for n in st.taps for i in lab[n].intfs.values() if i.ip}
    st.batches, st.budget = 0, {**BUDGET_MS, "h2": BUDGET_MS["h2"] + float(params["think_ms"])}


def _row(w: dict, curl_row: dict, budget: dict) -> dict:
    """One transfer's row: network times, curl's own, what curl reports beyond the
    packets; excluded if anything was resent."""
    over = over_budget(w["compute"]["total_ms"], budget, w["name"])
    row = {**{m: w[m] for m in PHASES}, **{f"curl_{m}": curl_row[m] for m in PHASES}}
    row["curl_overhead_ms"] = max(curl_row[m] - w[m] - sum(w["compute"][m].values())
                                  for m in PHASES)
    return row | exclusion("resent: " + "; ".join(w["retransmissions"])
                           if w["retransmissions"] else "", over)


def trial(lab, params: dict, ctx) -> list[dict]:
    """One curl process: an untimed transfer, then BATCH timed ones, each to a new name."""
    st, lookup, h1 = ctx.state, params["dns"], lab["h1"]
    names = [f"p{ctx.point}b{st.batches}n{i}.{DOMAIN}" for i in range(BATCH + 1)]
    st.batches += 1
    files = dns.client_files(lab.workdir, "h1", [RESOLVER_IP],
                             hosts={n: SERVER_IP for n in names} if lookup == "hosts" else None)
    if lookup == "warm":             # the resolver gets them cached (A and AAAA, as glibc)
        dns.prime(h1, RESOLVER_IP, names, SERVER_IP)
    before = dns.cache_stats(h1, RESOLVER_IP) if st.resolver else None
    argv = curl.fetch_argv([f"https://{n}{st.path}" for n in names], params["tls"],
                           str(st.certs.ca), max(1, int(60_000 // (ctx.predicted["total_ms"]
                                                                   + GAP_MS))),
                           {n: SERVER_IP for n in names} if lookup == "pinned" else None)
    res, events = run_tapped(h1, argv, st.taps, binds=files.binds())
    if res.returncode != 0:
        raise LabError(f"curl exited {res.returncode}: {res.stderr.strip()[-300:]}")
    rows = curl.parse_write_out(res.stdout)
    curl.check_fresh(rows, names, PAGE_BYTES, PROTOCOL_NAME[params["tls"]])
    wire = wire_phases(events, st.owner, names, st.resolver, PAGE_BYTES, nodelay=NODELAY,
                       iw_segs=iw_of(ctx.kernel))
    cache = ""
    if before is not None:           # evidence that "warm" and "cold" are what they say
        after = dns.cache_stats(h1, RESOLVER_IP)
        hits, misses = (after[k] - before[k] for k in ("hits", "misses"))
        cache = f"resolver cache during the batch: {hits} hits, {misses} misses\n"
        if (lookup == "warm" and misses) or (lookup == "cold" and misses < len(names)):
            raise LabError(f"{lookup} batch: the resolver missed its cache {misses} times")
    ctx.raw.write_text(f"batch{st.batches - 1:02d}.txt", "argv: " + " ".join(argv) + "\n"
                       + cache + "curl -w (first line untimed):\n" + res.stdout
                       + "on the wire (ms; network / each node's processing):\n" + describe(wire)
                       + timelines(events))
    return [_row(w, row, st.budget) for row, w in zip(rows[1:], wire[1:], strict=True)]
