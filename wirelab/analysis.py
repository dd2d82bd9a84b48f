"""From trial rows to per-point statistics, a verdict and a summary.

Pure functions of what a run wrote (manifest + trials.csv), so ``wirelab
show`` and the tests re-derive exactly what the run reported.
"""
from __future__ import annotations

import statistics

from wirelab.experiment import Experiment


def quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def points(exp: Experiment, rows: list[dict]) -> list[dict]:
    """One dict per grid point: params, n, per-metric statistic, spread,
    prediction, bounds and pass/fail."""
    by_point: dict[int, list[dict]] = {}
    for row in rows:
        by_point.setdefault(int(row["point"]), []).append(row)
    out = []
    for idx in sorted(by_point):
        prow = by_point[idx]
        params = {p: prow[0][p] for p in exp.params}
        entry = {"point": idx, "params": params, "n": len(prow), "measured": {},
                 "predicted": {}, "p10": {}, "p90": {}, "bounds": {}, "ok": True}
        for m in exp.METRICS:
            values = [r[m] for r in prow if r.get(m) is not None]
            predicted = prow[0].get(f"predicted_{m}")
            if not values or predicted is None:
                entry["ok"] = False
                continue
            tol = exp.tolerance(m)
            ok, stat = tol.check(values, predicted, params)
            entry["measured"][m] = stat
            entry["predicted"][m] = predicted
            entry["p10"][m] = quantile(values, 0.10)
            entry["p90"][m] = quantile(values, 0.90)
            entry["bounds"][m] = tol.bounds(predicted, params)
            entry["ok"] = entry["ok"] and ok
        # An experiment may judge a point by more than per-metric bands (a
        # ratio between two cases, an exact count): check(entry) -> (ok, note).
        extra = getattr(exp.module, "check", None)
        if extra is not None and entry["measured"]:
            ok, note = extra(entry)
            entry["ok"] = entry["ok"] and ok
            entry["note"] = note
        out.append(entry)
    return out


def fmt(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def verdict(pts: list[dict], complete: bool = True) -> str:
    if not pts or not complete:
        return "incomplete"
    return "match" if all(p["ok"] for p in pts) else "deviates"


def summary_markdown(exp: Experiment, manifest: dict, pts: list[dict]) -> str:
    v = verdict(pts, manifest.get("status") == "completed")
    k = manifest.get("kernel", {})
    lines = [
        f"# {exp.id}: {exp.CLAIM}",
        "",
        f"**Verdict: {v.upper()}** ({sum(p['ok'] for p in pts)}/{len(pts)} points within "
        f"tolerance: {exp.describe_tolerance()})",
        "",
        f"- Course text ({exp.SECTION}): \"{exp.TEXT_SAYS}\"",
    ]
    if exp.LINUX_FACT:
        lines.append(f"- Linux: {exp.LINUX_FACT}")
    lines += [
        f"- Kernel: {k.get('release', '?')} ({manifest.get('backend', '?')} backend"
        f"{', ' + manifest['backend_reason'] if manifest.get('backend_reason') else ''})",
        f"- Run: {manifest.get('started', '?')} to {manifest.get('ended', '?')}, "
        f"{manifest.get('repeats', '?')} trials per point, status {manifest.get('status')}",
        "",
    ]
    metrics = list(exp.METRICS)
    header = ["point", *exp.params, *[f"{m} predicted" for m in metrics],
              *[f"{m} {exp.tolerance(m).statistic} [p10, p90]" for m in metrics], "n", "ok"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for p in pts:
        cells = [str(p["point"]), *[fmt(p["params"][n]) for n in exp.params]]
        cells += [f"{p['predicted'].get(m, float('nan')):.3f}" for m in metrics]
        cells += [f"{p['measured'][m]:.3f} [{p['p10'][m]:.3f}, {p['p90'][m]:.3f}]"
                  if m in p["measured"] else "-" for m in metrics]
        cells += [str(p["n"]), ("yes" if p["ok"] else "**NO**") + (f" ({p['note']})" if p.get("note") else "")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    worst = _worst_excess(pts, metrics)
    if worst:
        lines.append(f"Largest excess over the prediction: {worst[0]:+.3f} ({worst[1]} at "
                     f"{worst[2]}).")
    lines.append("")
    return "\n".join(lines)


def _worst_excess(pts, metrics):
    best = None
    for p in pts:
        for m in metrics:
            if m in p["measured"]:
                ex = p["measured"][m] - p["predicted"][m]
                if best is None or abs(ex) > abs(best[0]):
                    best = (ex, m, ", ".join(f"{k}={fmt(v)}" for k, v in p["params"].items()))
    return best


def json_points(pts: list[dict]) -> list[dict]:
    return [{"params": p["params"], "measured": p["measured"], "predicted": p["predicted"],
             "p10": p["p10"], "p90": p["p90"], "n": p["n"], "ok": p["ok"],
             **({"note": p["note"]} if p.get("note") else {})} for p in pts]


def spread(values: list[float]) -> float:
    return statistics.pstdev(values) if len(values) > 1 else 0.0
