"""[39] http2_multiplexing_vs_http1: 20 small objects over HTTP/1.1 on one connection, over six
HTTP/1.1 connections, and multiplexed over one HTTP/2 connection; then again with random loss.

h1 fetches them from nginx (TLS, http2 on) in h2 across r1 (r/2 each way), one curl
process per way (curl's own engine decides connection use):

    sequential   curl --http1.1 URL1 ... URL20         1 connection, 1 request per RTT
    6 conns      curl --http1.1 --parallel --parallel-max 6 --parallel-immediate
    HTTP/2       curl --http2 --parallel               1 connection, 20 streams at once

Packet taps time each batch (first SYN to last response byte at the client); its network time is
that span less both ends' processing on its critical path.
"""
from __future__ import annotations

from wirelab.errors import LabError
from wirelab.measure import curl
from wirelab.measure.critical_path import critical_path, over_budget
from wirelab.measure.phases import resent as resent_packets
from wirelab.measure.tap import Tap, fetch_span, run_tapped, timelines
from wirelab.models.tcp import formula_rounds, iw_of, mss_from_kernel
from wirelab.models.tls import handshake_round_trips
from wirelab.peers import web
from wirelab.spec import REPORTED, Bars, Choice, Metric, Param, Tolerance
from wirelab.spec.context import exclusion
from wirelab.topologies.routed_path import RoutedPath

ID = "http2_multiplexing_vs_http1"
ALIASES = ("http2_vs_http1",)
CLAIM = ("Many small objects: HTTP/2 on one connection beats HTTP/1.1 on one connection by ~N round "
         "trips and matches six HTTP/1.1 connections (with loss the order is measured and shown, not judged)")
SECTION = ("§1 'This is why CDNs, connection reuse, and HTTP/2 exist'; §3 'HTTP/2 uses ONE "
           "connection with multiplexing'")
TEXT_SAYS = "HTTP/2 uses ONE connection with multiplexing"
TOPOLOGY, TOPOLOGY_PARAMS = RoutedPath, ("rtt_ms",)     # loss only in the lossy runs
NEEDS = {"netem"}
TOOLS = ("curl", "nginx", "openssl")
PARAMS = [
    Param("rtt_ms", default=50, min=1, max=1000, grid=(50,), quick=(50,),
          help="round-trip time added by the router, ms"),
    Param("loss_pct", default=2, min=0, max=20, grid=(2,), quick=(2,),
          help="random loss on both directions of the router for the lossy runs, percent"),
    Choice("tls", ("1.2", "1.3"), default="1.3", grid=("1.3",), quick=("1.3",),
           help="TLS version curl offers (and the only one)"),
]
REPEATS = 12
QUICK_REPEATS = 4
MODES = {  # name: (what it is, curl options)
    "seq": ("HTTP/1.1, one connection, sequential", ("--http1.1",)),
    "par6": ("HTTP/1.1, up to 6 parallel connections",
             ("--http1.1", "--parallel", "--parallel-max", "6", "--parallel-immediate")),
    "h2": ("HTTP/2, one connection, all streams at once", ("--http2", "--parallel", "--parallel-max", "100")),
}
#: curl's and nginx's processing on a batch's path, more is a lab fault (up to 66 and 19 ms for 20
#: sequential transfers in UML).  Network: whole rounds, at most a third of one late; the span: above
#: them by at most the budgets.
BUDGET_MS = {"h1": 120.0, "h2": 40.0}
METRICS = [Metric(f"{m}_ms", f"{what}: the batch's time in the network (span less the endpoints' "
                  "processing on its critical path)", Tolerance(abs=0.0, rel=0.0, rtt_frac=1 / 3))
           for m, (what, _) in MODES.items()]
SPAN_BAND = Tolerance(abs=sum(BUDGET_MS.values()), rel=0.0, rtt_frac=1 / 3)
METRICS += [Metric(f"{m}_span_ms", f"{what}: the whole span at the client, first SYN to last response "
                   "byte, processing included", SPAN_BAND) for m, (what, _) in MODES.items()]
METRICS += [Metric(f"{m}_loss_ms", f"{what}: the whole span with loss_pct loss each way", REPORTED)
            for m, (what, _) in MODES.items()]
X = "rtt_ms"
FIGURE = Bars("20 small objects: one HTTP/1.1 connection, six, or one HTTP/2 connection?", matrix=tuple(
    (w, (f"{m}_ms", f"{m}_span_ms", f"{m}_loss_ms")) for m, (w, _) in MODES.items()),
    hues=("network time (judged)", "whole span, processing included", "with loss, whole span (shown)"))
N_OBJECTS = 20
OBJECT_BYTES = 5 * 1024    # 20 objects of 5 KB
PARALLEL_CONNS = 6
SERVER_IP = "10.0.2.2"
CURL_TIMEOUT_S = 120


def predict(params: dict, kernel: dict) -> dict:
    r, mss = float(params["rtt_ms"]), mss_from_kernel(kernel)
    h = (1 + handshake_round_trips(params["tls"])) * r
    iw = iw_of(kernel)
    per_object = max(1, formula_rounds(OBJECT_BYTES, iw, mss))      # 1: fits in IW
    clean = {"seq_ms": h + N_OBJECTS * per_object * r,
             "par6_ms": h + -(-N_OBJECTS // PARALLEL_CONNS) * per_object * r,   # ceil
             "h2_ms": h + formula_rounds(N_OBJECTS * OBJECT_BYTES, iw, mss) * r}
    return {**clean, **{m.replace("_ms", "_span_ms"): v for m, v in clean.items()},
            **{m.replace("_ms", "_loss_ms"): v for m, v in clean.items()}}


def note(entry: dict) -> str:
    """The loss case's ordering (shown, not judged)."""
    meas = entry["measured"]
    order = sorted((m for m in MODES if f"{m}_loss_ms" in meas), key=lambda m: meas[f"{m}_loss_ms"])
    return f"with {entry['params']['loss_pct']:g}% loss: " + " < ".join(
        f"{m} {meas[f'{m}_loss_ms']:.0f}" for m in order) + " ms" if order else ""


def _fetch(lab, params: dict, ctx, mode: str, tag: str) -> dict:
    """One batch in one curl process, checked: its span and network time at the client."""
    st = ctx.state
    argv = curl.fetch_argv([f"https://{SERVER_IP}/o{i:02d}.bin" for i in range(N_OBJECTS)],
                           params["tls"], str(st.certs.ca), http=MODES[mode][1][0],
                           extra=(*MODES[mode][1][1:], "--max-time", str(CURL_TIMEOUT_S)))
    res, events = run_tapped(lab["h1"], argv, st.taps, timeout_s=CURL_TIMEOUT_S + 30)
    ctx.raw.write_text(f"{tag}.txt", f"argv: {' '.join(argv)}\nexit {res.returncode}\n"
                       + res.stdout + res.stderr + timelines(events))
    if res.returncode != 0:
        raise LabError(f"curl ({mode}) exited {res.returncode}: {res.stderr.strip()[-300:]}")
    conns = {"seq": 1, "par6": PARALLEL_CONNS, "h2": 1}[mode]
    curl.check_batch(curl.parse_write_out(res.stdout), N_OBJECTS, OBJECT_BYTES,
                     "2" if mode == "h2" else "1.1", conns, mode)
    span = fetch_span(events["h1"], 443, N_OBJECTS * OBJECT_BYTES)
    if span["connections"] != conns:
        raise LabError(f"curl ({mode}): the capture shows {span['connections']} connections")
    path = critical_path(events, st.owner, span["start"], "h1", span["last"], nodelay={"h1", "h2"})
    # the server's first handshakes, untimed, run cold: no budget
    over = over_budget(path.compute_ms, BUDGET_MS, f"curl ({mode}, {tag})") if tag != "warmup" else ""
    resent = resent_packets(events, lambda s: s.proto == 6)
    return {"span_ms": span["span_ms"], "network_ms": path.network_ms, "resent": resent, "over": over}


def prepare(lab, params: dict, ctx) -> None:
    st = ctx.state
    st.certs = web.make_certs(lab, [SERVER_IP])
    root = lab.workdir / "www"
    root.mkdir()
    for i in range(N_OBJECTS):
        (root / f"o{i:02d}.bin").write_bytes(bytes(OBJECT_BYTES))
    web.start_nginx(lab, "h2", st.certs, root, http2=True)
    st.taps = {name: Tap(lab[name]) for name in ("h1", "h2")}
    for name, tap in st.taps.items():
        lab.undo.push(f"close the packet tap on {name}", tap.close)
    st.owner = {lab[name].ip(): name for name in st.taps}
    # Untimed: fills both hops' ARP caches (whose replies cross the delay) and the
    # server's first-handshake work, which no later batch repeats.
    _fetch(lab, params, ctx, "h2", "warmup")


def trial(lab, params: dict, ctx) -> dict:
    out, n, resent, over = {}, ctx.repeat, [], []
    for m in MODES:
        got = _fetch(lab, params, ctx, m, f"t{n:02d}-{m}")
        out[f"{m}_ms"], out[f"{m}_span_ms"] = got["network_ms"], got["span_ms"]
        resent += [f"{m}: {r}" for r in got["resent"]]
        over += [got["over"]]
    half = float(params["rtt_ms"]) / 2.0
    with lab.shaped({("r1", "h1"): dict(delay_ms=half, loss_pct=params["loss_pct"]),
                     ("r1", "h2"): dict(delay_ms=half, loss_pct=params["loss_pct"])}):
        for m in MODES:
            out[f"{m}_loss_ms"] = _fetch(lab, params, ctx, m, f"t{n:02d}-{m}-loss")["span_ms"]
    return out | exclusion("resent without loss: " + "; ".join(resent) if resent else "", *over)
