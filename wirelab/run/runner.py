"""The runner: grid x repeats through fresh labs, recorded as a results directory.

validate (before anything exists) -> for each grid point: Lab(topology) -> kernel
facts -> predict -> prepare -> trials -> rows -> trials.csv, point_samples.csv,
manifest.json, raw/, summary.md, plot.png -> verdict.  The lab of each point is torn
down by its undo stack whatever happens.  A trial that raises is a lab failure (exit 4)
naming the point and the trial, never a deviation: the results directory keeps what was
measured and its manifest says ``failed`` and why.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from wirelab import settings
from wirelab.errors import BadInput, LabError
from wirelab.kernel import facts, pace, probe, uml
from wirelab.lab import sysctl
from wirelab.models import releases
from wirelab.report import analysis, results
from wirelab.report.summary import summary_markdown
from wirelab.run.progress import Progress
from wirelab.spec.context import EXCLUDED, RawWriter, TrialContext
from wirelab.spec.experiment import Experiment


class TrialFailed(LabError):
    """A trial (or a point's prepare) raised: the lab failed, nothing was judged."""


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class RunOutcome:
    run_dir: Path
    verdict: str
    points: list[dict]


def _where(exp: Experiment, i: int, params: dict, trial: int | None) -> str:
    label = ", ".join(f"{k}={analysis.fmt(v)}" for k, v in params.items())
    return f"{exp.id}, point {i} ({label})" + (f", trial {trial}" if trial is not None else
                                               ", prepare")


#: A point collects at most this many times REPEATS rows in all, counting the ones it
#: excluded (a retransmission in every trial is a broken lab, not bad luck).
MAX_ROWS_FACTOR = 3
#: ... and at most this many times REPEATS rows the host disturbed (wirelab.kernel.pace).
MAX_DISTURBED_FACTOR = 10


def _rows_of(exp: Experiment, out, predicted: dict) -> list[dict]:
    """A trial's result as rows: one dict, or a list of them, with exactly the trial
    metrics the point predicted.  A row may carry ``excluded`` (why it is recorded but
    not judged, e.g. a retransmission)."""
    rows = [out] if isinstance(out, dict) else list(out or [])
    if not rows:
        raise LabError("the trial returned no row")
    want = {m.name for m in exp.trial_metrics if m.name in predicted}
    reported = {m.name for m in exp.trial_metrics if not m.judged}     # may come unpredicted
    for row in rows:
        got = set(row) - {EXCLUDED}
        if not want <= got <= want | reported:
            missing, extra = want - got, got - want - reported
            raise LabError("the trial's row does not match the metrics predicted for the point"
                           + (f"; missing {', '.join(sorted(missing))}" if missing else "")
                           + (f"; unknown {', '.join(sorted(extra))}" if extra else ""))
    return rows


def host_disturbed(batch: list[dict], before, after, quiet: pace.Quiet) -> int:
    """A trial through which the host kept the emulator's CPU (pace.disturbed, read
    BEFORE and AFTER it) timed the host, not the lab: its rows are excluded with that
    reason and not counted against the point's MAX_ROWS_FACTOR; the run waits for the
    host to give the CPU back (QUIET) before the next trial.  How many rows it excluded."""
    why = pace.disturbed(before, after)
    if not why:
        return 0
    for row in batch:
        row[EXCLUDED] = why
    quiet.wait()
    return len(batch)


def _set_aside(ctx: TrialContext, mark: dict, kept: dict[str, int], trial: int) -> None:
    """A trial the host disturbed leaves the point's raw files and per-point samples as
    they were before it: what it wrote goes to raw/pointNNN/host-disturbed/tNN/."""
    aside = ctx.raw.set_aside(mark, f"t{trial:02d}")
    dropped = {k: v[kept.get(k, 0):] for k, v in ctx.point_samples.items() if len(v) > kept.get(k, 0)}
    if dropped:
        aside.mkdir(parents=True, exist_ok=True)
        (aside / "point_samples.json").write_text(json.dumps(dropped) + "\n")
        for k in dropped:
            del ctx.point_samples[k][kept.get(k, 0):]


def _check_prediction(exp: Experiment, predicted: dict) -> None:
    """A point predicts the metrics that apply to it: METRICS' names only, and at least
    one that is judged (a point that judges nothing cannot match)."""
    names = {m.name for m in exp.metrics}
    judged = {m.name for m in exp.metrics if m.judged}
    if not set(predicted) <= names or not set(predicted) & judged:
        raise LabError(f"predict() gave {sorted(predicted)}: it must name only METRICS "
                       f"({', '.join(sorted(names))}) and at least one judged "
                       f"({', '.join(sorted(judged))})")


def run(exp: Experiment, overrides: dict, *, quick: bool = False, repeats: int | None = None,
        seed: int | None = None, backend: str = "host", backend_reason: str = "",
        results_root: Path | None = None, progress_stream=None,
        extra_sysctls: dict[str, dict[str, str]] | None = None) -> RunOutcome:
    # 1. Validate everything before anything is created.
    grid = exp.grid(overrides, quick)
    n = exp.repeats(repeats, quick)
    for params in grid:
        try:
            exp.topology(params)  # link values are checked again when the lab builds
        except (TypeError, ValueError) as e:
            raise BadInput(f"{exp.id}: topology {exp.TOPOLOGY.__name__} refuses {params}: "
                           f"{e}") from e
    hosts = {n for n in exp.topology(grid[0]).nodes()} | {"*", "kernel"}
    for node in extra_sysctls or {}:
        if node not in hosts:
            raise BadInput(f"--sysctl {node}:...: {exp.TOPOLOGY.__name__} has no host {node!r} "
                           f"(it has {', '.join(sorted(hosts - {'*', 'kernel'}))})")
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    random.seed(seed)

    run_dir = results.new_run_dir(exp.id, results_root or settings.current().results_dir)
    manifest = {
        "experiment": exp.id, "claim": exp.CLAIM, "section": exp.SECTION,
        "source": str(getattr(exp.module, "__file__", "")),
        "parameters": {p.name: {"default": p.default, "min": p.min, "max": p.max,
                                "help": p.help} for p in exp.PARAMS},
        "overrides": overrides, "extra_sysctls": extra_sysctls or {}, "quick": quick,
        "grid": grid, "repeats": n, "seed": seed,
        "metrics": {m.name: {"help": m.help, "judged": m.judged, "per_point": m.per_point}
                    for m in exp.metrics},
        "x": exp.X, "tolerance": exp.describe_tolerance(),
        "topology": exp.TOPOLOGY.__name__, "needs": sorted(exp.NEEDS),
        "caps": {"memory_mb": exp.caps.memory_mb, "tasks": exp.caps.tasks},
        "kernel": {**probe.kernel_info(), "hz": facts.tick()}, "backend": backend,
        "backend_reason": backend_reason, "tools": {},
        "git_revision": results.git_revision(uml.project_dir()), "argv": sys.argv,
        "started": now(), "ended": None, "status": "running", "points": [],
    }
    results.write_manifest(run_dir, manifest)
    trial_names = [m.name for m in exp.trial_metrics]
    columns = results.trial_columns(list(exp.params), trial_names) + [EXCLUDED]
    rows: list[dict] = []
    samples: list[dict] = []
    prog = Progress(len(grid), n, progress_stream)
    quiet = pace.Quiet(say=prog.say)
    try:
        for i, params in enumerate(grid):
            wanted = sysctl.overlay(exp.sysctls(params), extra_sysctls or {})
            with exp.lab(params, sysctls=wanted, caps=exp.caps) as lab:
                kernel = facts.read(lab.hosts()[0].ns)
                with releases.recording() as rules:     # which release's rule it used
                    predicted = exp.predict(params, kernel)
                _check_prediction(exp, predicted)
                ctx = TrialContext(raw=RawWriter(run_dir, i), point=i, params=params,
                                   kernel=kernel, predicted=predicted, seed=seed)
                trial = None
                try:
                    exp.prepare(lab, params, ctx)
                    point_rows: list[dict] = []
                    used = disturbed = 0
                    while (used < n and len(point_rows) - disturbed < MAX_ROWS_FACTOR * n
                           and disturbed < MAX_DISTURBED_FACTOR * n):
                        trial = ctx.repeat = len(point_rows)
                        before = pace.read()     # None on the host kernel: nothing to mark
                        mark = ctx.raw.mark() if before is not None else {}
                        kept = {k: len(v) for k, v in ctx.point_samples.items()}
                        batch = _rows_of(exp, exp.trial(lab, params, ctx), predicted)
                        if host_disturbed(batch, before, pace.read(), quiet):
                            _set_aside(ctx, mark, kept, trial)
                            disturbed += len(batch)
                        for row in batch:
                            full = {"point": i, "repeat": len(point_rows), **params,
                                    EXCLUDED: "", **row,
                                    **{f"predicted_{m}": predicted[m] for m in trial_names
                                       if m in predicted}}
                            rows.append(full)
                            point_rows.append(full)
                            used += not full[EXCLUDED]
                        prog.update(i, params, used, {k: v for k, v in batch[-1].items()
                                                      if k != EXCLUDED})
                    trial = None
                    if used < n:
                        why = sorted({r[EXCLUDED] for r in point_rows if r[EXCLUDED]})
                        raise LabError(f"only {used} of {n} trials usable in {len(point_rows)} "
                                       f"(excluded: {'; '.join(why)[:500]})")
                    for m in exp.point_metrics:
                        if m.name not in predicted:
                            continue
                        got = ctx.point_samples.get(m.name)
                        if not got:
                            raise LabError(f"per-point metric {m.name} was never measured "
                                           "(ctx.measure_point)")
                        samples += [{"point": i, "metric": m.name, "sample": k, "value": v,
                                     "predicted": predicted[m.name]} for k, v in enumerate(got)]
                except (KeyboardInterrupt, BadInput):
                    raise
                except Exception as e:
                    raise TrialFailed(f"{_where(exp, i, params, trial)}: "
                                      f"{type(e).__name__}: {e}") from e
                manifest["points"].append({
                    "point": i, "params": params, "predicted": predicted,
                    "lab": lab.describe(), "build_s": round(lab.build_s, 4),
                    "resources": lab.resources(),
                    "effective_sysctls": lab.effective_sysctls(), "kernel_facts": kernel,
                    "rules": rules,
                })
            results.write_trials(run_dir, columns, rows)
            results.write_samples(run_dir, samples)
            prog.point_done(analysis.points(exp, [r for r in rows if r["point"] == i],
                                            [s for s in samples if s["point"] == i],
                                            {i: kernel})[0])
        manifest["status"] = "completed"
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        raise
    except BaseException as e:
        manifest["status"] = f"failed: {type(e).__name__}: {e}"
        raise
    finally:
        manifest["ended"] = now()
        manifest["tools"] = _tool_versions(exp)
        results.write_trials(run_dir, columns, rows)
        results.write_samples(run_dir, samples)
        results.write_manifest(run_dir, manifest)
        pts = analysis.points(exp, rows, samples, analysis.kernels_of(manifest))
        (run_dir / "summary.md").write_text(summary_markdown(exp, manifest, pts))
        if rows:
            _plot_later_or_now(run_dir, exp)
    return RunOutcome(run_dir, analysis.verdict(pts), pts)


def _plot_later_or_now(run_dir: Path, exp: Experiment) -> None:
    guest = settings.guest()
    if guest:
        # Inside UML importing matplotlib alone takes ~3.5 s: the host side draws
        # the figure from these files when the guest exits.
        with open(guest["outputs"], "a") as f:
            f.write(f"plot {run_dir}\n")
        return
    from wirelab.report.plot import plot_run
    plot_run(results.read_run(run_dir), exp)


def _tool_versions(exp: Experiment) -> dict:
    tools = getattr(exp.module, "TOOLS", ())
    return {t: probe.tool_version(t) for t in tools} | {"python": sys.version.split()[0]}
