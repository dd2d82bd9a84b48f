"""Measured against predicted, drawn only from what a run wrote.

Top panel, one colour per metric: every trial as a faint dot (the spread of
repeats), the median as a marker, the prediction as a line.  Bottom panel:
the median's excess over the prediction with the pass band shaded, the
view that shows whether a claim holds.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from wirelab.report import analysis
from wirelab.report.results import Run
from wirelab.spec.experiment import Experiment

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def plot_run(run: Run, exp: Experiment, out: Path | None = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    custom = getattr(exp.module, "plot", None)
    if custom is not None:  # an experiment whose picture is not "metric vs x"
        return custom(run, exp, out or run.dir / "plot.png")
    pts = analysis.of_run(exp, run)
    x = exp.X
    others = [n for n in exp.params if n != x]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 7.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1.4]})
    xs_all = sorted({p["params"][x] for p in pts})
    numeric_x = all(isinstance(v, (int, float)) for v in xs_all)
    log_x = (numeric_x and len(xs_all) > 2 and min(xs_all) > 0
             and max(xs_all) / min(xs_all) >= 20)
    # One line per (series, metric): a series is a combination of the
    # parameters other than x (e.g. cc=cubic, mode=pool4).
    series = sorted({tuple((n, p["params"][n]) for n in others) for p in pts}, key=str)
    # A metric's plot flag picks what is worth a picture (a bookkeeping metric such
    # as a jiffy length stays in the CSV); per-point metrics are in the summary.
    shown = [m for m in exp.trial_metrics if m.plot]
    metrics = [m.name for m in shown]
    hollow = {m.name for m in shown if not m.judged}
    unit_of = {m.name: m.unit for m in shown}
    # Metrics in a second unit (e.g. rtts next to ms) get their own y axis on
    # the right, so neither scale squashes the other.
    units = list(dict.fromkeys(unit_of[m] for m in metrics))
    ax_r = ax.twinx() if len(units) > 1 else None
    axis_of = {m: (ax if unit_of[m] == units[0] or ax_r is None else ax_r) for m in metrics}
    markers = "os^Dv*P"
    xpos = (lambda v: v) if numeric_x else (lambda v: xs_all.index(v))
    k = 0
    # Colour = series, marker = metric; lines are predictions, markers the
    # measured statistic, faint dots the individual trials.
    for si, skey in enumerate(series):
        c = COLOURS[si % len(COLOURS)] if si < len(COLOURS) else plt.cm.tab20(si % 20)
        label_s = ", ".join(f"{n}={analysis.fmt(v)}" for n, v in skey)
        spts = [p for p in pts if all(p["params"][n] == v for n, v in skey)]
        srows = [r for r in run.rows if all(r.get(n) == v for n, v in skey)]
        for mi, m in enumerate(metrics):
            k += 1
            name = (m if len(metrics) > 1 else "") + (f" [{label_s}]" if label_s else "")
            trials = [(xpos(r[x]), r[m]) for r in srows if r.get(m) is not None]
            if trials:
                axis_of[m].scatter([t[0] for t in trials], [t[1] for t in trials], s=9,
                                   alpha=0.25, color=c, linewidths=0)
            ok_pts = sorted((p for p in spts if m in p["measured"]),
                            key=lambda p: xpos(p["params"][x]))
            px = [xpos(p["params"][x]) for p in ok_pts]
            axis_of[m].plot(px, [p["predicted"][m] for p in ok_pts], "-", color=c, alpha=0.55,
                            lw=1.5)
            axis_of[m].plot(px, [p["measured"][m] for p in ok_pts], markers[mi % len(markers)],
                            color=c, ms=6, mfc="none" if m in hollow else c,
                            label=(name.strip() or m) + (" (reported)" if m in hollow else ""))
            ax2.plot(px, [p["measured"][m] - p["predicted"][m] for p in ok_pts],
                     markers[mi % len(markers)] + "-", color=c, ms=5, lw=1)
            bad = [p for p in ok_pts if not p["ok"] and m not in hollow]
            axis_of[m].plot([xpos(p["params"][x]) for p in bad], [p["measured"][m] for p in bad],
                            "x", color="k", ms=11, mew=2)
            # The pass band around zero excess, for the series' first metric.
            if ok_pts and mi == 0 and m in ok_pts[0]["bounds"]:
                lo = [p["bounds"][m][0] - p["predicted"][m] for p in ok_pts]
                hi = [p["bounds"][m][1] - p["predicted"][m] for p in ok_pts]
                ax2.fill_between(px, lo, hi, color=c, alpha=0.08)
    from matplotlib.lines import Line2D
    ax.add_artist(ax.legend(handles=[
        Line2D([], [], color="grey", lw=1.5, alpha=0.6, label="line: prediction"),
        Line2D([], [], color="grey", marker="o", lw=0, label="marker: measured (median)"),
        Line2D([], [], color="grey", marker="o", mfc="none", lw=0,
               label="hollow: reported, not judged"),
        Line2D([], [], color="grey", marker="o", lw=0, ms=3, alpha=0.4, label="dots: trials"),
        Line2D([], [], color="k", marker="x", lw=0, mew=2, label="x: outside tolerance")],
        fontsize=7, loc="lower right"))
    if not numeric_x:
        ax2.set_xticks(range(len(xs_all)), [str(v) for v in xs_all])
    ax2.axhline(0, color="grey", lw=0.8)
    unit = unit_of[metrics[0]]
    positive = all(v > 0 for p in pts for d in (p["measured"], p["predicted"]) for v in d.values())
    if log_x:
        from matplotlib.ticker import ScalarFormatter
        ax.set_xscale("log")
        if positive:  # a zero (a 0-RTT count, a stall that vanished) needs a linear y
            ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis, ax2.xaxis):
            axis.set_major_formatter(ScalarFormatter())
    ax.set_ylabel(f"[{unit}]" if unit else "value")
    if ax_r is not None:
        ax_r.set_ylabel(f"[{units[1]}]" + (f", [{'], ['.join(units[2:])}]" if units[2:] else ""))
        if log_x and positive:
            ax_r.set_yscale("log")
        handles, labels = ax_r.get_legend_handles_labels()
        ax_r.legend(handles, labels, fontsize=7, loc="center right")
    ax2.set_ylabel(f"measured - predicted [{unit}]")
    ax2.set_xlabel(x.replace("_", " [", 1) + "]" if "_" in x else x)
    ax.grid(True, which="both", alpha=0.3)
    ax2.grid(True, alpha=0.3)
    if k > 6:  # many lines: keep the legend off the data
        fig.set_size_inches(14, 7.5)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.06 if ax_r else 1.01, 1),
                  borderaxespad=0)
    else:
        ax.legend(fontsize=8, loc="upper left")
    ax2.text(0.99, 0.95, "shaded: pass band", transform=ax2.transAxes, ha="right", va="top",
             fontsize=7, color="grey")
    man = run.manifest
    verdict_text = analysis.verdict(pts, man.get("status") == "completed")
    title = "\n".join(textwrap.wrap(exp.CLAIM, 80))
    fig.suptitle(f"{title}\n[{exp.id}]  verdict: {verdict_text.upper()}", fontsize=11)
    kern = man.get("kernel", {})
    fig.text(0.01, 0.005, f"kernel {kern.get('release', '?')} ({man.get('backend', '?')}), "
             f"{man.get('repeats', '?')} trials/point, dots = trials, markers = "
             f"median; run {run.dir.name}", fontsize=7,
             color="grey")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    out = out or run.dir / "plot.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
