import sys
from types import SimpleNamespace
from wirelab.run import catalog
from wirelab.lab.net import Lab
from wirelab.kernel import facts
from wirelab.spec.context import TrialContext, RawWriter
from wirelab.measure import critical_path as cp
from pathlib import Path
exp = catalog.load("http2_vs_http1")
params = exp.grid({}, quick=True)[0]
mod = exp.module
orig = cp.critical_path
def traced(taps, owner, start, end_node, end, iw_segs=10, nodelay=frozenset()):
    p = orig(taps, owner, start, end_node, end, iw_segs, nodelay)
    print("network", round(p.network_ms,2), "compute", {k: round(v,2) for k,v in p.compute_ms.items()}, "hops", p.hops)
    # re-walk with a trace
    nodes = {n: cp._Node(ev) for n, ev in taps.items()}
    node, ev = end_node, end
    t0 = start
    steps = []
    while ev.ts > start and len(steps) < 400:
        if not ev.out:
            sender = owner.get(ev.seg.src); send = cp._departure(taps[sender], ev)
            steps.append(f"{(ev.ts-t0)*1e3:9.3f} {node} <- arrival from {sender} sent {(send.ts-t0)*1e3:9.3f} len {len(ev.seg.payload)}")
            node, ev = sender, send; continue
        here = nodes[node]; i = here.index[id(ev)]
        if i in here.first:
            steps.append(f"{(ev.ts-t0)*1e3:9.3f} {node} RESENT"); ev = here.events[here.first[i]]; continue
        if cp.is_data(ev):
            pred = cp._cause(here, ev, iw_segs, node in nodelay)
        else:
            pred = next((e for e in reversed(here.events[:i]) if e.ts <= ev.ts and (not e.out or cp.is_data(e))), None)
        kind = "data" if cp.is_data(ev) else "ack"
        steps.append(f"{(ev.ts-t0)*1e3:9.3f} {node} depart {kind} len {len(ev.seg.payload)} seq {ev.seg.seq} <- pred {'none' if pred is None else ('%.3f %s %s' % ((pred.ts-t0)*1e3, 'out' if pred.out else 'in', 'data' if cp.is_data(pred) else 'ack'))}")
        if pred is None or pred.ts <= start: break
        ev = pred
    print("\n".join(steps[:60]))
    here = nodes["h2"]
    # find the departure at ~303.59 and list events before it back to 256
    tgt = None
    for e in reversed(here.events):
        if e.out and cp.is_data(e) and e.ts < end.ts:
            pr = cp._cause(here, e, iw_segs, False)
            if pr is not None and pr.out and e.ts - pr.ts > 0.02:
                tgt = e; break
    lo_t = (cp._cause(here, tgt, iw_segs, False).ts - t0)*1e3
    key = cp._key(tgt.seg)
    for e in here.events:
        t = (e.ts-t0)*1e3
        if lo_t - 0.01 < t <= (tgt.ts - t0)*1e3:
            extra = ""
            if not e.out and not cp.is_data(e) and cp._reverse(cp._key(e.seg)) == key:
                st = here.state(key, e.ts)
                extra = f" enables={cp._enables(here, e, key)} cannot={cp._cannot_have_held(here, e, tgt, key, iw_segs, False)} una={st.snd_una} win={st.peer_window} mss={st.mss} resent={st.resent} need={(tgt.seg.seq + len(tgt.seg.payload) - (st.snd_una or 0)) % 2**32}"
            elif not e.out and not cp.is_data(e):
                extra = f" OTHER-CONN {cp._key(e.seg)} vs {key}"
            print(f"{t:9.3f} {'out' if e.out else 'in '} {'data' if cp.is_data(e) else 'ack '} ack={e.seg.ack} len={len(e.seg.payload)} win={e.seg.window}{extra}")
    return p
mod.critical_path = traced
with Lab(exp.topology(params), sysctls=exp.sysctls(params)) as lab:
    kernel = facts.read(lab.hosts()[0].ns)
    ctx = TrialContext(raw=RawWriter(Path("/work/main/.dbgraw"), 0), point=0, params=params, kernel=kernel, predicted=exp.predict(params, kernel), seed=1)
    mod.critical_path = orig
    mod.prepare(lab, params, ctx)
    mod.critical_path = traced
    mod.critical_path = lambda *a, **k: (lambda p: (print(p.network_ms, p.compute_ms, p.retransmissions), p)[1])(orig(*a, **k))
    for m in ("seq", "par6", "h2"):
        print(m, mod._fetch(lab, params, ctx, m, "dbg"))
