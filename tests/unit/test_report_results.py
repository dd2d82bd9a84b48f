"""wirelab.report: results I/O, analysis, summary, plot and show, all from synthetic
run files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import EXPERIMENT
from wirelab import cli
from wirelab.errors import BadInput
from wirelab.report import analysis, plot, results
from wirelab.report.summary import summary_markdown
from wirelab.run.catalog import load
from wirelab.spec.bands import quantile

MATCH = {1.0: (1.1, 1.6), 10.0: (10.2, 15.3), 50.0: (50.5, 75.9)}
#: At 10 ms connect takes twice the prediction.
DEVIATE = {1.0: (1.1, 1.6), 10.0: (20.0, 24.0), 50.0: (50.5, 75.9)}

REPO_RESULTS = Path(__file__).resolve().parents[2] / "results"


def _repo_results_listing():
    return sorted(str(p) for p in REPO_RESULTS.rglob("*")) if REPO_RESULTS.exists() else []


@pytest.fixture(autouse=True)
def _repo_results_untouched():
    before = _repo_results_listing()
    yield
    assert _repo_results_listing() == before, "a unit test wrote into the repo's results/"


def test_round_trip_keeps_numbers_numbers(make_run):
    run_dir = make_run(MATCH, repeats=3)
    run = results.read_run(run_dir)
    assert run.experiment == EXPERIMENT
    assert run.manifest["schema_version"] == results.SCHEMA_VERSION
    assert run.manifest["kernel"] == {"release": "6.1.0-test"}
    assert len(run.rows) == 9
    first = run.rows[0]
    assert list(first) == ["point", "repeat", "rtt_ms", "connect_ms", "accept_ms",
                           "predicted_connect_ms", "predicted_accept_ms"]
    assert first["point"] == 0 and isinstance(first["point"], int)
    assert first["rtt_ms"] == 1.0 and isinstance(first["rtt_ms"], float)
    assert first["connect_ms"] == pytest.approx(1.1)
    assert all(isinstance(v, (int, float)) for r in run.rows for v in r.values())
    assert (run_dir / "raw").is_dir()
    assert not list(run_dir.glob("*.tmp"))


def test_exact_floats_and_missing_values(tmp_path):
    run_dir = results.new_run_dir(EXPERIMENT, tmp_path)
    results.write_manifest(run_dir, {"experiment": EXPERIMENT})
    cols = ["point", "repeat", "x_ms"]
    results.write_trials(run_dir, cols, [{"point": 0, "repeat": 0, "x_ms": 0.1 + 0.2},
                                         {"point": 0, "repeat": 1, "x_ms": None},
                                         {"point": 0, "repeat": 2}])
    rows = results.read_run(run_dir).rows
    assert rows[0]["x_ms"] == 0.1 + 0.2
    assert rows[1]["x_ms"] is None and rows[2]["x_ms"] is None


@pytest.mark.parametrize("version", [0, 3, "1", None])
def test_wrong_schema_version_is_bad_input(make_run, version):
    run_dir = make_run(MATCH)
    m = json.loads((run_dir / "manifest.json").read_text())
    if version is None:
        del m["schema_version"]
    else:
        m["schema_version"] = version
    (run_dir / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BadInput, match=rf"schema version {version!r}; this wirelab reads "
                                        r"versions 1, 2"):
        results.read_run(run_dir)


def test_a_version_1_run_is_still_read(make_run):
    """Runs written before per-point samples existed stay readable."""
    run_dir = make_run(MATCH)
    m = json.loads((run_dir / "manifest.json").read_text())
    m["schema_version"] = 1
    (run_dir / "manifest.json").write_text(json.dumps(m))
    (run_dir / "point_samples.csv").write_text("garbage that version 1 never wrote\n")
    run = results.read_run(run_dir)
    assert run.samples == [] and len(run.rows) == 15


def test_point_samples_round_trip(tmp_path):
    run_dir = results.new_run_dir(EXPERIMENT, tmp_path)
    results.write_manifest(run_dir, {"experiment": EXPERIMENT})
    samples = [{"point": 0, "metric": "first_ms", "sample": k, "value": 1.5 + k,
                "predicted": 1.0} for k in range(3)]
    results.write_samples(run_dir, samples)
    assert results.read_run(run_dir).samples == samples


def test_not_a_run_dir(tmp_path):
    with pytest.raises(BadInput, match="not a wirelab run directory"):
        results.read_run(tmp_path)


def test_new_run_dir_never_reuses(tmp_path):
    made = [results.new_run_dir("x", tmp_path) for _ in range(300)]
    assert len(set(made)) == len(made)
    assert all(p.is_dir() and (p / "raw").is_dir() and p.parent == tmp_path / "x" for p in made)
    assert len(list((tmp_path / "x").iterdir())) == 300


def test_analysis_match(make_run):
    run = results.read_run(make_run(MATCH))
    exp = load(run.experiment)
    pts = analysis.points(exp, run.rows)
    assert [p["params"] for p in pts] == [{"rtt_ms": r} for r in sorted(MATCH)]
    assert all(p["ok"] and p["n"] == 5 for p in pts)
    p10 = pts[1]
    assert p10["measured"]["connect_ms"] == pytest.approx(10.22)     # median of 10.2 .. 10.24
    assert p10["predicted"]["accept_ms"] == 15.0
    assert p10["bounds"]["connect_ms"] == pytest.approx((10.0, 10.8))
    assert p10["p10"]["connect_ms"] <= p10["measured"]["connect_ms"] <= p10["p90"]["connect_ms"]
    assert analysis.verdict(pts) == "match"
    text = summary_markdown(exp, run.manifest, pts)
    assert "**Verdict: MATCH** (3/3 points within their bands)" in text
    assert "**NO**" not in text
    assert "6.1.0-test (host backend)" in text


def test_analysis_deviates(make_run):
    run = results.read_run(make_run(DEVIATE))
    exp = load(run.experiment)
    pts = analysis.points(exp, run.rows)
    assert [p["ok"] for p in pts] == [True, False, True]
    assert analysis.verdict(pts) == "deviates"
    text = summary_markdown(exp, run.manifest, pts)
    assert "**Verdict: DEVIATES** (2/3 points" in text
    assert text.count("**NO**") == 1
    assert "Largest excess over the prediction: +10.020 (connect_ms at rtt_ms=10)" in text


def test_incomplete_run_and_missing_metric(make_run):
    run = results.read_run(make_run(MATCH, status="interrupted"))
    exp = load(run.experiment)
    pts = analysis.points(exp, run.rows)
    assert analysis.verdict(pts, complete=False) == "incomplete"
    assert analysis.verdict([]) == "incomplete"
    assert "**Verdict: INCOMPLETE**" in summary_markdown(exp, run.manifest, pts)
    rows = [dict(r, accept_ms=None) for r in run.rows]
    assert not any(p["ok"] for p in analysis.points(exp, rows))


def test_a_metric_a_point_neither_predicts_nor_measures_does_not_apply_there(make_run):
    """A case that measures other things (a paused reader has no goodput) leaves the
    metric out of both its prediction and its rows; predicted-but-missing still fails,
    measured-but-unpredicted fails, and a point with nothing judged fails."""
    run = results.read_run(make_run(MATCH))
    exp = load(run.experiment)
    rows = [{k: v for k, v in r.items() if k not in ("accept_ms", "predicted_accept_ms")}
            for r in run.rows]
    pts = analysis.points(exp, rows)
    assert all(p["ok"] and "accept_ms" not in p["measured"] for p in pts)
    unpredicted = [{k: v for k, v in r.items() if k != "predicted_accept_ms"} for r in run.rows]
    assert all("accept_ms: measured but not predicted" in p["failures"]
               for p in analysis.points(exp, unpredicted))
    # a reported metric measured where nothing predicts it is shown, not judged
    exp_fc = load("flow_control_rwnd_bdp_and_buffer_sysctls")
    rows_fc = [{"point": 0, "repeat": k, "case": "auto", "rtt_ms": 100.0, "bw_mbps": 20.0,
                "rmem2_bytes": 6291456, "rmem_max_bytes": 212992,
                "goodput_mbps": 19.0 + k / 10, "window_kb": 900.0 + k,
                "predicted_goodput_mbps": 19.13} for k in range(3)]
    (p_fc,) = analysis.points(exp_fc, rows_fc)
    assert p_fc["ok"] and p_fc["measured"]["window_kb"] == 901.0
    assert "window_kb" in p_fc["reported"] and "window_kb" not in p_fc["predicted"]
    bare = [{k: v for k, v in r.items() if not k.endswith(("accept_ms", "connect_ms"))}
            for r in run.rows]
    assert all(not p["ok"] and "nothing judged at this point" in p["failures"]
               for p in analysis.points(exp, bare))


def test_quantile():
    assert quantile([3.0], 0.9) == 3.0
    assert quantile([4.0, 0.0, 2.0], 0.5) == 2.0
    assert quantile(list(map(float, range(11))), 0.1) == pytest.approx(1.0)


def test_plot_writes_a_png(make_run):
    run_dir = make_run(DEVIATE)
    out = plot.plot_run(results.read_run(run_dir), load(EXPERIMENT))
    assert out == run_dir / "plot.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_cli_show_match(make_run, capsys):
    run_dir = make_run(MATCH)
    assert cli.main(["show", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# {EXPERIMENT}: ")
    assert "**Verdict: MATCH**" in out
    assert f"run directory: {run_dir}" in out


def test_cli_show_deviates(make_run, capsys):
    run_dir = make_run(DEVIATE)
    assert cli.main(["show", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert "**Verdict: DEVIATES**" in out and "**NO**" in out


def test_cli_show_bad_dir(tmp_path, capsys):
    assert cli.main(["show", str(tmp_path)]) == 2
    assert "not a wirelab run directory" in capsys.readouterr().err


def test_cli_plot(make_run, capsys):
    run_dir = make_run(MATCH)
    assert not (run_dir / "plot.png").exists()
    assert cli.main(["plot", str(run_dir)]) == 0
    png = run_dir / "plot.png"
    assert capsys.readouterr().out.strip() == str(png)
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
