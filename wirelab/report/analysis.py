"""From a run's rows to per-point statistics and a verdict.

Pure functions of what a run wrote (manifest, trials.csv, point_samples.csv), so
``wirelab show`` and the tests re-derive exactly what the run reported.
"""
from __future__ import annotations

from wirelab.spec.bands import quantile, summary_stat
from wirelab.spec.context import EXCLUDED
from wirelab.spec.experiment import Experiment


def _values(exp: Experiment, metric: str, prow: list[dict], psamples: list[dict]) -> tuple:
    """(values, predicted) of METRIC at one point."""
    if exp.metric(metric).per_point:
        vals = [s["value"] for s in psamples if s["metric"] == metric and s["value"] is not None]
        pred = next((s["predicted"] for s in psamples if s["metric"] == metric), None)
        return vals, pred
    vals = [r[metric] for r in prow if r.get(metric) is not None]
    return vals, (prow[0].get(f"predicted_{metric}") if prow else None)


def points(exp: Experiment, rows: list[dict], samples: list[dict] | None = None,
           kernels: dict[int, dict] | None = None) -> list[dict]:
    """One dict per grid point: params, n per metric, statistic, p10/p90,
    prediction, bounds (judged metrics), whether it passes, lab faults, and notes.
    KERNELS: {point: kernel facts} (bands counted in jiffies need the point's HZ)."""
    samples = samples or []
    by_point: dict[int, list[dict]] = {}
    for row in rows:
        by_point.setdefault(int(row["point"]), []).append(row)
    out = []
    for idx in sorted(by_point):
        every = by_point[idx]
        prow = [r for r in every if not r.get(EXCLUDED)]
        psamples = [s for s in samples if int(s["point"]) == idx]
        entry: dict = {"point": idx, "params": {p: every[0][p] for p in exp.params},
                       "n": len(prow), "n_by_metric": {}, "measured": {}, "predicted": {},
                       "p10": {}, "p90": {}, "bounds": {}, "reported": [], "ok": True,
                       "failures": [], "lab_faults": [],
                       "excluded": [r[EXCLUDED] for r in every if r.get(EXCLUDED)]}
        kernel = (kernels or {}).get(idx)
        for m in exp.metrics:
            values, predicted = _values(exp, m.name, prow, psamples)
            if not values and predicted is None:
                continue    # not this point's metric: neither predicted nor measured here
            if values and predicted is None and not m.judged:
                # recorded where no model predicts it (an autotuned window): shown as measured
                entry["n_by_metric"][m.name] = len(values)
                entry["p10"][m.name] = quantile(values, 0.10)
                entry["p90"][m.name] = quantile(values, 0.90)
                entry["measured"][m.name] = summary_stat(values, "median")
                entry["reported"].append(m.name)
                continue
            if not values or predicted is None:
                if m.judged:
                    entry["ok"] = False
                    entry["failures"].append(f"{m.name}: " + ("nothing measured" if not values
                                                              else "measured but not predicted"))
                continue
            entry["n_by_metric"][m.name] = len(values)
            entry["predicted"][m.name] = predicted
            entry["p10"][m.name] = quantile(values, 0.10)
            entry["p90"][m.name] = quantile(values, 0.90)
            if not m.judged:
                entry["measured"][m.name] = summary_stat(values, "median")
                entry["reported"].append(m.name)
                continue
            ok, stat = m.tolerance.check(values, predicted, entry["params"], kernel)
            entry["measured"][m.name] = stat
            entry["bounds"][m.name] = m.tolerance.bounds(predicted, entry["params"], kernel)
            if m.tolerance.impossible(stat, predicted, entry["params"], kernel):
                entry["lab_faults"].append(
                    f"{m.name} {stat:.3f} is below the physical floor "
                    f"{entry['bounds'][m.name][0]:.3f}: the lab or the instrument is broken")
            if not ok:
                lo, hi = entry["bounds"][m.name]
                entry["failures"].append(f"{m.name} {stat:.3f} outside [{lo:.3f}, {hi:.3f}]")
            entry["ok"] = entry["ok"] and ok
        if not any(m.judged and m.name in entry["measured"] for m in exp.metrics):
            entry["ok"] = False
            entry["failures"].append("nothing judged at this point")
        # An experiment may judge a point by more than per-metric bands (a ratio
        # between two cases, an exact count): check() can only fail a point.
        if entry["measured"]:
            reason = exp.check(entry)
            if reason:
                entry["ok"] = False
                entry["failures"].append(reason)
            entry["note"] = exp.note(entry)
        out.append(entry)
    return out


def fmt(value) -> str:
    """A parameter value as a person reads it: whole numbers in full (16777216, not
    1.67772e+07), other numbers short (0.05, 2.5)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, int) \
        else str(value)


def verdict(pts: list[dict], complete: bool = True) -> str:
    """match, deviates, lab fault (a value no working lab can produce) or incomplete."""
    if not pts or not complete:
        return "incomplete"
    if any(p.get("lab_faults") for p in pts):
        return "lab fault"
    return "match" if all(p["ok"] for p in pts) else "deviates"


def kernels_of(manifest: dict) -> dict[int, dict]:
    """{point: the kernel facts its prediction read}, from a run's manifest."""
    return {p["point"]: p.get("kernel_facts", {}) for p in manifest.get("points", [])}


def worst_excess(pts: list[dict], metrics: list[str]) -> tuple | None:
    best = None
    for p in pts:
        for m in metrics:
            if m in p["measured"] and m in p["bounds"]:
                ex = p["measured"][m] - p["predicted"][m]
                if best is None or abs(ex) > abs(best[0]):
                    best = (ex, m, ", ".join(f"{k}={fmt(v)}" for k, v in p["params"].items()))
    return best


def json_points(pts: list[dict]) -> list[dict]:
    keys = ("params", "measured", "predicted", "p10", "p90", "n", "n_by_metric", "ok",
            "reported", "failures", "excluded", "lab_faults")
    return [{k: p[k] for k in keys} | ({"note": p["note"]} if p.get("note") else {})
            for p in pts]


def of_run(exp: Experiment, run) -> list[dict]:
    """The points of a run read back from its files."""
    return points(exp, run.rows, run.samples, kernels_of(run.manifest))
