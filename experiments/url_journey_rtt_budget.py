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

Each trial is one transfer on a new connection to a host name never used before by that
curl process, which has already done one untimed transfer (the first TLS handshake of a
process pays for loading OpenSSL, which no later page load in a browser does).  Packet
taps on h1, h2 and d1 time each phase where it ends on the client's wire and split it
into network time (judged) and each end's processing (raw/) (wirelab.measure.phases);
curl's own figures are reported beside them and may never beat the round trips.
"""
from __future__ import annotations

from wirelab.errors import LabError
from wirelab.measure import curl
from wirelab.measure.phases import PHASES, describe, wire_phases
from wirelab.measure.tap import Tap, run_tapped, timelines
from wirelab.models.tcp import formula_rounds, mss_from_kernel
from wirelab.models.tls import PROTOCOL_NAME, handshake_round_trips
from wirelab.peers import dns, web
from wirelab.spec import REPORTED, Choice, Metric, Param, Tolerance
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
]
REPEATS = 10
QUICK_REPEATS = 5
_CURL = {"namelookup_ms": "name resolved", "connect_ms": "TCP connected",
         "appconnect_ms": "TLS handshake done", "starttransfer_ms": "first response byte",
         "total_ms": "last byte"}
# Network time: +[0.5 ms + 3%], never earlier.  curl's own figures carry each end's
# processing, which no RTT model holds: reported.
METRICS = [Metric(m, f"start to {what}, as the packets show it: time in the network on the "
                  "phase's critical path (cumulative, processing taken out)",
                  Tolerance(abs=0.5, rel=0.03)) for m, what in _CURL.items()] + \
          [Metric(f"curl_{m}", f"curl -w: start to {what}, all included (cumulative)", REPORTED)
           for m, what in _CURL.items()]
X = "rtt_ms"
SYSCTLS = {"*": {"net.ipv4.tcp_timestamps": "1"}}
PAGE_BYTES = 1024          # the page: far below one initial window
DOMAIN = "lab.test"
SERVER_IP, RESOLVER_IP, AUTH_IP = "10.0.2.2", "10.0.3.2", "10.0.4.2"
BACKEND_PORT = 8081
BATCH = 5                  # timed transfers per curl process (plus one untimed first)
GAP_MS = 100.0             # idle time between transfers: the last one's teardown is done
IW_SEGMENTS = 10           # TCP_INIT_CWND, include/net/tcp.h (no initcwnd route option here)


def topology_params(params: dict) -> dict:
    via_resolver = params["dns"] in ("warm", "cold")
    return {"rtt_ms": params["rtt_ms"], "rdns_ms": params["rtt_ms"] if via_resolver else 0.0,
            "auth_rtt_ms": params["auth_rtt_ms"], "resolver": via_resolver}


def predict(params: dict, kernel: dict) -> dict:
    """Cumulative times, as curl reports them, from round-trip counts: in the network
    (no think time: that is the server's processing), and as curl sees them (with it)."""
    r, lookup = float(params["rtt_ms"]), params["dns"]
    namelookup = (r if lookup in ("warm", "cold") else 0.0) + \
        (float(params["auth_rtt_ms"]) if lookup == "cold" else 0.0)
    connect = namelookup + r
    appconnect = connect + handshake_round_trips(params["tls"]) * r
    starttransfer = appconnect + r
    rounds = formula_rounds(PAGE_BYTES, IW_SEGMENTS, mss_from_kernel(kernel))
    net = {"namelookup_ms": namelookup, "connect_ms": connect, "appconnect_ms": appconnect,
           "starttransfer_ms": starttransfer, "total_ms": starttransfer + (rounds - 1) * r}
    s = float(params["think_ms"])
    return {**net, **{f"curl_{m}": v + (s if m in ("starttransfer_ms", "total_ms") else 0.0)
                      for m, v in net.items()}}


def note(entry: dict) -> str:
    """The first byte in RTTs."""
    r, m = float(entry["params"]["rtt_ms"]), entry["measured"]
    if not r or "starttransfer_ms" not in m:
        return ""
    return (f"first byte after {m['starttransfer_ms'] / r:.2f} RTT in the network (model "
            f"{entry['predicted']['starttransfer_ms'] / r:g}); curl: "
            f"{m.get('curl_starttransfer_ms', float('nan')):.1f} ms with processing")


def prepare(lab, params: dict, ctx) -> None:
    """The server (nginx, and a thinking backend), the DNS servers, the taps."""
    st = ctx.state
    st.certs = web.make_certs(lab, [f"www.{DOMAIN}", f"*.{DOMAIN}"])
    root = lab.workdir / "www"
    root.mkdir()
    (root / "page.html").write_bytes(b"x" * PAGE_BYTES)
    think = float(params["think_ms"])
    if think > 0:
        st.backend = web.ThinkingBackend(lab["h2"], BACKEND_PORT, think / 1e3, PAGE_BYTES)
        lab.undo.push("stop the thinking backend", st.backend.close)
    # The X-TLS header proves each transfer's TLS version in curl's own -w output.
    web.start_nginx(lab, "h2", st.certs, root, extra=(
        "add_header X-TLS $ssl_protocol always;\n"
        f"        location = /think {{ proxy_pass http://127.0.0.1:{BACKEND_PORT}; }}"))
    st.resolver = params["dns"] in ("warm", "cold")
    if st.resolver:
        dns.start_dnsmasq(lab, "d2", AUTH_IP, name="authoritative", args=[
            f"--address=/{DOMAIN}/{SERVER_IP}", f"--local=/{DOMAIN}/", "--local-ttl=3600"])
        dns.start_dnsmasq(lab, "d1", RESOLVER_IP, name="resolver", args=[
            f"--server=/{DOMAIN}/{AUTH_IP}", "--cache-size=10000", "--neg-ttl=3600"])
    # d2, the authoritative server, counts as network (the delay to it sits on its
    # egress, where a tap would see it as processing).
    st.taps = {n: Tap(lab[n]) for n in ("h1", "h2", *(("d1",) if st.resolver else ()))}
    for name, tap in st.taps.items():
        lab.undo.push(f"close the packet tap on {name}", tap.close)
    st.owner = {i.ip.split("/")[0]: n for n in st.taps for i in lab[n].intfs.values() if i.ip}
    st.path, st.batches = ("/think" if think > 0 else "/page.html"), 0


def _curl_argv(params: dict, st, names: list[str], spacing_ms: float) -> list[str]:
    argv = ["curl", "--silent", "--show-error", "--http1.1", "--cacert", str(st.certs.ca),
            *curl.TLS_FLAGS[params["tls"]],
            "--rate", f"{max(1, int(60_000 // (spacing_ms + GAP_MS)))}/m",
            "--write-out", curl.write_out_format()]
    if params["dns"] == "pinned":
        argv += [a for n in names for a in ("--resolve", f"{n}:443:{SERVER_IP}")]
    for n in names:
        argv += ["--output", "/dev/null", f"https://{n}{st.path}"]
    return argv


def trial(lab, params: dict, ctx) -> list[dict]:
    """One curl process: an untimed transfer, then BATCH timed ones, each to a new name."""
    st, lookup = ctx.state, params["dns"]
    names = [f"p{ctx.point}b{st.batches}n{i}.{DOMAIN}" for i in range(BATCH + 1)]
    st.batches += 1
    files = dns.client_files(lab.workdir, "h1", [RESOLVER_IP],
                             hosts={n: SERVER_IP for n in names} if lookup == "hosts" else None)
    if lookup == "warm":             # the resolver gets them cached (A and AAAA, as glibc)
        for n in names:
            if dns.resolve_a(lab["h1"], RESOLVER_IP, n) != [SERVER_IP]:
                raise LabError(f"the lab resolver does not resolve {n} to {SERVER_IP}")
            dns.query(lab["h1"], RESOLVER_IP, n, "AAAA")
    before = dns.cache_stats(lab["h1"], RESOLVER_IP) if st.resolver else None
    argv = _curl_argv(params, st, names, ctx.predicted["total_ms"])
    res, events = run_tapped(lab["h1"], argv, st.taps, binds=files.binds())
    if res.returncode != 0:
        raise LabError(f"curl exited {res.returncode}: {res.stderr.strip()[-300:]}")
    rows = curl.parse_write_out(res.stdout)
    curl.check_fresh(rows, names, PAGE_BYTES, PROTOCOL_NAME[params["tls"]])
    wire = wire_phases(events, st.owner, names, st.resolver, PAGE_BYTES)
    cache = ""
    if before is not None:           # evidence that "warm" and "cold" are what they say
        after = dns.cache_stats(lab["h1"], RESOLVER_IP)
        hits, misses = (after[k] - before[k] for k in ("hits", "misses"))
        cache = f"resolver cache during the batch: {hits} hits, {misses} misses\n"
        if (lookup == "warm" and misses) or (lookup == "cold" and misses < len(names)):
            raise LabError(f"{lookup} batch: the resolver missed its cache {misses} times")
    ctx.raw.write_text(f"batch{st.batches - 1:02d}.txt", "argv: " + " ".join(argv) + "\n"
                       + cache + "curl -w (first line untimed):\n" + res.stdout
                       + "on the wire (ms; network / each node's processing):\n" + describe(wire)
                       + timelines(events))
    return [{**{m: w[m] for m in PHASES}, **{f"curl_{m}": row[m] for m in PHASES}}
            for row, w in zip(rows[1:], wire[1:], strict=True)]


def plot(run, exp, out=None):
    """Phases in RTTs per (lookup, TLS) panel (wirelab.report.phases)."""
    from wirelab.report.phases import phases_per_rtt
    return phases_per_rtt(run, exp, out)
