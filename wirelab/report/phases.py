"""The URL-journey plot: curl's cumulative phases in round trips.

One panel per (name lookup, TLS version).  Each phase's median time in the
network, divided by the RTT, is drawn (filled) against the RTT next to the
model's round-trip count (a flat line); curl's own figure for the phase
(hollow) adds each end's processing and the server's think time s, a
constant in milliseconds that shrinks toward the line as r grows.  Drawn
only from what a run wrote.
"""
from __future__ import annotations

from pathlib import Path

from wirelab.report import analysis

PHASES = ("namelookup_ms", "connect_ms", "appconnect_ms", "starttransfer_ms")
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def phases_per_rtt(run, exp, out: Path | None = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [p for p in analysis.of_run(exp, run) if float(p["params"]["rtt_ms"]) > 0]
    panels = sorted({(p["params"]["dns"], p["params"]["tls"]) for p in pts})
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(3.6 * max(1, len(panels)), 4.6),
                             sharey=True, squeeze=False)
    for ax, (dns, tls) in zip(axes[0], panels, strict=False):
        sub = [p for p in pts if p["params"]["dns"] == dns and p["params"]["tls"] == tls]
        for think, style in ((t, "-" if i == 0 else "--")
                             for i, t in enumerate(sorted({p["params"]["think_ms"] for p in sub}))):
            line = sorted((p for p in sub if p["params"]["think_ms"] == think),
                          key=lambda p: float(p["params"]["rtt_ms"]))
            xs = [float(p["params"]["rtt_ms"]) for p in line]
            for m, c in zip(PHASES, COLOURS, strict=True):
                ax.plot(xs, [p["predicted"][m] / x for p, x in zip(line, xs, strict=True)], style, color=c,
                        alpha=0.5, lw=1.5)
                ax.plot(xs, [p["measured"][m] / x for p, x in zip(line, xs, strict=True)],
                        "o" if p_ok(line) else "x", color=c, ms=5,
                        label=f"{m.removesuffix('_ms')}, s={analysis.fmt(think)} ms")
                curl = [(x, p["measured"][f"curl_{m}"] / x) for p, x in zip(line, xs, strict=True)
                        if f"curl_{m}" in p["measured"]]
                if curl:
                    ax.plot(*zip(*curl, strict=True), "o", mfc="none", color=c, ms=6, alpha=0.6)
        ax.set_xscale("log")
        ax.set_title(f"dns={dns}, TLS {tls}", fontsize=9)
        ax.set_xlabel("rtt [ms]")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("time / RTT  (filled: network; hollow: curl -w; lines: model)")
    axes[0][0].legend(fontsize=6, loc="upper right")
    verdict = analysis.verdict(analysis.of_run(exp, run),
                               run.manifest.get("status") == "completed")
    fig.suptitle(f"[{exp.id}] cumulative phases in RTTs, network (judged) and curl -w; "
                 f"verdict {verdict.upper()}",
                 fontsize=10)
    fig.tight_layout()
    out = out or Path(run.dir) / "phases_per_rtt.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def p_ok(points: list[dict]) -> bool:
    return all(p["ok"] for p in points)
