"""The runner: grid x repeats through fresh labs, recorded as a results directory.

validate (before anything exists) -> for each grid point: Lab(topology) ->
prepare -> trials -> rows -> trials.csv, manifest.json, raw/, plot.png,
summary.md -> verdict.  The lab of each point is torn down by its undo stack
whatever happens; an interrupted run still leaves a manifest that says so.
"""
from __future__ import annotations

import datetime as dt
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from wirelab import analysis, probe, results
from wirelab.experiment import Experiment
from wirelab.lab import Lab, sysctl_path

#: Read in every lab namespace and recorded, whatever the experiment sets.
RECORDED_SYSCTLS = (
    "net.ipv4.tcp_congestion_control", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_timestamps", "net.ipv4.tcp_sack", "net.ipv4.tcp_window_scaling",
    "net.ipv4.tcp_syn_retries", "net.ipv4.tcp_synack_retries", "net.ipv4.tcp_fastopen",
    "net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_no_metrics_save",
    "net.ipv4.tcp_syn_linear_timeouts", "net.core.default_qdisc", "net.ipv4.ip_forward",
    "net.ipv4.tcp_adv_win_scale", "net.ipv4.tcp_app_win", "net.ipv4.tcp_moderate_rcvbuf",
    "net.core.rmem_max", "net.core.wmem_max", "net.ipv4.tcp_mem",
)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Progress:
    """One status line on stderr: redrawn in place on a terminal, one line
    per finished grid point otherwise (CI logs)."""

    def __init__(self, total_points: int, repeats: int, stream=None):
        self.total, self.repeats = total_points, repeats
        self.stream = stream or sys.stderr
        # Inside UML our stderr is a guest tty whatever the caller's is; the
        # host side tells us what the caller's really is.
        forced = os.environ.get("WIRELAB_STDERR_TTY")
        self.tty = forced == "1" if forced in ("0", "1") else self.stream.isatty()
        self.t0 = time.monotonic()

    def update(self, point: int, params: dict, done: int, last: dict | None) -> None:
        label = " ".join(f"{k}={analysis.fmt(v)}" for k, v in params.items())
        last_txt = " ".join(f"{k}={v:.2f}" for k, v in (last or {}).items())
        line = (f"[{point + 1}/{self.total}] {label}  trial {done}/{self.repeats}  {last_txt}"
                f"  ({time.monotonic() - self.t0:.0f} s)")
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self.stream.flush()
        elif done == self.repeats:
            self.stream.write(line + "\n")
            self.stream.flush()

    def point_done(self, entry: dict) -> None:
        if self.tty:
            self.stream.write("\n")
        ok = "ok" if entry["ok"] else "DEVIATES"
        meas = ", ".join(f"{m} {v:.3f} (predicted {entry['predicted'][m]:.3f})"
                         for m, v in entry["measured"].items())
        self.stream.write(f"      {ok}: {meas}\n")
        self.stream.flush()


@dataclass
class RunOutcome:
    run_dir: Path
    verdict: str
    points: list[dict]


def kernel_facts(lab: Lab, node: str | None = None) -> dict:
    """What a prediction may read: release, HZ-independent facts and the
    effective sysctls in one lab namespace (the first host by default)."""
    from wirelab import netns
    host = lab[node] if node else lab.hosts()[0]
    sysctls = {}
    with netns.entered(host.ns):
        for name in RECORDED_SYSCTLS:
            p = sysctl_path(name)
            if p.exists():
                sysctls[name] = p.read_text().strip()
    return {"release": os.uname().release, "sysctls": sysctls, "hz": _HZ()["hz"]}


_hz_cache: dict = {}


def _HZ() -> dict:
    if not _hz_cache:
        _hz_cache.update(probe.kernel_hz())
    return _hz_cache


def run(exp: Experiment, overrides: dict, *, quick: bool = False, repeats: int | None = None,
        seed: int | None = None, backend: str = "host", backend_reason: str = "",
        results_root: Path | None = None, progress_stream=None) -> RunOutcome:
    # 1. Validate everything before anything is created.
    grid = exp.grid(overrides, quick)
    n = exp.repeats(repeats, quick)
    from topologies import get as get_topology
    topo_cls = get_topology(exp.TOPOLOGY)
    for params in grid:
        topo_cls(**exp.topology_params(params))  # shaping values are checked at build
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    random.seed(seed)

    run_dir = results.new_run_dir(exp.id, results_root)
    manifest = {
        "experiment": exp.id, "claim": exp.CLAIM, "section": exp.SECTION,
        "parameters": {p.name: {"default": p.default, "min": p.min, "max": p.max,
                                "help": p.help} for p in exp.PARAMS},
        "overrides": overrides, "quick": quick, "grid": grid, "repeats": n, "seed": seed,
        "metrics": exp.METRICS, "x": exp.X, "tolerance": exp.describe_tolerance(),
        "topology": exp.TOPOLOGY, "needs": sorted(exp.NEEDS),
        "kernel": {**probe.kernel_info(), "hz": _HZ()}, "backend": backend, "backend_reason": backend_reason,
        "tools": {}, "git_revision": results.git_revision(), "argv": sys.argv,
        "started": now(), "ended": None, "status": "running", "points": [],
    }
    results.write_manifest(run_dir, manifest)
    columns = results.trial_columns(list(exp.params), list(exp.METRICS))
    rows: list[dict] = []
    prog = Progress(len(grid), n, progress_stream)
    try:
        for i, params in enumerate(grid):
            raw = results.RawWriter(run_dir, i)
            topo = topo_cls(**exp.topology_params(params))
            with Lab(topo, sysctls=exp.lab_sysctls(params)) as lab:
                kernel = kernel_facts(lab)
                predicted = exp.predict(params, kernel)
                ctx = {"raw": raw, "seed": seed, "point": i}
                exp.prepare(lab, params, ctx)
                point_rows = []
                for r in range(n):
                    measured = exp.trial(lab, params, ctx)
                    row = {"point": i, "repeat": r, **params, **measured,
                           **{f"predicted_{m}": predicted[m] for m in exp.METRICS}}
                    rows.append(row)
                    point_rows.append(row)
                    prog.update(i, params, r + 1, measured)
                manifest["points"].append({
                    "point": i, "params": params, "predicted": predicted,
                    "lab": lab.describe(), "build_s": round(lab.build_s, 4),
                    "effective_sysctls": {**lab.effective_sysctls(), "_read": kernel["sysctls"]},
                })
            results.write_trials(run_dir, columns, rows)
            prog.point_done(analysis.points(exp, point_rows)[0])
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
        results.write_manifest(run_dir, manifest)
        pts = analysis.points(exp, rows)
        (run_dir / "summary.md").write_text(analysis.summary_markdown(exp, manifest, pts))
        if rows:
            guest_outputs = os.environ.get("WIRELAB_GUEST_OUTPUTS")
            if guest_outputs:
                # Inside UML: importing matplotlib alone takes ~3.5 s there.
                # The host side draws the plot from these files when we exit.
                with open(guest_outputs, "a") as f:
                    f.write(f"plot {run_dir}\n")
            else:
                from wirelab.plot import plot_run
                plot_run(results.read_run(run_dir), exp)
    return RunOutcome(run_dir, analysis.verdict(pts), pts)


def _tool_versions(exp: Experiment) -> dict:
    tools = getattr(exp.module, "TOOLS", ())
    return {t: probe.tool_version(t) for t in tools} | {"python": sys.version.split()[0]}
