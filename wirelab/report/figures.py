"""Figures a teacher projects: each claim gets the picture that answers it.

The rules every figure follows (docs/CONTRIBUTING.md repeats them for new experiments):

* one figure answers the claim's question at a glance; its title is that question in a
  student's words, with the verdict; a footer gives the kernel, backend, trials and run;
* a categorical comparison is a grouped bar chart: the median as the bar, p10-p90 as a
  whisker, the prediction as a black mark across the bar; a sweep is lines with the
  prediction dashed; anything that happens in time is a timeline;
* units a student reads (ms, kB, round trips, segments), linear ticks unless the data
  spans decades (then 1, 10, 100 labels), nothing the claim does not name (diagnostics go
  to raw/ or a second figure); a quick grid with a single point still makes a picture;
* the Okabe-Ito palette (colour-blind safe), 16:9 at 1920 x 1080.

An experiment declares its figure as data (``FIGURE = Bars(...)``, ``Rounds(...)``,
``Waterfall(...)``, ``Sweep(...)``, ``Schedule(...)``, ``Timeline(...)``); :func:`render`
draws it from what a run wrote and returns the matplotlib Figure (tests inspect it),
:func:`save` writes png, svg or pdf.
"""
from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

from wirelab.report import analysis
from wirelab.spec.figure import Bars, Rounds, Schedule, Sweep, Timeline, Waterfall

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
SIZE_IN, DPI = (16.0, 9.0), 120          # 1920 x 1080
FORMATS = ("png", "svg", "pdf")
RC = {"font.size": 15, "axes.titlesize": 17, "axes.labelsize": 16, "legend.fontsize": 13,
      "xtick.labelsize": 14, "ytick.labelsize": 14, "axes.spines.top": False,
      "axes.spines.right": False, "figure.titlesize": 19}


# --- drawing ---------------------------------------------------------------------------------

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _frame(run, exp, question: str, pts: list[dict], **grid):
    """A 16:9 figure with the question and verdict as its title and the run's footer."""
    plt = _plt()
    with plt.rc_context(RC):
        fig = plt.figure(figsize=SIZE_IN, dpi=DPI)
        gs = fig.add_gridspec(**({"nrows": 1, "ncols": 1} | grid))
    verdict = analysis.verdict(pts, run.manifest.get("status") == "completed")
    ok = sum(1 for p in pts if p["ok"])
    title = "\n".join(textwrap.wrap(question, 90))
    fig.suptitle(f"{title}\nverdict: {verdict.upper()} ({ok} of {len(pts)} points within their "
                 "bands)", fontsize=RC["figure.titlesize"], x=0.01, ha="left")
    man, kern = run.manifest, run.manifest.get("kernel", {})
    fig.text(0.01, 0.01, f"{exp.id}   kernel {kern.get('release', '?')} "
             f"({man.get('backend', '?')})   {man.get('repeats', '?')} trials per point   "
             f"run {Path(run.dir).name}", fontsize=12, color="#555555")
    return fig, gs


UNITS = {"ms": "ms", "s": "s", "bytes": "B", "segs": "segments", "pct": "%"}


def _label(exp, params: dict, names, labels: dict) -> str:
    """What a student reads for a point's parameters NAMES: "rtt 50 ms", "tls 1.3"."""
    out = []
    for n in names:
        value = params[n]
        if str(value) in labels:
            out.append(labels[str(value)])
            continue
        base, _, unit = n.rpartition("_")
        if unit == "bytes":
            out.append(f"{base.replace('_', ' ')} {_size(float(value))}")
        elif unit in UNITS:
            out.append(f"{base.replace('_', ' ')} {analysis.fmt(value)} {UNITS[unit]}")
        else:
            out.append(f"{n}={analysis.fmt(value)}")
    return ", ".join(out)


def _bar_table(spec: Bars, exp, pts: list[dict]) -> tuple[list[str], list[str], dict]:
    """(groups, hues, {(group, hue): (point, metric)})."""
    cells: dict = {}
    if spec.matrix:
        groups = [g for g, _ in spec.matrix]
        hues = list(spec.hues)
        for g, metrics in spec.matrix:
            for h, m in zip(hues, metrics, strict=True):
                cells[(g, h)] = (pts[0], m)
        return groups, hues, cells
    metrics = list(spec.metrics)
    others = [n for n in exp.params if n != spec.x and len({p["params"][n] for p in pts}) > 1]
    if spec.x == "metric":
        groups = [label for label, _ in metrics]
        hues = []
        for p in pts:
            h = _label(exp, p["params"], others, spec.labels) or "measured"
            hues.append(h)
            for label, m in metrics:
                cells[(label, h)] = (p, m)
        return groups, list(dict.fromkeys(hues)), cells
    groups, hues = [], []
    for p in pts:
        if not any(m in p["measured"] for _, m in metrics):
            continue        # a case that measures something else (shown in the notes)
        g = spec.labels.get(str(p["params"][spec.x]), analysis.fmt(p["params"][spec.x]))
        groups.append(g)
        for label, m in metrics:
            h = ", ".join(x for x in (label if len(metrics) > 1 else "",
                                      _label(exp, p["params"], others, spec.labels)) if x)
            hues.append(h or "measured")
            cells[(g, h or "measured")] = (p, m)
    return list(dict.fromkeys(groups)), list(dict.fromkeys(hues)), cells


def draw_bars(fig, gs, spec: Bars, run, exp, pts: list[dict]):
    ax = fig.add_subplot(gs[0, 0])
    groups, hues, cells = _bar_table(spec, exp, pts)
    width = 0.8 / max(1, len(hues))
    reported = {m.name for m in exp.metrics if not m.judged}
    for hi, hue in enumerate(hues):
        xs, heights, lo, hi_err, preds, hollow = [], [], [], [], [], []
        for gi, g in enumerate(groups):
            if (g, hue) not in cells:
                continue
            p, m = cells[(g, hue)]
            if m not in p["measured"]:
                continue
            x = gi - 0.4 + width * (hi + 0.5)
            v = p["measured"][m]
            xs.append(x)
            heights.append(v)
            lo.append(max(0.0, v - p["p10"].get(m, v)))
            hi_err.append(max(0.0, p["p90"].get(m, v) - v))
            preds.append(p["predicted"].get(m))
            hollow.append(m in reported)
        colour = PALETTE[hi % len(PALETTE)]
        for x, v, is_hollow, top in zip(xs, heights, hollow, hi_err, strict=True):
            ax.bar(x, v, width * 0.92, color="white" if is_hollow else colour, edgecolor=colour,
                   hatch="//" if is_hollow else None, linewidth=2)
            ax.annotate(_num(v), (x, v + top), xytext=(0, 4), textcoords="offset points",
                        ha="center", va="bottom", fontsize=12)
        ax.errorbar(xs, heights, yerr=[lo, hi_err], fmt="none", ecolor="#333333", capsize=4, lw=1.5)
        for x, pr in zip(xs, preds, strict=True):
            if pr is not None:
                ax.hlines(pr, x - width * 0.5, x + width * 0.5, colors="black", linewidth=3)
        ax.bar(0, 0, 0, color=colour, label=hue)        # the legend entry
    ax.hlines([], 0, 0, colors="black", linewidth=3, label="prediction")
    ax.set_xticks(range(len(groups)), ["\n".join(textwrap.wrap(g, 22)) for g in groups])
    ax.set_ylabel(f"{spec.ylabel} [{spec.unit}]")
    if spec.unit == "round trips":                  # counts: whole-number ticks
        from matplotlib.ticker import MaxNLocator
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_ylim(bottom=0)
    notes = []
    for metric, text in spec.notes:
        vals = [p["measured"][metric] for p in pts if metric in p["measured"]]
        if vals:
            notes.append(text.format(value=sorted(vals)[len(vals) // 2]))
    if any(m in reported for _, m in cells.values()):
        notes.append("hatched: shown, not judged")
    notes.append("whiskers: p10-p90 of the trials")
    ax.margins(y=0.12)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.01),
              ncols=min(4, len(labels)), frameon=False)
    ax.text(1.0, -0.09, ";  ".join(notes), transform=ax.transAxes, ha="right", va="top",
            fontsize=12, color="#555555")
    if spec.timeline:
        _ladder(fig.add_subplot(gs[0, 1]), run, spec.timeline)
    if spec.trace:
        _cwnd_traces(fig.add_subplot(gs[0, 1]), run, exp, pts, spec.trace, [spec.x], spec.labels)
    return fig


def _cwnd_traces(ax, run, exp, pts: list[dict], name: str, label_by, labels: dict) -> None:
    """cwnd (solid) and ssthresh (dotted) over time from each point's last trace."""
    for i, p in enumerate(pts):
        path = Path(run.dir, "raw", f"point{p['point']:03d}", name)
        if not path.exists():
            continue
        rows = list(csv.DictReader(path.open()))
        colour = PALETTE[i % len(PALETTE)]
        t = [float(row["t_ms"]) / 1e3 for row in rows]
        ax.step(t, [int(row["snd_cwnd_segs"]) for row in rows], where="post", lw=2, color=colour,
                label=_label(exp, p["params"], label_by, labels))
        # an infinite ssthresh (slow start never ended) is not drawn
        ss = [float("nan") if int(row["snd_ssthresh_segs"]) >= 0x7FFFFFFF
              else int(row["snd_ssthresh_segs"]) for row in rows]
        ax.step(t, ss, where="post", lw=1.5, ls=":", color=colour)
    ax.set_yscale("log", base=2)
    _decade_ticks(ax.yaxis)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("congestion window [segments] (dotted: ssthresh)")
    ax.set_title("cwnd from TCP_INFO, one trial each")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best")


def _ladder(ax, run, name: str) -> None:
    """A packet ladder (sequence diagram) of one trial from raw/point*/NAME."""
    files = sorted(Path(run.dir, "raw").glob(f"point*/{name}"))
    if not files:
        ax.text(0.5, 0.5, f"no {name} in this run", ha="center", transform=ax.transAxes)
        ax.axis("off")
        return
    data = json.loads(files[-1].read_text())
    nodes = data["nodes"]
    xpos = {n: i for i, n in enumerate(nodes)}
    for n, x in xpos.items():
        ax.axvline(x, color="#555555", lw=2)
        ax.text(x, -0.02, n, transform=ax.get_xaxis_transform(), ha="center", va="top",
                fontsize=15, fontweight="bold")
    colours = {"data": PALETTE[0], "ack": PALETTE[1], "held": PALETTE[3]}
    for e in data["packets"]:
        c = colours.get(e.get("kind", "data"), PALETTE[0])
        ax.annotate("", xy=(xpos[e["to"]], e["arrive_ms"]), xytext=(xpos[e["from"]], e["sent_ms"]),
                    arrowprops={"arrowstyle": "->", "color": c, "lw": 2})
        mid = (xpos[e["to"]] + xpos[e["from"]]) / 2
        ax.text(mid, (e["sent_ms"] + e["arrive_ms"]) / 2, e["label"], ha="center", va="bottom",
                fontsize=12, color=c, rotation=0,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    for gap in data.get("gaps", []):
        ax.annotate("", xy=(xpos[gap["node"]] + 0.04, gap["to_ms"]),
                    xytext=(xpos[gap["node"]] + 0.04, gap["from_ms"]),
                    arrowprops={"arrowstyle": "<->", "color": PALETTE[3], "lw": 1.5})
        ax.text(xpos[gap["node"]] + 0.07, (gap["from_ms"] + gap["to_ms"]) / 2, gap["label"],
                color=PALETTE[3], fontsize=12, va="center")
    ax.set_xlim(-0.3, len(nodes) - 0.7)
    t_max = max([e["arrive_ms"] for e in data["packets"]] + [1.0])
    ax.set_ylim(t_max * 1.04, -t_max * 0.02)            # time runs down the page
    ax.set_xticks([])
    ax.set_ylabel("time [ms]")
    ax.set_title(data.get("title", "one request, packet by packet"))
    ax.spines["bottom"].set_visible(False)


def _rtt(params: dict) -> float:
    return float(params.get("rtt_ms") or 0.0)


def draw_rounds(fig, gs, spec: Rounds, run, exp, pts: list[dict]):
    ax = fig.add_subplot(gs[0, 0])
    kernels = analysis.kernels_of(run.manifest)
    hue_keys = sorted({tuple(p["params"][h] for h in spec.hue) for p in pts}, key=str)
    sizes = [float(p["params"][spec.size]) for p in pts]
    lo, hi = max(1.0, min(sizes) / 4), max(sizes) * 2
    for i, key in enumerate(hue_keys):
        colour = PALETTE[i % len(PALETTE)]
        sub = [p for p in pts if tuple(p["params"][h] for h in spec.hue) == key]
        base = sub[0]
        r = _rtt(base["params"])
        kernel = kernels.get(base["point"]) or {}
        label = _label(exp, base["params"], spec.hue, spec.labels) or "model"
        grid = sorted({*[lo * (hi / lo) ** (k / 300) for k in range(301)], *sizes})
        steps = []
        for s in grid:
            try:
                steps.append(exp.predict({**base["params"], spec.size: int(s)}, kernel)[spec.metric] / r)
            except Exception:       # noqa: BLE001 - a size the model refuses: leave a gap
                steps.append(float("nan"))
        ax.step([s / 1e3 for s in grid], steps, where="post", ls="--", color=colour, lw=2,
                label=f"formula, {label}")
        xs = [float(p["params"][spec.size]) / 1e3 for p in sub]
        ys = [p["measured"][spec.metric] / r for p in sub]
        yerr = [[max(0.0, (p["measured"][spec.metric] - p["p10"][spec.metric]) / r) for p in sub],
                [max(0.0, (p["p90"][spec.metric] - p["measured"][spec.metric]) / r) for p in sub]]
        ax.errorbar(xs, ys, yerr=yerr, fmt="o", ms=11, color=colour, capsize=5,
                    label=f"measured, {label}")
    if hi / lo >= 20:                           # linear unless the sizes span decades
        ax.set_xscale("log")
        _decade_ticks(ax.xaxis)
    ax.set_xlabel("transfer size [kB]")
    ax.set_ylabel("transfer time [round trips]")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best")
    ax2 = fig.add_subplot(gs[0, 1])
    traces = sorted(Path(run.dir, "raw").glob(f"point*/{spec.cwnd_file}"))
    for i, path in enumerate(traces):
        point = int(path.parent.name.removeprefix("point"))
        p = next((q for q in pts if q["point"] == point), None)
        if p is None:
            continue
        rows = list(csv.DictReader(path.open()))
        r = _rtt(p["params"]) or 1.0
        t = [float(row["t_ms"]) / r for row in rows]
        ax2.step(t, [int(row["snd_cwnd_segs"]) for row in rows], where="post", lw=2.5,
                 color=PALETTE[i % len(PALETTE)],
                 label=_label(exp, p["params"], [*spec.hue, spec.size], spec.labels))
    ax2.set_yscale("log", base=2)
    _decade_ticks(ax2.yaxis)
    ax2.set_xlabel("time since connect() [round trips]")
    ax2.set_ylabel("congestion window [segments]")
    ax2.set_title("cwnd from TCP_INFO: doubling per round")
    ax2.grid(True, which="both", alpha=0.3)
    if traces:
        ax2.legend(loc="best")
    return fig


def _size(b: float) -> str:
    """Bytes as a student reads them: 1 MiB, 64 KiB, 14.5 kB."""
    if b >= 1 << 20 and b % (1 << 20) == 0:
        return f"{b / (1 << 20):g} MiB"
    if b >= 1024 and b % 1024 == 0:
        return f"{b / 1024:g} KiB"
    return f"{b / 1000:.3g} kB" if b >= 1000 else f"{b:g} B"


def _num(v: float) -> str:
    """A value as a label: 1105, 50.2, 0.18."""
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2g}"


def _decade_ticks(axis) -> None:
    """Plain numbers on a log axis: 1, 10, 100, and 2, 5, 20, 50 between them."""
    from matplotlib.ticker import FuncFormatter

    def minor(v: float, _pos) -> str:
        mantissa = f"{v:.1e}"[0:3]
        return f"{v:g}" if mantissa in ("2.0", "5.0") else ""
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def draw_waterfall(fig, gs, spec: Waterfall, run, exp, pts: list[dict]):
    ax = fig.add_subplot(gs[0, 0])
    rows = sorted(pts, key=lambda p: tuple(str(p["params"][n]) for n in spec.rows))
    for yi, p in enumerate(rows):
        start = 0.0
        for pi, (label, m) in enumerate(spec.phases):
            end = p["measured"].get(m, start)
            ax.barh(yi, max(0.0, end - start), left=start, height=0.55, color=PALETTE[pi],
                    label=label if yi == 0 else None)
            pred = p["predicted"].get(m)
            if pred is not None:
                ax.vlines(pred, yi - 0.36, yi + 0.36, colors="black", lw=2.5,
                          label="model boundary" if yi == 0 and pi == 0 else None)
            start = max(start, end)
        tool = p["measured"].get(spec.tool_prefix + spec.phases[-1][1])
        if tool is not None:
            ax.barh(yi + 0.38, tool, height=0.12, color="#777777",
                    label="curl's own figure (processing included)" if yi == 0 else None)
        r = _rtt(p["params"])
        if r:
            ax.text(start, yi, f"  {start / r:.2f} RTT", va="center", fontsize=13)
    ax.set_yticks(range(len(rows)), [_label(exp, p["params"], spec.rows, {}) for p in rows])
    ax.invert_yaxis()
    ax.set_xlabel("time since the request began [ms] (network time)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), ncols=4, frameon=False)
    return fig


def draw_schedule(fig, gs, spec: Schedule, run, exp, pts: list[dict]):
    ax = fig.add_subplot(gs[0, 0])
    varying = [n for n in exp.params if len({p["params"][n] for p in pts}) > 1]
    t_max = 1.0
    for yi, p in enumerate(pts):
        path = Path(run.dir, "raw", f"point{p['point']:03d}", spec.file)
        trials = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        for k, tr in enumerate(trials):
            y = yi + (k - (len(trials) - 1) / 2) * 0.08
            ax.plot(tr["events"], [y] * len(tr["events"]), "o", color=PALETTE[0], ms=9,
                    alpha=0.8, label=spec.event if yi == 0 and k == 0 else None)
            if tr.get("end") is not None:
                ax.plot([tr["end"]], [y], "X", color=PALETTE[3], ms=13,
                        label=spec.end if yi == 0 and k == 0 else None)
            t_max = max([t_max, tr.get("end") or 0.0, *tr["events"]])
        if trials:
            pred = trials[0]
            ax.vlines(pred["predicted"], yi - 0.3, yi + 0.3, colors="black", lw=2,
                      label="kernel's schedule" if yi == 0 else None)
            if pred.get("predicted_end") is not None:
                ax.vlines([pred["predicted_end"]], yi - 0.35, yi + 0.35, colors=PALETTE[3],
                          lw=3, linestyles="--", label="predicted give-up" if yi == 0 else None)
    ax.set_yticks(range(len(pts)), [_label(exp, p["params"], varying, spec.labels) or exp.id
                                    for p in pts])
    ax.invert_yaxis()
    if t_max > 20:
        ax.set_xscale("symlog", linthresh=1.0)
        _decade_ticks(ax.xaxis)
    ax.set_xlabel("time since the first transmission [s]")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), ncols=4, frameon=False)
    return fig


def draw_sweep(fig, gs, spec: Sweep, run, exp, pts: list[dict]):
    ax = fig.add_subplot(gs[0, 0])
    ax2 = fig.add_subplot(gs[1, 0], sharex=ax)
    x = exp.X
    judged = [m for m in exp.trial_metrics if m.plot]
    for i, m in enumerate(judged):
        c = PALETTE[i % len(PALETTE)]
        sub = sorted((p for p in pts if m.name in p["measured"]), key=lambda p: float(p["params"][x]))
        xs = [float(p["params"][x]) for p in sub]
        med = [p["measured"][m.name] for p in sub]
        ax.plot(xs, [p["predicted"][m.name] for p in sub], "--", color=c, lw=2,
                label=f"{m.name.removesuffix('_ms')}: prediction")
        ax.errorbar(xs, med, yerr=[[v - p["p10"][m.name] for v, p in zip(med, sub, strict=True)],
                                   [p["p90"][m.name] - v for v, p in zip(med, sub, strict=True)]],
                    fmt="o", ms=10, color=c, capsize=5, label=f"{m.name.removesuffix('_ms')}: measured")
        ax2.plot(xs, [v - p["predicted"][m.name] for v, p in zip(med, sub, strict=True)], "o-",
                 color=c, ms=8)
        if all(m.name in p["bounds"] for p in sub):
            ax2.fill_between(xs, [p["bounds"][m.name][0] - p["predicted"][m.name] for p in sub],
                             [p["bounds"][m.name][1] - p["predicted"][m.name] for p in sub],
                             color=c, alpha=0.12, label=f"pass band ({m.name.removesuffix('_ms')})")
    unit = judged[0].unit if judged else ""
    ax.set_ylabel(f"time [{unit}]")
    ax2.set_ylabel(f"excess [{unit}]")
    ax2.set_xlabel(x.replace("_ms", " [ms]"))
    ax2.axhline(0, color="#555555", lw=1)
    xs_all = sorted({float(p["params"][x]) for p in pts})
    if len(xs_all) > 2 and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 20:
        ax.set_xscale("log")
        ax.set_yscale("log")
        _decade_ticks(ax.xaxis)
        _decade_ticks(ax.yaxis)
    for a in (ax, ax2):
        a.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left")
    ax2.legend(loc="upper left", fontsize=11)
    return fig


def _timeline_rows(path: Path) -> dict[int, list[dict]]:
    """{repeat: rows} of a timeline.csv (empty cells None)."""
    out: dict[int, list[dict]] = {}
    if path.exists():
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                row = {k: (float(v) if v not in ("", None) else None) for k, v in r.items()}
                out.setdefault(int(row["repeat"] or 0), []).append(row)
    return out


def draw_timeline(fig, gs, spec: Timeline, run, exp, pts: list[dict]):
    varying = [n for n in exp.params if len({p["params"][n] for p in pts}) > 1]
    axes = [fig.add_subplot(gs[i, 0]) for i in range(len(spec.panels))]
    for a in axes[1:]:
        a.sharex(axes[0])
    panels = [((cols,) if isinstance(cols, str) else tuple(cols), ylabel) for cols, ylabel in spec.panels]
    spans: list = []
    t_end = 1.0
    for k, p in enumerate(pts):
        d = Path(run.dir, "raw", f"point{p['point']:03d}")
        label = _label(exp, p["params"], varying, spec.labels) or "measured"
        for j, rows in enumerate(_timeline_rows(d / spec.file).values()):
            t_end = max([t_end, *(r["t_s"] for r in rows)])
            # Earlier points are drawn wider, so where two points agree (both at 0, say)
            # the later one lies inside the earlier one and both colours show.
            wide = 1.5 * (len(pts) - 1 - k)
            for ax, (cols, _) in zip(axes, panels, strict=True):
                for c, col in enumerate(cols):      # a panel's second column: dashed, not widened
                    w = wide if c == 0 else 0.0
                    ax.plot([r["t_s"] for r in rows], [r.get(col) for r in rows], "-o" if c == 0 else "--",
                            ms=3 + w, lw=(2.2 + w) if j == 0 else 1.0, alpha=1.0 if j == 0 else 0.35,
                            color=PALETTE[k % len(PALETTE)], label=label if j == 0 and c == 0 else None)
        fpath = d / spec.faults
        if not spans and fpath.exists() and fpath.read_text().strip():
            spans = json.loads(fpath.read_text().splitlines()[0])["spans"]
    for i, (start, end, text) in enumerate(spans):
        for ax in axes:
            ax.axvspan(start, end if end is not None else t_end, color="#999999", alpha=0.18, lw=0)
        axes[0].annotate(text, (start, 1.0), xycoords=("data", "axes fraction"),
                         xytext=(3, -14 - 14 * (i % 3)), textcoords="offset points", fontsize=12,
                         color="#333333")
    for col, value, text in spec.limits:
        for ax, (cols, _) in zip(axes, panels, strict=True):
            if col in cols:
                ax.axhline(value, color="black", ls="--", lw=1.5, label=text)
    for ax, (_, ylabel) in zip(axes, panels, strict=True):
        ax.set_ylabel(ylabel, fontsize=13)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.set_ylim(bottom=-0.03 * ax.get_ylim()[1])     # a line at 0 is seen whole
        if ax is not axes[-1]:
            ax.tick_params(labelbottom=False)
    fig.align_ylabels(axes)
    axes[-1].set_xlabel("time since the workload started [s] (shaded: a fault in force)")
    axes[0].legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), ncols=4, frameon=False)
    return fig


def render(run, exp):
    """The experiment's figure for RUN, as a matplotlib Figure (not yet saved)."""
    spec = getattr(exp.module, "FIGURE", None) or Sweep(exp.CLAIM)
    pts = analysis.of_run(exp, run)
    plt = _plt()
    with plt.rc_context(RC):
        if isinstance(spec, Bars):
            two = bool(spec.timeline or spec.trace)
            fig, gs = _frame(run, exp, spec.question, pts, ncols=2 if two else 1,
                             width_ratios=[3, 2] if two else None)
            draw_bars(fig, gs, spec, run, exp, pts)
        elif isinstance(spec, Rounds):
            fig, gs = _frame(run, exp, spec.question, pts, ncols=2, width_ratios=[3, 2])
            draw_rounds(fig, gs, spec, run, exp, pts)
        elif isinstance(spec, Schedule):
            fig, gs = _frame(run, exp, spec.question, pts)
            draw_schedule(fig, gs, spec, run, exp, pts)
        elif isinstance(spec, Waterfall):
            fig, gs = _frame(run, exp, spec.question, pts)
            draw_waterfall(fig, gs, spec, run, exp, pts)
        elif isinstance(spec, Timeline):
            fig, gs = _frame(run, exp, spec.question, pts, nrows=max(1, len(spec.panels)))
            draw_timeline(fig, gs, spec, run, exp, pts)
        else:
            fig, gs = _frame(run, exp, spec.question, pts, nrows=2, height_ratios=[3, 1.3])
            draw_sweep(fig, gs, spec, run, exp, pts)
        fig.tight_layout(rect=(0, 0.03, 1, 0.99))
    return fig


def varied_sysctls(exp, pts: list[dict]) -> list:
    """The parameters that set a sysctl and take more than one value in this run."""
    return [p for p in exp.PARAMS
            if p.sysctl and len({str(pt["params"][p.name]) for pt in pts}) > 1]


def render_sysctl(run, exp, param):
    """The effect of one swept sysctl: its values along x (in the grid's order), each
    judged metric's median with p10-p90 whiskers against the prediction (dashed), a line
    per combination of the run's other varied parameters."""
    pts = analysis.of_run(exp, run)
    seen = {str(p["params"][param.name]) for p in pts}
    values = [str(v) for v in param.grid if str(v) in seen] + sorted(
        seen - {str(v) for v in param.grid})
    chosen = list(param.effect) or [m.name for m in exp.trial_metrics if m.judged and m.plot]
    metrics = [exp.metric(n) for n in chosen if any(n in p["measured"] for p in pts)][:2]
    others = [n for n in exp.params if n != param.name
              and len({str(p["params"][n]) for p in pts}) > 1]
    plt = _plt()
    with plt.rc_context(RC):
        fig, gs = _frame(run, exp, f"What does {param.sysctl} do here?", pts,
                         ncols=max(1, len(metrics)))
        for mi, m in enumerate(metrics):
            ax = fig.add_subplot(gs[0, mi])
            groups: dict[str, list[dict]] = {}
            for p in pts:
                if m.name in p["measured"]:
                    groups.setdefault(_label(exp, p["params"], others, {}), []).append(p)
            for gi, (label, sub) in enumerate(sorted(groups.items())):
                c = PALETTE[gi % len(PALETTE)]
                sub.sort(key=lambda p: values.index(str(p["params"][param.name])))
                xs = [values.index(str(p["params"][param.name])) + (gi - (len(groups) - 1) / 2) * 0.08
                      for p in sub]
                med = [p["measured"][m.name] for p in sub]
                ax.plot(xs, [p["predicted"][m.name] for p in sub], "--", color=c, lw=2,
                        marker="_", ms=30, mew=3)
                lo = [max(0.0, v - p["p10"][m.name]) for v, p in zip(med, sub, strict=True)]
                hi = [max(0.0, p["p90"][m.name] - v) for v, p in zip(med, sub, strict=True)]
                ax.errorbar(xs, med, yerr=[lo, hi], fmt="o", ms=11, color=c, capsize=6,
                            mfc="white" if not m.judged else c, mew=2,
                            label=(label or "measured") + ("" if m.judged else " (reported)"))
            ax.plot([], [], "--", color="black", lw=2, label="prediction")
            ax.set_xticks(range(len(values)), values)
            ax.set_xlim(-0.5, len(values) - 0.5)
            ax.set_xlabel(f"{param.sysctl}")
            ax.set_ylabel(f"{m.name.rsplit('_', 1)[0].replace('_', ' ')} [{m.unit_label}]")
            ax.grid(True, axis="y", alpha=0.3)
            ax.legend(loc="best")
        if param.advice:
            fig.text(0.99, 0.01, "\n".join(textwrap.wrap(f"guides: {param.advice}", 110)),
                     ha="right", fontsize=12, color="#555555")
        fig.tight_layout(rect=(0, 0.05, 1, 0.99))
    return fig


def save(fig, out: Path) -> Path:
    fmt = out.suffix.lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"figure format {fmt!r}: one of {', '.join(FORMATS)}")
    fig.savefig(out, dpi=DPI, format=fmt)
    _plt().close(fig)
    return out
