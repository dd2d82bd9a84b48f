"""Measured against predicted, drawn only from what a run wrote.

Top panel, one colour per metric: every trial as a faint dot (the spread of
repeats), the median as a marker, the prediction as a line.  Bottom panel:
the median's excess over the prediction with the pass band shaded, the
view that shows whether a claim holds.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from wirelab import analysis
from wirelab.experiment import Experiment, load
from wirelab.results import Run, read_run

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def plot_run(run: Run, exp: Experiment | None = None, out: Path | None = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exp = exp or load(run.experiment)
    pts = analysis.points(exp, run.rows)
    x = exp.X
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 7.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1.4]})
    xs_all = sorted({p["params"][x] for p in pts})
    log_x = len(xs_all) > 2 and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 20
    for i, m in enumerate(exp.METRICS):
        c = COLOURS[i % len(COLOURS)]
        trials = [(r[x], r[m]) for r in run.rows if r.get(m) is not None]
        if trials:
            ax.scatter([t[0] for t in trials], [t[1] for t in trials], s=9, alpha=0.25, color=c,
                       linewidths=0)
        ok_pts = [p for p in pts if m in p["measured"]]
        px = [p["params"][x] for p in ok_pts]
        ax.plot(px, [p["predicted"][m] for p in ok_pts], "-", color=c, alpha=0.6, lw=1.5,
                label=f"{m} predicted")
        ax.plot(px, [p["measured"][m] for p in ok_pts], "o", color=c, ms=6,
                label=f"{m} measured ({exp.TOLERANCE.statistic})")
        ax2.plot(px, [p["measured"][m] - p["predicted"][m] for p in ok_pts], "o-", color=c, ms=5,
                 label=m)
        bad = [p for p in ok_pts if not p["ok"]]
        ax.plot([p["params"][x] for p in bad], [p["measured"][m] for p in bad], "x", color="k",
                ms=10, mew=2)
    # Each metric's pass band, in its colour, around zero excess.
    for i, m in enumerate(exp.METRICS):
        band_pts = [p for p in pts if m in p["bounds"]]
        if band_pts:
            bx = [p["params"][x] for p in band_pts]
            lo = [p["bounds"][m][0] - p["predicted"][m] for p in band_pts]
            hi = [p["bounds"][m][1] - p["predicted"][m] for p in band_pts]
            ax2.fill_between(bx, lo, hi, color=COLOURS[i % len(COLOURS)], alpha=0.10,
                             label=f"pass band {m}")
    ax2.axhline(0, color="grey", lw=0.8)
    unit = exp.units(next(iter(exp.METRICS)))
    if log_x:
        from matplotlib.ticker import ScalarFormatter
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis, ax2.xaxis):
            axis.set_major_formatter(ScalarFormatter())
    ax.set_ylabel(f"time [{unit}]" if unit else "value")
    ax2.set_ylabel(f"measured - predicted [{unit}]")
    ax2.set_xlabel(x.replace("_", " [", 1) + "]" if "_" in x else x)
    ax.grid(True, which="both", alpha=0.3)
    ax2.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax2.legend(fontsize=7, loc="upper left")
    m = run.manifest
    verdict = analysis.verdict(pts, m.get("status") == "completed")
    title = "\n".join(textwrap.wrap(exp.CLAIM, 80))
    fig.suptitle(f"{title}\n[{exp.id}]  verdict: {verdict.upper()}", fontsize=11)
    k = m.get("kernel", {})
    fig.text(0.01, 0.005, f"kernel {k.get('release', '?')} ({m.get('backend', '?')}), "
             f"{m.get('repeats', '?')} trials/point, dots = trials, markers = "
             f"{exp.TOLERANCE.statistic}; run {run.dir.name}", fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    out = out or run.dir / "plot.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def replot(run_dir) -> Path:
    return plot_run(read_run(run_dir))
