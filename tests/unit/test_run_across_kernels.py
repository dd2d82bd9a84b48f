"""``wirelab run X --kernel uml:6.1,uml:6.12``: the argument, the orchestration (with the
UML guests faked by copying stored runs), the combined summary and the overlay figure.
No root, no guest."""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from wirelab import cli, settings
from wirelab.errors import BadInput
from wirelab.kernel import backend, kernels, uml
from wirelab.models import releases, retransmit
from wirelab.report import across as report
from wirelab.report import figures, results
from wirelab.report.results import read_run
from wirelab.run import across, catalog, runner

RUNS = Path(__file__).parents[1] / "data" / "runs"
HANDSHAKE = "tcp_handshake_one_rtt"
REFUSAL = ("failed: ModelOutOfRange: the receive-window model (tcp_adv_win_scale) holds for "
           "kernels before 6.6; this is 6.12.113")


def stored(exp_id: str = HANDSHAKE) -> Path:
    return sorted((RUNS / exp_id).iterdir())[-1]


def copy_run(dest: Path, release: str, shift_accept_ms: float = 0.0, status=None,
             rules=None, exp_id: str = HANDSHAKE) -> Path:
    """A stored run copied to DEST as if kernel RELEASE had made it: accept_ms moved by
    SHIFT_ACCEPT_MS at the 50 ms point, the manifest's status and per-point rules set."""
    shutil.copytree(stored(exp_id), dest)
    man = json.loads((dest / "manifest.json").read_text())
    man["kernel"]["release"] = release
    for p in man["points"]:
        p["kernel_facts"]["release"] = release
        if rules is not None:
            p["rules"] = list(rules)
    if status is not None:
        man["status"] = status
    (dest / "manifest.json").write_text(json.dumps(man))
    if shift_accept_ms:
        with open(dest / "trials.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            if float(r["rtt_ms"]) == 50.0:
                r["accept_ms"] = str(float(r["accept_ms"]) + shift_accept_ms)
        with open(dest / "trials.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return dest


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    figures._plt().close("all")


@pytest.fixture
def two_kernels(monkeypatch, tmp_path):
    """This machine has uml:6.1 and uml:6.12 (fake binaries; nothing boots)."""
    have = {n: kernels.Kernel(n, rel, tmp_path / f"linux-{n}", tmp_path, "test")
            for n, rel in (("6.1", "6.1.176"), ("6.12", "6.12.113"))}
    monkeypatch.setattr(kernels, "available_kernels", lambda: dict(have))
    monkeypatch.setattr(kernels, "system_kernel", lambda: have["6.1"])
    return have


# --- the argument ----------------------------------------------------------------------

def test_kernel_list_parses_and_refuses():
    assert across.kernel_list("uml:6.1,uml:6.12") == ["6.1", "6.12"]
    assert across.kernel_list("uml:6.12, uml:6.1") == ["6.12", "6.1"]
    with pytest.raises(BadInput, match=r"'host' cannot be in a list of kernels.*uml:X\.Y"):
        across.kernel_list("uml:6.1,host")
    with pytest.raises(BadInput, match="'uml' cannot be in a list"):
        across.kernel_list("uml,uml:6.12")
    with pytest.raises(BadInput, match="uml:6.1 is listed twice"):
        across.kernel_list("uml:6.1,uml:6.1")
    with pytest.raises(BadInput, match="'' cannot be in a list"):
        across.kernel_list("uml:6.1,")


class Tripwire(BaseException):
    pass


def _trip(what):
    def fn(*a, **k):
        raise Tripwire(what)
    return fn


@pytest.fixture
def no_lab(monkeypatch):
    monkeypatch.setattr(cli, "_require_root", _trip("the root check"))
    monkeypatch.setattr(backend, "resolve", _trip("choose a backend"))
    monkeypatch.setattr(backend, "run_in_uml", _trip("boot UML"))
    monkeypatch.setattr(backend, "HostLock", _trip("take the host lock"))
    monkeypatch.setattr(runner, "run", _trip("run the experiment"))
    monkeypatch.setattr(across, "run", _trip("run across kernels"))


def _code(argv):
    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("value, fragment", [
    ("uml:6.1,host", "'host' cannot be in a list of kernels"),
    ("uml:6.1,auto", "'auto' cannot be in a list of kernels"),
    ("uml:6.1,uml:6.1", "uml:6.1 is listed twice"),
    ("uml:6.1,,uml:6.12", "'' cannot be in a list"),
])
def test_a_bad_list_is_exit_2_naming_the_value_before_anything_exists(
        no_lab, two_kernels, capsys, value, fragment):
    assert _code(["run", HANDSHAKE, "--quick", "--kernel", value]) == 2
    err = capsys.readouterr().err
    assert fragment in err and f"(got {value!r})" in err and "uml:X.Y" in err
    assert not settings.current().results_dir.exists()


def test_an_unknown_kernel_in_the_list_is_exit_2_naming_what_there_is(no_lab, two_kernels,
                                                                      capsys):
    assert cli.main(["run", HANDSHAKE, "--kernel", "uml:6.1,uml:5.10"]) == 2
    err = capsys.readouterr().err
    assert "--kernel uml:5.10: no such UML kernel here; available: uml:6.1, uml:6.12" in err
    assert not settings.current().results_dir.exists()


@pytest.mark.parametrize("cmd", [["doctor"], ["exec"], ["up", "router_chain"]])
def test_only_run_takes_a_list(no_lab, two_kernels, capsys, cmd):
    assert _code([*cmd, "--kernel", "uml:6.1,uml:6.12"]) == 2
    assert "allowed auto, host, uml, or uml:X.Y" in capsys.readouterr().err


def test_a_good_list_gets_past_validation(no_lab, two_kernels):
    with pytest.raises(Tripwire, match="root check"):
        cli.main(["run", HANDSHAKE, "--quick", "--kernel", "uml:6.1,uml:6.12"])


def test_bad_parameters_are_still_checked_first(no_lab, two_kernels, capsys):
    assert cli.main(["run", HANDSHAKE, "--set", "rtt_ms=-5", "--kernel", "uml:6.1,uml:6.12"]) == 2
    assert "rtt_ms" in capsys.readouterr().err


def test_each_guest_gets_the_single_kernel_command_with_json():
    words = across._guest_words(["run", HANDSHAKE, "--kernel", "uml:6.1,uml:6.12", "--quick",
                                 "--results-dir", "/elsewhere"])
    assert words == ["run", HANDSHAKE, "--kernel", "uml:6.1,uml:6.12", "--quick", "--json"]
    argv = backend.guest_argv(words)
    assert "uml:6.1,uml:6.12" not in argv and argv[argv.index("--kernel") + 1] == "host"
    assert argv[argv.index("--results-dir") + 1] == str(settings.current().results_dir)
    assert across._guest_words(["run", "x", "--json", "--results-dir=/a"]) == ["run", "x", "--json"]


# --- the orchestration, guests faked ------------------------------------------------------

def fake_guests(monkeypatch, behaviour: dict):
    """run_in_uml that plays each kernel's guest: BEHAVIOUR[name] = (exit code, shift,
    status, error line) -> a run directory copied into the staging results dir, the
    guest's --json document on its stdout."""
    calls = []

    def run_in_uml(argv, timeout_s=None, read_paths=None, stdout_fd=None):
        conf = settings.current()
        name = conf.uml_kernel
        calls.append((name, list(argv), conf.results_dir))
        code, shift, status, error = behaviour[name]
        release = {"6.1": "6.1.176", "6.12": "6.12.113"}[name]
        outputs = [f"error {code} {error}"] if error else []
        if status is not False:
            made = results.new_run_dir(HANDSHAKE, conf.results_dir)
            shutil.rmtree(made)
            copy_run(made, release, shift, status)
            if code in (0, 1):
                os.write(stdout_fd, json.dumps({"run_dir": str(made), "verdict": "match",
                                                "exit_code": code}).encode())
            outputs.append(f"plot {made}")
        return uml.UmlResult(code, 1.0, 2.0, "", outputs)
    monkeypatch.setattr(backend, "run_in_uml", run_in_uml)
    return calls


def test_run_writes_one_directory_with_a_run_per_kernel(monkeypatch, two_kernels, capsys):
    calls = fake_guests(monkeypatch, {"6.1": (0, 0.0, None, ""), "6.12": (1, 30.0, None, "")})
    monkeypatch.setattr(cli, "_require_root", lambda: None)
    code = cli.main(["run", HANDSHAKE, "--quick", "--kernel", "uml:6.1,uml:6.12", "--json"])
    assert code == 1                                   # one kernel deviates
    doc = json.loads(capsys.readouterr().out)
    root = Path(doc["run_dir"])
    assert [c[0] for c in calls] == ["6.1", "6.12"]    # one after the other, in order
    assert all(c[2] == root / f".staging-{c[0]}" for c in calls)
    assert sorted(p.name for p in root.iterdir()) == [
        "kernel-6.1", "kernel-6.12", "manifest.json", "plot.png", "summary.md"]
    for name in ("6.1", "6.12"):
        run = read_run(root / f"kernel-{name}")           # `wirelab show` reads each
        assert (root / f"kernel-{name}" / "plot.png").exists()
        assert run.manifest["kernel"]["release"].startswith(name + ".")
    man = json.loads((root / "manifest.json").read_text())
    assert man["kind"] == "across kernels" and man["status"] == "completed"
    assert [(k["kernel"], k["dir"], k["exit_code"]) for k in man["kernels"]] == [
        ("uml:6.1", "kernel-6.1", 0), ("uml:6.12", "kernel-6.12", 1)]
    assert [k["verdict"] for k in doc["kernels"]] == ["match", "deviates"]
    assert doc["verdict"] == "deviates" and doc["exit_code"] == 1
    assert doc["kernels"][1]["points"][2]["measured"]["accept_ms"] > 100
    assert any(d["metric"] == "accept_ms" for d in doc["differences"])
    assert settings.current().uml_kernel == "" and settings.current().results_dir == root.parents[1]
    with pytest.raises(BadInput, match="holds one run per kernel.*kernel-6.1/"):
        read_run(root)


def test_a_refused_kernel_says_why_and_the_other_still_stands(monkeypatch, two_kernels, capsys):
    fake_guests(monkeypatch, {"6.1": (0, 0.0, None, ""), "6.12": (3, 0.0, REFUSAL, "")})
    monkeypatch.setattr(cli, "_require_root", lambda: None)
    assert cli.main(["run", HANDSHAKE, "--quick", "--kernel", "uml:6.1,uml:6.12"]) == 3
    out, err = capsys.readouterr()
    assert "uml:6.12: refused: the receive-window model (tcp_adv_win_scale) holds for kernels " \
           "before 6.6; this is 6.12.113" in err
    assert "**uml:6.1 (6.1.176)**: MATCH (3/3 points within their bands)" in out
    assert "refused: the receive-window model" in out


def test_a_guest_that_stops_before_its_run_says_why(monkeypatch, two_kernels, capsys):
    fake_guests(monkeypatch, {"6.1": (4, 0.0, False, "topology refuses it"),
                              "6.12": (0, 0.0, None, "")})
    monkeypatch.setattr(cli, "_require_root", lambda: None)
    assert cli.main(["run", HANDSHAKE, "--quick", "--kernel", "uml:6.1,uml:6.12", "--json"]) == 4
    doc = json.loads(capsys.readouterr().out)
    assert doc["kernels"][0] == {**doc["kernels"][0], "run_dir": None, "verdict": "lab fault",
                                 "why": "topology refuses it", "points": []}
    assert doc["kernels"][1]["verdict"] == "match"


def test_an_interrupt_keeps_what_ran(monkeypatch, two_kernels):
    fake_guests(monkeypatch, {"6.1": (0, 0.0, None, "")})
    real = backend.run_in_uml

    def second_interrupted(argv, **kw):
        if settings.current().uml_kernel == "6.12":
            raise KeyboardInterrupt
        return real(argv, **kw)
    monkeypatch.setattr(backend, "run_in_uml", second_interrupted)
    with pytest.raises(KeyboardInterrupt):
        across.run(catalog.load(HANDSHAKE), ["run", HANDSHAKE], ["6.1", "6.12"], quick=True,
                   say=lambda m: None)
    root = next(settings.current().results_dir.glob(f"{HANDSHAKE}/*"))
    man = json.loads((root / "manifest.json").read_text())
    assert man["status"] == "interrupted" and len(man["kernels"]) == 1
    assert (root / "summary.md").exists() and not list(root.glob(".staging-*"))


# --- combining: exit codes, differences, the summary -------------------------------------

@pytest.mark.parametrize("codes, code, verdict", [
    ((0, 0), 0, "match"), ((0, 1), 1, "deviates"), ((1, 3), 3, "refused"),
    ((3, 4), 4, "lab fault"), ((0, 4), 4, "lab fault"), ((0, 2), 4, "lab fault"),
    ((1, 130), 130, "interrupted"), ((), 4, "lab fault"),
])
def test_exit_code_of_the_parts(codes, code, verdict):
    parts = [report.Part(f"uml:{i}", c) for i, c in enumerate(codes)]
    assert report.exit_code(parts) == code
    assert report.overall(parts) == verdict


def parts_of(tmp_path, shift=0.0, rules=(None, None), status=(None, None), codes=(0, 0)):
    exp = catalog.load(HANDSHAKE)
    a = copy_run(tmp_path / "kernel-6.1", "6.1.176", 0.0, status[0], rules[0])
    b = copy_run(tmp_path / "kernel-6.12", "6.12.113", shift, status[1], rules[1])
    return exp, [report.part(exp, "uml:6.1", codes[0], a), report.part(exp, "uml:6.12", codes[1], b)]


def test_same_kernel_behaviour_differs_nowhere(tmp_path):
    exp, parts = parts_of(tmp_path)
    assert report.differences(exp, parts) == []
    text = report.summary_markdown(exp, {"status": "completed"}, parts)
    assert "**Verdict: MATCH** (exit status 0)" in text
    assert "Nowhere: at every point" in text
    assert "| rtt_ms=50 | connect_ms | 50.000 | " in text
    assert text.count("| rtt_ms=") == 6                # 3 points x 2 metrics


def test_a_shifted_metric_is_where_the_kernels_differ(tmp_path):
    exp, parts = parts_of(tmp_path, shift=0.3)           # inside no band: verdict differs too
    diffs = report.differences(exp, parts)
    assert [(d["params"], d["metric"]) for d in diffs] == [({"rtt_ms": "50"}, "accept_ms")]
    assert any("p10-p90 ranges do not overlap" in r for r in diffs[0]["reasons"])
    text = report.summary_markdown(exp, {}, parts)
    assert "- rtt_ms=50: accept_ms: p10-p90 ranges do not overlap (uml:6.1 [" in text
    assert "DEVIATES" in text or "MATCH" in text


def test_a_verdict_that_differs_is_a_difference(tmp_path):
    exp, parts = parts_of(tmp_path, shift=20.0, codes=(0, 1))
    diffs = report.differences(exp, parts)
    assert "the verdict differs (uml:6.1 within its band, uml:6.12 outside its band)" \
        in diffs[0]["reasons"]
    text = report.summary_markdown(exp, {}, parts)
    assert "**uml:6.12 (6.12.113)**: DEVIATES (2/3 points within their bands)" in text
    assert " **NO** |" in text


def test_the_rules_each_prediction_used_are_listed_per_kernel(tmp_path):
    exp, parts = parts_of(tmp_path, rules=(["the SYN schedule: the rule of kernels before 6.5"],
                                           ["the SYN schedule: the rule of 6.5 and later"]))
    text = report.summary_markdown(exp, {}, parts)
    assert "## Which rule each prediction used" in text
    assert "- uml:6.1 (6.1.176): the SYN schedule: the rule of kernels before 6.5\n" in text
    assert "- uml:6.12 (6.12.113): the SYN schedule: the rule of 6.5 and later\n" in text
    assert report.json_doc(exp, tmp_path, parts)["kernels"][1]["rules"] == {
        "the SYN schedule: the rule of 6.5 and later": [0, 1, 2]}


def test_a_refused_kernel_in_the_summary(tmp_path):
    exp = catalog.load(HANDSHAKE)
    ok = report.part(exp, "uml:6.1", 0, copy_run(tmp_path / "a", "6.1.176"))
    refused = report.part(exp, "uml:6.12", 3, None,
                          "the SYN model holds for kernels before 6.5; this is 6.12.113")
    text = report.summary_markdown(exp, {}, [ok, refused])
    assert "**Verdict: REFUSED** (exit status 3)" in text
    assert "- **uml:6.12**: refused: the SYN model holds for kernels before 6.5" in text
    assert "Nothing to compare: only uml:6.1 measured anything." in text
    assert "| rtt_ms=50 | connect_ms | 50.000 | 50." in text and "| - | - |" in text


def test_models_say_which_release_rule_they_applied():
    from support import kernel_facts
    with releases.recording() as rules:
        releases.require({"release": "6.1.176"}, "the receive-window model", before=(6, 6))
        retransmit.linear_timeouts(kernel_facts(release="6.1.176"))
    assert rules == ["the receive-window model: the rule of kernels before 6.6 (6.1.176)",
                     "the SYN schedule: the rule of kernels before 6.5: doubling from 1 s, no "
                     "linear waits (6.1.176)"]
    with releases.recording() as rules:
        retransmit.linear_timeouts(kernel_facts(release="6.12.113", tcp_syn_linear_timeouts="4"))
    assert rules == ["the SYN schedule: the rule of kernels 6.5 and later: 4 linear 1 s waits "
                     "(tcp_syn_linear_timeouts), then doubling (6.12.113)"]
    releases.used("nobody listens", "fine")                 # outside a recording: no effect


# --- the overlay figure -----------------------------------------------------------------

def test_overlay_figure_from_two_runs(tmp_path):
    exp, parts = parts_of(tmp_path, shift=20.0, codes=(0, 1))
    fig = report.render(exp, parts, "20260101T000000Z-abcd")
    assert tuple(round(v) for v in fig.get_size_inches() * fig.dpi) == (1920, 1080)
    title = fig._suptitle.get_text()
    assert exp.FIGURE.question.split()[0] in title
    assert "uml:6.1 (6.1.176): MATCH" in title and "uml:6.12 (6.12.113): DEVIATES" in title
    axes = fig.axes
    assert len(axes) == 2                                   # connect_ms, accept_ms
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["uml:6.1 (6.1.176)", "uml:6.12 (6.12.113)", "prediction (each kernel's own)"]
    colours = {tuple(line.get_color()) if not isinstance(line.get_color(), str)
               else line.get_color() for line in axes[1].lines if line.get_marker() == "o"}
    assert {figures.PALETTE[0], figures.PALETTE[1]} <= colours
    marks = sum(len(c.get_segments()) for c in axes[1].collections
                if hasattr(c, "get_segments") and c.get_linewidth()[0] >= 2.5)
    assert marks == 6                                       # 3 points x 2 kernels
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["rtt 1 ms", "rtt 10 ms",
                                                                 "rtt 50 ms"]
    assert axes[0].get_ylabel() == "connect [ms]"
    out = figures.save(fig, tmp_path / "plot.png")
    assert out.stat().st_size > 10_000


def test_overlay_figure_when_nothing_was_measured(tmp_path):
    exp = catalog.load(HANDSHAKE)
    parts = [report.Part("uml:6.1", 3, error="refused: a"), report.Part("uml:6.12", 4, error="b")]
    fig = report.render(exp, parts)
    assert "no kernel measured anything" in fig.axes[0].texts[0].get_text()


def test_the_syn_schedule_figure_overlays_its_metrics(tmp_path):
    exp = catalog.load("syn_retransmission_schedule")
    a = copy_run(tmp_path / "a", "6.1.176", exp_id="syn_retransmission_schedule")
    b = copy_run(tmp_path / "b", "6.12.113", exp_id="syn_retransmission_schedule")
    parts = [report.part(exp, "uml:6.1", 0, a), report.part(exp, "uml:6.12", 0, b)]
    fig = report.render(exp, parts)
    assert [ax.get_ylabel() for ax in fig.axes] == ["etimedout [s]", "last syn [s]",
                                                    "syn [count]", "schedule miss [count]"]
