"""One claim on several kernels: the combined results directory, its summary and figure.

``wirelab run X --kernel uml:6.1,uml:6.12`` writes ``<results>/<experiment>/<run-id>/``
holding a normal run directory per kernel (``kernel-6.1/``, ``kernel-6.12/``: ``wirelab
show`` and ``plot`` work on each) and, at the top:

* ``manifest.json``: ``"kind": "across kernels"``, the experiment, the kernels in the
  order they ran, each with its sub-run folder, exit status and, when it did not finish,
  why (a model refusing the release is exit 3);
* ``summary.md``: the verdict per kernel, where the kernels differ (a metric whose p10-p90
  ranges do not overlap, or whose verdict differs), the medians side by side per point
  and kernel, and which rule of which release each prediction used;
* ``plot.png``: both kernels overlaid, per judged metric and point.

Everything here is derived from those files (:func:`read_across`), like a single run's.
"""
from __future__ import annotations

import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from wirelab.errors import BadInput
from wirelab.report import analysis
from wirelab.report.results import Run, read_run
from wirelab.spec.experiment import Experiment

KIND = "across kernels"
EXIT_MATCH, EXIT_DEVIATES, EXIT_ENV, EXIT_LAB = 0, 1, 3, 4


@dataclass
class Part:
    """One kernel's share of a run across kernels."""
    kernel: str                     # "uml:6.1"
    exit_code: int
    run: Run | None = None          # None when the guest never created its run directory
    error: str = ""                 # what the guest said when it stopped early
    pts: list[dict] = field(default_factory=list)

    @property
    def release(self) -> str:
        return (self.run.manifest.get("kernel", {}).get("release", "?") if self.run else "?")

    @property
    def name(self) -> str:
        return f"{self.kernel} ({self.release})" if self.run else self.kernel

    @property
    def verdict(self) -> str:
        """match, deviates, refused, lab fault, interrupted or incomplete."""
        if self.exit_code == EXIT_ENV:
            return "refused"
        if self.exit_code in (EXIT_MATCH, EXIT_DEVIATES) and self.run is not None:
            return analysis.verdict(self.pts, self.run.manifest.get("status") == "completed")
        if self.exit_code == 130:
            return "interrupted"
        return "lab fault"

    @property
    def why(self) -> str:
        """Why the kernel's part did not finish ("" when it did)."""
        if self.exit_code in (EXIT_MATCH, EXIT_DEVIATES):
            return ""
        if self.error:
            return self.error
        status = str(self.run.manifest.get("status", "")) if self.run else ""
        if status.startswith("failed: "):
            return re.sub(r"^failed: [A-Za-z_]\w*: ", "", status)
        return f"exit status {self.exit_code}" + (f" (run status {status})" if status else "")

    @property
    def state(self) -> str:
        """The verdict as a person reads it: "MATCH", "refused: <why>"."""
        v = self.verdict
        return f"{v}: {self.why}" if self.why else v.upper()


def part(exp: Experiment, kernel: str, exit_code: int, run_dir: Path | None,
         error: str = "") -> Part:
    run = read_run(run_dir) if run_dir is not None and (Path(run_dir) / "manifest.json").exists() \
        else None
    return Part(kernel, exit_code, run, error, analysis.of_run(exp, run) if run else [])


def read_across(path: str | Path, exp: Experiment) -> tuple[dict, list[Part]]:
    """(the top manifest, the parts) of a combined directory."""
    path = Path(path)
    manifest = json.loads((path / "manifest.json").read_text())
    if manifest.get("kind") != KIND:
        raise BadInput(f"{path} is not a run across kernels")
    parts = [part(exp, k["kernel"], int(k["exit_code"]), path / k["dir"] if k.get("dir") else None,
                  k.get("error", "")) for k in manifest.get("kernels", [])]
    return manifest, parts


def exit_code(parts: list[Part]) -> int:
    """0 every kernel matches, 1 one deviates, 3 one was refused, 4 one had a lab fault
    (the worst wins: a lab fault, then a refusal, then a deviation)."""
    codes = [p.exit_code for p in parts]
    if not codes:
        return EXIT_LAB
    for worst in (130, EXIT_LAB, EXIT_ENV, EXIT_DEVIATES):
        if worst in codes:
            return worst
    if any(c != EXIT_MATCH for c in codes):
        return EXIT_LAB
    return EXIT_MATCH


def overall(parts: list[Part]) -> str:
    code = exit_code(parts)
    return {EXIT_MATCH: "match", EXIT_DEVIATES: "deviates", EXIT_ENV: "refused",
            130: "interrupted"}.get(code, "lab fault")


# --- the points side by side ------------------------------------------------------------

def _key(p: dict) -> tuple:
    return tuple((k, analysis.fmt(v)) for k, v in p["params"].items())


def point_keys(parts: list[Part]) -> list[tuple]:
    """Every grid point any kernel measured, in the order the first one ran them."""
    return list(dict.fromkeys(_key(p) for pt in parts for p in pt.pts))


def _at(pt: Part, key: tuple) -> dict | None:
    return next((p for p in pt.pts if _key(p) == key), None)


def metrics_shown(exp: Experiment, parts: list[Part]) -> list[str]:
    """Judged metrics first, then reported ones, each only if some kernel measured it."""
    names = [m.name for m in exp.metrics if m.judged] + [m.name for m in exp.metrics
                                                          if not m.judged]
    return [m for m in names if any(m in p["measured"] for pt in parts for p in pt.pts)]


def metric_ok(p: dict, m: str) -> bool | None:
    """Whether METRIC's statistic is inside its band at point P (None: not judged there)."""
    if m not in p["measured"] or m not in p["bounds"]:
        return None
    lo, hi = p["bounds"][m]
    return lo <= p["measured"][m] <= hi


def differences(exp: Experiment, parts: list[Part]) -> list[dict]:
    """Where the kernels differ: per point and metric, the p10-p90 ranges do not overlap
    or the metric's verdict differs; per point, the point's verdict differs when no metric
    explains it (an experiment's own check)."""
    out: list[dict] = []
    for key in point_keys(parts):
        here: list[tuple[Part, dict]] = []
        for pt in parts:
            at = _at(pt, key)
            if at is not None:
                here.append((pt, at))
        if len(here) < 2:
            continue
        explained = False
        for m in metrics_shown(exp, parts):
            have = [(pt, p) for pt, p in here if m in p["measured"]]
            if len(have) < 2:
                continue
            reasons: list[str] = []
            for i, (a, pa) in enumerate(have):
                for b, pb in have[i + 1:]:
                    if pa["p90"][m] < pb["p10"][m] or pb["p90"][m] < pa["p10"][m]:
                        reasons.append(f"p10-p90 ranges do not overlap ({a.kernel} "
                                       f"[{pa['p10'][m]:.3f}, {pa['p90'][m]:.3f}], {b.kernel} "
                                       f"[{pb['p10'][m]:.3f}, {pb['p90'][m]:.3f}])")
            oks = {pt.kernel: metric_ok(p, m) for pt, p in have}
            if len({v for v in oks.values() if v is not None}) > 1:
                reasons.append("the verdict differs (" + ", ".join(
                    f"{k} {'within' if v else 'outside'} its band" for k, v in oks.items()
                    if v is not None) + ")")
            if reasons:
                explained = explained or any(r.startswith("the verdict") for r in reasons)
                preds = {pt.kernel: p["predicted"].get(m) for pt, p in have}
                out.append({"params": dict(key), "metric": m, "reasons": reasons,
                            "medians": {pt.kernel: p["measured"][m] for pt, p in have},
                            "predicted": preds})
        if len({p["ok"] for _, p in here}) > 1 and not explained:
            out.append({"params": dict(key), "metric": None, "medians": {}, "predicted": {},
                        "reasons": ["the point's verdict differs (" + ", ".join(
                            f"{pt.kernel} " + ("ok" if p["ok"] else "NO: " + "; ".join(p["failures"]))
                            for pt, p in here) + ")"]})
    return out


def rules(pt: Part) -> dict[str, list[int]]:
    """{rule a model said it applied: the points it applied at} for one kernel."""
    out: dict[str, list[int]] = {}
    for p in (pt.run.manifest.get("points", []) if pt.run else []):
        for r in p.get("rules", []):
            out.setdefault(r, []).append(p["point"])
    return out


# --- summary.md ---------------------------------------------------------------------------

def _label(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "-"


def _cell(p: dict | None, m: str) -> str:
    if p is None or m not in p["measured"]:
        return "-"
    ok = metric_ok(p, m)
    return (f"{p['measured'][m]:.3f} [{p['p10'][m]:.3f}, {p['p90'][m]:.3f}]"
            + ("" if ok is None else " ok" if ok else " **NO**"))


def summary_markdown(exp: Experiment, manifest: dict, parts: list[Part]) -> str:
    v = overall(parts)
    lines = [f"# {exp.id} on {len(parts)} kernels: {exp.CLAIM}", "",
             f"**Verdict: {v.upper()}** (exit status {exit_code(parts)})", ""]
    for pt in parts:
        ok = sum(p["ok"] for p in pt.pts)
        where = f" ({ok}/{len(pt.pts)} points within their bands)" if pt.pts and not pt.why else ""
        folder = f"; its own run: `{Path(pt.run.dir).name}/`" if pt.run else ""
        lines.append(f"- **{pt.name}**: {pt.state}{where}{folder}")
    lines += ["", f"- Course text ({exp.SECTION}): \"{exp.TEXT_SAYS}\"",
              f"- Judged: {exp.describe_tolerance()}",
              f"- Run: {manifest.get('started', '?')} to {manifest.get('ended', '?')}, status "
              f"{manifest.get('status', '?')}; the kernels ran one after the other, each in its "
              "own UML guest", ""]
    lines += ["## Where the kernels differ", ""]
    measured = [pt for pt in parts if pt.pts]
    if len(measured) < 2:
        lines.append("Nothing to compare: only "
                     + (", ".join(pt.kernel for pt in measured) or "no kernel")
                     + " measured anything.")
    else:
        diffs = differences(exp, parts)
        if not diffs:
            lines.append("Nowhere: at every point every metric's p10-p90 ranges overlap and "
                         "its verdict is the same on each kernel.")
        for d in diffs:
            what = d["metric"] or "the point"
            preds = {k: x for k, x in d["predicted"].items() if x is not None}
            extra = ("; predicted " + ", ".join(f"{k} {x:.3f}" for k, x in preds.items())
                     if preds and len(set(preds.values())) > 1 else "")
            lines.append(f"- {_label(d['params'])}: {what}: " + "; ".join(d["reasons"]) + extra)
    lines.append("")
    metrics = metrics_shown(exp, parts)
    if measured and metrics:
        lines += ["## Medians side by side", "",
                  "median [p10, p90] of each kernel's trials, and whether it is within its "
                  "band; the prediction is each kernel's own.", ""]
        header = ["point", "metric"]
        for pt in parts:
            header += [f"{pt.kernel} predicted", f"{pt.kernel} measured"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for key in point_keys(parts):
            for m in metrics:
                ps = [_at(pt, key) for pt in parts]
                if not any(p is not None and m in p["measured"] for p in ps):
                    continue
                cells = [_label(dict(key)), m + (" (reported)" if not exp.metric(m).judged
                                                 else "")]
                for at in ps:
                    pred = at["predicted"].get(m) if at else None
                    cells += [f"{pred:.3f}" if pred is not None else "-", _cell(at, m)]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Which rule each prediction used", ""]
    said = False
    for pt in parts:
        if pt.verdict in ("refused", "lab fault") and not pt.pts:
            lines.append(f"- {pt.name}: no prediction: {pt.why}")
            continue
        found = rules(pt)
        n = len(pt.run.manifest.get("points", [])) if pt.run else 0
        for rule, idx in found.items():
            said = True
            where = "" if len(idx) == n else " (points " + ", ".join(map(str, idx)) + ")"
            lines.append(f"- {pt.name}: {rule}{where}")
        if not found:
            lines.append(f"- {pt.name}: no model of this experiment names a release-specific "
                         "rule (the same rule on every release it runs on)")
    if not said:
        lines.append("")
        lines.append("(A model names the rule it applies through wirelab.models.releases; one "
                     "that does not know a release refuses it, exit 3.)")
    lines.append("")
    if exp.linux_fact:
        lines += ["## What Linux does", "", exp.linux_fact, ""]
    return "\n".join(lines)


def json_doc(exp: Experiment, root: Path, parts: list[Part]) -> dict:
    return {"run_dir": str(root), "experiment": exp.id, "verdict": overall(parts),
            "exit_code": exit_code(parts),
            "kernels": [{"kernel": pt.kernel, "release": pt.release,
                         "run_dir": str(pt.run.dir) if pt.run else None,
                         "verdict": pt.verdict, "exit_code": pt.exit_code,
                         "why": pt.why or None, "rules": rules(pt),
                         "points": analysis.json_points(pt.pts)} for pt in parts],
            "differences": differences(exp, parts)}


# --- plot.png ----------------------------------------------------------------------------

def render(exp: Experiment, parts: list[Part], run_name: str = ""):
    """Both kernels overlaid: a panel per judged metric, the grid's points along x, each
    kernel's median with its p10-p90 whisker (hollow: outside its band) and each kernel's
    prediction as a black mark across its slot."""
    from wirelab.report import figures
    plt = figures._plt()
    spec = getattr(exp.module, "FIGURE", None)
    question = getattr(spec, "question", None) or exp.CLAIM
    labels = getattr(spec, "labels", {}) or {}
    keys = point_keys(parts)
    judged = [m for m in metrics_shown(exp, parts) if exp.metric(m).judged][:6]
    varying = [n for n in exp.params if len({dict(k)[n] for k in keys}) > 1]
    ncols = 2 if len(judged) == 4 else min(3, max(1, len(judged)))
    nrows = max(1, math.ceil(len(judged) / ncols))
    with plt.rc_context(figures.RC):
        fig = plt.figure(figsize=figures.SIZE_IN, dpi=figures.DPI)
        gs = fig.add_gridspec(nrows=nrows, ncols=ncols)
        verdicts = "   ".join(f"{pt.name}: {pt.verdict.upper()}" for pt in parts)
        fig.suptitle("\n".join(textwrap.wrap(question, 90)) + f"\n{verdicts}",
                     fontsize=figures.RC["figure.titlesize"], x=0.01, ha="left")
        repeats = {pt.run.manifest.get("repeats") for pt in parts if pt.run}
        fig.text(0.01, 0.01, f"{exp.id}   {len(parts)} kernels, each in its own UML guest   "
                 f"{'/'.join(map(str, sorted(r for r in repeats if r))) or '?'} trials per "
                 f"point   run {run_name}", fontsize=12, color="#555555")
        width = 0.8 / max(1, len(parts))
        xlabels = []
        for key in keys:
            params = next(p["params"] for pt in parts for p in pt.pts if _key(p) == key)
            xlabels.append(figures._label(exp, params, varying, labels) or exp.id)
        for mi, m in enumerate(judged):
            ax = fig.add_subplot(gs[mi // ncols, mi % ncols])
            for ki, pt in enumerate(parts):
                colour = figures.PALETTE[ki % len(figures.PALETTE)]
                label = pt.name if pt.pts else f"{pt.kernel}: {pt.verdict}"
                ax.plot([], [], "o", color=colour, ms=10, label=label)
                for gi, key in enumerate(keys):
                    p = _at(pt, key)
                    if p is None or m not in p["measured"]:
                        continue
                    x = gi - 0.4 + width * (ki + 0.5)
                    v = p["measured"][m]
                    ok = metric_ok(p, m)
                    ax.errorbar([x], [v], yerr=[[max(0.0, v - p["p10"][m])],
                                                [max(0.0, p["p90"][m] - v)]],
                                fmt="o", ms=10, color=colour, capsize=5, mew=2,
                                mfc=colour if ok is not False else "white")
                    pred = p["predicted"].get(m)
                    if pred is not None:
                        ax.hlines(pred, x - width * 0.45, x + width * 0.45, colors="black",
                                  linewidth=3)
            ax.hlines([], 0, 0, colors="black", linewidth=3, label="prediction")
            wrap = max(10, 110 // (ncols * max(1, len(keys))))
            ax.set_xticks(range(len(keys)), ["\n".join(textwrap.wrap(t, wrap, break_long_words=False))
                                           for t in xlabels],
                          rotation=30 if len(keys) * ncols > 12 else 0)
            ax.set_xlim(-0.5, len(keys) - 0.5)
            metric = exp.metric(m)
            ax.set_ylabel(f"{m.rsplit('_', 1)[0].replace('_', ' ')} [{metric.unit_label}]")
            ax.set_ylim(bottom=0)
            ax.margins(y=0.1)
            if metric.unit == "count":         # counts: whole-number ticks
                from matplotlib.ticker import MaxNLocator
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
                ax.set_ylim(top=max(1.0, ax.get_ylim()[1]))
            ax.grid(True, axis="y", alpha=0.3)
            if mi == 0:         # one legend for every panel, under the title
                handles, names = ax.get_legend_handles_labels()
                fig.legend(handles, [*names[:-1], "prediction (each kernel's own)"],
                           loc="upper left", bbox_to_anchor=(0.01, 0.90), frameon=False,
                           ncols=len(parts) + 1, title="whiskers: p10-p90 of the trials; "
                           "hollow: outside its band", title_fontsize=12,
                           alignment="left")
        if not judged:
            ax = fig.add_subplot(gs[0, 0])
            ax.text(0.5, 0.5, "no kernel measured anything:\n" + "\n".join(
                f"{pt.kernel}: {pt.state}" for pt in parts), ha="center", va="center",
                transform=ax.transAxes, wrap=True)
            ax.axis("off")
        fig.tight_layout(rect=(0, 0.03, 1, 0.87))
    return fig


def write(root: Path, exp: Experiment, manifest: dict, parts: list[Part]) -> None:
    """summary.md and plot.png of a combined directory."""
    from wirelab.report import figures
    (root / "summary.md").write_text(summary_markdown(exp, manifest, parts))
    figures.save(render(exp, parts, root.name), root / "plot.png")
