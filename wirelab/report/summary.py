"""summary.md: the claim, what the course says, what Linux does, the table of points,
the verdict and why.  Derived only from what a run wrote."""
from __future__ import annotations

from wirelab.report.analysis import fmt, verdict, worst_excess
from wirelab.spec.experiment import Experiment


def _cell(p: dict, m: str) -> str:
    if m not in p["measured"]:
        return "-"
    n = p["n_by_metric"].get(m)
    return (f"{p['measured'][m]:.3f} [{p['p10'][m]:.3f}, {p['p90'][m]:.3f}]"
            + (f" n={n}" if n is not None and n != p["n"] else ""))


def summary_markdown(exp: Experiment, manifest: dict, pts: list[dict]) -> str:
    v = verdict(pts, manifest.get("status") == "completed")
    k = manifest.get("kernel", {})
    judged = [m.name for m in exp.metrics if m.judged]
    reported = [m.name for m in exp.metrics if not m.judged]
    lines = [
        f"# {exp.id}: {exp.CLAIM}",
        "",
        f"**Verdict: {v.upper()}** ({sum(p['ok'] for p in pts)}/{len(pts)} points within "
        "their bands)",
        "",
        f"- Course text ({exp.SECTION}): \"{exp.TEXT_SAYS}\"",
        f"- Judged: {exp.describe_tolerance()}",
    ]
    if reported:
        lines.append(f"- Reported, not judged: {', '.join(reported)} (recorded and drawn "
                     "hollow; they decide nothing)")
    lines += [
        f"- Kernel: {k.get('release', '?')} ({manifest.get('backend', '?')} backend"
        f"{', ' + manifest['backend_reason'] if manifest.get('backend_reason') else ''})",
        f"- Run: {manifest.get('started', '?')} to {manifest.get('ended', '?')}, "
        f"{manifest.get('repeats', '?')} trials per point, status {manifest.get('status')}",
    ]
    rules = list(dict.fromkeys(r for p in manifest.get("points", []) for r in p.get("rules", [])))
    if rules:
        lines.append("- Prediction rules used: " + "; ".join(rules))
    lines.append("")
    metrics = judged + reported
    header = ["point", *exp.params, *[f"{m} predicted" for m in metrics],
              *[f"{m} median [p10, p90]" + (" (reported)" if m in reported else "")
                for m in metrics], "n", "ok"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for p in pts:
        cells = [str(p["point"]), *[fmt(p["params"][n]) for n in exp.params]]
        cells += [f"{p['predicted'][m]:.3f}" if m in p["predicted"] else "-" for m in metrics]
        cells += [_cell(p, m) for m in metrics]
        cells += [str(p["n"]), "yes" if p["ok"] else "**NO**: " + "; ".join(p["failures"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    faults = [p for p in pts if p.get("lab_faults")]
    if faults:
        lines.append("**Lab faults** (values no working lab produces; exit status 4):")
        lines += [f"- point {p['point']}: {'; '.join(p['lab_faults'])}" for p in faults]
        lines.append("")
    excluded = [p for p in pts if p.get("excluded")]
    if excluded:
        lines.append("Excluded from the statistics (recorded in trials.csv, never judged):")
        for p in excluded:
            lines.append(f"- point {p['point']}: {len(p['excluded'])} trial(s): "
                         + "; ".join(sorted(set(p["excluded"]))))
        lines.append("")
    notes = [(p, p["note"]) for p in pts if p.get("note")]
    if notes:
        lines.append("Notes:")
        for p, note in notes:
            lines.append(f"- point {p['point']} ("
                         + ", ".join(f"{n}={fmt(v)}" for n, v in p["params"].items())
                         + f"): {note}")
        lines.append("")
    worst = worst_excess(pts, judged)
    if worst:
        lines.append(f"Largest excess over the prediction: {worst[0]:+.3f} ({worst[1]} at "
                     f"{worst[2]}).")
        lines.append("")
    lines += _sysctl_lines(exp, pts)
    if exp.linux_fact:
        lines += ["## What Linux does", "", exp.linux_fact, ""]
    return "\n".join(lines)


def _sysctl_lines(exp: Experiment, pts: list[dict]) -> list[str]:
    """What each sysctl the run sets is said to do, and what it measurably did here."""
    params = [p for p in exp.PARAMS if p.sysctl]
    if not params or not pts:
        return []
    lines = ["## Sysctls", ""]
    for prm in params:
        lines.append(f"- `{prm.sysctl}` (parameter {prm.name})"
                     + (f": tuning guides say {prm.advice}" if prm.advice else ""))
        for value in dict.fromkeys(str(p["params"][prm.name]) for p in pts):
            effects = []
            shown = list(prm.effect) or [m.name for m in exp.metrics if m.judged]
            for p in (p for p in pts if str(p["params"][prm.name]) == value):
                m = next((m for m in shown if m in p["measured"]), None)
                if m is not None:
                    where = ", ".join(f"{n}={fmt(v)}" for n, v in p["params"].items()
                                      if n != prm.name)
                    pred = p["predicted"].get(m)
                    effects.append(f"{m} {p['measured'][m]:.3f}" + (
                        f" (predicted {pred:.3f})" if pred is not None else "") + f" at {where}")
            lines.append(f"  - {value}: " + ("; ".join(effects) or "nothing judged"))
    lines.append("")
    return lines
