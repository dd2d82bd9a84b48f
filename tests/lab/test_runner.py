"""wirelab.run.runner end to end on real labs: a failing trial is a lab failure (exit 4,
the point and trial named, what was measured kept), runs never overwrite each other,
several rows from one trial and per-point metrics are counted honestly, Ctrl-C leaves
nothing behind, and a teacher's own experiment file runs from any folder."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import types

import pytest

from support import ROOT, WIRELAB, lab_namespaces, uml_pids, wirelab
from wirelab.errors import LabError
from wirelab.report.results import read_run
from wirelab.run import runner
from wirelab.spec import Metric, Param, Tolerance
from wirelab.spec.experiment import Experiment
from wirelab.topologies.single_link import SingleLink

pytestmark = pytest.mark.lab


def _experiment(trial, **extra) -> Experiment:
    """A real lab (single_link, host kernel) around TRIAL."""
    mod = types.ModuleType("synthetic")
    mod.__dict__.update(
        ID="synthetic", CLAIM="test", SECTION="-", TEXT_SAYS="-", TOPOLOGY=SingleLink,
        NEEDS=set(), REPEATS=5, X="n_count",
        PARAMS=[Param("n_count", default=1, min=0, max=10, grid=(1, 2))],
        METRICS=[Metric("ping_ms", "ping", Tolerance(0.5, 0.03))],
        predict=lambda p, k: {m.name: 0.05 for m in mod.METRICS}, trial=trial)
    mod.__dict__.update(extra)
    return Experiment(mod)


def _failing(fail_at: int) -> Experiment:
    calls = {"n": 0}

    def trial(lab, params, ctx):
        lab["h1"].popen(["sleep", "600"])
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise RuntimeError("trial exploded")
        return {"ping_ms": 0.06}
    return _experiment(trial)


def test_a_point_that_cannot_collect_its_trials_is_a_lab_failure(tmp_path, no_leftovers):
    """Excluded trials (a resend, processing over budget) are retried up to the runner's
    limit; a point left with fewer usable trials than asked is a lab fault, with why."""
    def trial(lab, params, ctx):
        return {"ping_ms": 0.06, "excluded": "server processed for 15.5 ms, over its budget"}
    with pytest.raises(LabError, match=r"only 0 of 5 trials usable in 15 \(excluded: server "
                                       r"processed for 15.5 ms, over its budget\)"):
        runner.run(_experiment(trial), {}, results_root=tmp_path)
    (run_dir,) = (tmp_path / "synthetic").iterdir()
    assert len(read_run(run_dir).rows) == 15            # all kept, none judged
    assert lab_namespaces() == no_leftovers["netns"]


def test_exception_inside_a_trial_is_a_lab_failure_naming_the_point(tmp_path, no_leftovers):
    with pytest.raises(LabError, match=r"synthetic, point 0 \(n_count=1\), trial 2: "
                                       r"RuntimeError: trial exploded"):
        runner.run(_failing(fail_at=3), {}, results_root=tmp_path)
    (run_dir,) = (tmp_path / "synthetic").iterdir()
    run = read_run(run_dir)
    assert run.manifest["status"].startswith("failed: TrialFailed: synthetic, point 0")
    assert len(run.rows) == 2            # the trials before the failure are kept
    assert lab_namespaces() == no_leftovers["netns"]


def test_runs_never_overwrite_each_other(tmp_path, no_leftovers):
    exp = _failing(fail_at=10_000)
    a = runner.run(exp, {"n_count": "1"}, repeats=1, results_root=tmp_path)
    b = runner.run(exp, {"n_count": "1"}, repeats=1, results_root=tmp_path)
    assert a.run_dir != b.run_dir and a.run_dir.exists() and b.run_dir.exists()


def test_several_rows_per_trial_and_per_point_metrics_count_what_was_measured(
        tmp_path, no_leftovers):
    def trial(lab, params, ctx):
        return [{"ping_ms": 0.06 + 0.001 * k} for k in range(3)]      # a batch of 3

    def prepare(lab, params, ctx):
        ctx.measure_point(first_ms=[0.05, 0.07])                      # 2 samples, not 6

    exp = _experiment(trial, prepare=prepare,
                      METRICS=[Metric("ping_ms", "ping", Tolerance(0.5, 0.03)),
                               Metric("first_ms", "first", Tolerance(0.5, 0.03), per_point=True)])
    out = runner.run(exp, {"n_count": "1"}, repeats=5, results_root=tmp_path)
    (p,) = out.points
    assert p["n"] == 6 and p["n_by_metric"] == {"ping_ms": 6, "first_ms": 2}
    run = read_run(out.run_dir)
    assert [r["repeat"] for r in run.rows] == list(range(6))
    assert [s["value"] for s in run.samples] == [0.05, 0.07]


def test_a_row_that_does_not_match_the_metrics_is_a_lab_failure(tmp_path, no_leftovers):
    exp = _experiment(lambda lab, params, ctx: {"pong_ms": 1.0})
    with pytest.raises(LabError, match="missing ping_ms; unknown pong_ms"):
        runner.run(exp, {"n_count": "1"}, repeats=1, results_root=tmp_path)


def test_a_crashing_experiment_file_exits_4_in_one_line(tmp_path, no_leftovers):
    """From the command line: exit 4, the point and trial named, no traceback; the
    results directory says failed."""
    f = tmp_path / "crashing_claim.py"
    f.write_text(
        "from wirelab.spec import Metric, Param, Tolerance\n"
        "from wirelab.topologies.single_link import SingleLink\n"
        "ID, CLAIM, SECTION, TEXT_SAYS = 'crashing_claim', 'c', 's', 't'\n"
        "TOPOLOGY, NEEDS, REPEATS, X = SingleLink, set(), 3, 'n_count'\n"
        "PARAMS = [Param('n_count', default=1, min=0, max=9)]\n"
        "METRICS = [Metric('x_ms', 'x', Tolerance(1, 0))]\n"
        "def predict(params, kernel):\n    return {'x_ms': 1.0}\n"
        "def trial(lab, params, ctx):\n    raise TimeoutError('the server never answered')\n")
    res = wirelab("--results-dir", str(tmp_path / "r"), "run", str(f))
    assert res.returncode == 4, res.stderr
    assert "crashing_claim, point 0 (n_count=1), trial 0: TimeoutError: the server never " \
           "answered" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) <= 2
    (run_dir,) = (tmp_path / "r" / "crashing_claim").iterdir()
    assert read_run(run_dir).manifest["status"].startswith("failed: TrialFailed")
    verbose = wirelab("-v", "--results-dir", str(tmp_path / "r"), "run", str(f))
    assert verbose.returncode == 4 and "Traceback" in verbose.stderr


@pytest.mark.parametrize("args, names", [
    (["--set", "rtt_ms=-5"], ["rtt_ms", "-5", "0 to 5000"]),
    (["--set", "rtt_ms=abc"], ["rtt_ms", "abc"]),
    (["--set", "bogus=1"], ["bogus", "rtt_ms"]),
    (["--repeats", "0"], ["repeats", "0"]),
])
def test_bad_input_exits_2_and_creates_nothing(args, names, tmp_path, no_leftovers):
    before_uml = uml_pids()
    res = wirelab("--results-dir", str(tmp_path), "run", "tcp_handshake", *args)
    assert res.returncode == 2
    for n in names:
        assert n in res.stderr
    assert "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []
    assert uml_pids() == before_uml


def test_unknown_experiment_lists_the_known_ones():
    res = wirelab("run", "tcp_handshak")
    assert res.returncode == 2
    assert "tcp_handshak" in res.stderr and "tcp_handshake_one_rtt" in res.stderr


def test_sigint_to_wirelab_run_leaves_nothing(tmp_path, no_leftovers):
    before = uml_pids()
    proc = subprocess.Popen([*WIRELAB, "--results-dir", str(tmp_path), "run", "tcp_handshake",
                             "--set", "rtt_ms=200", "--repeats", "200"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    # Wait until trials are under way (the run directory has a manifest).
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("*/*/manifest.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.glob("*/*/manifest.json")), "the run never started"
    time.sleep(1.5)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)       # a terminal's Ctrl-C signals the whole group
    rc = proc.wait(timeout=30)
    assert rc == 130
    assert time.monotonic() - t0 < 10
    assert not (uml_pids() - before)
    (run_dir,) = tmp_path.glob("*/*")
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
