"""`wirelab tune`: the block's workloads are real points of real experiments, how an
effect and a verdict are called, and what the summary says.  The runs themselves are a
lab test (tests/lab/test_tune.py)."""
from __future__ import annotations

import pytest

from wirelab.cli import parse_sysctls
from wirelab.errors import BadInput
from wirelab.lab.sysctl import overlay
from wirelab.run import catalog, tune

COURSE = {"net.core.somaxconn": "4096", "net.ipv4.tcp_max_syn_backlog": "4096",
          "net.ipv4.ip_local_port_range": "1024 65535", "net.ipv4.tcp_tw_reuse": "1",
          "net.ipv4.tcp_fin_timeout": "15", "net.core.rmem_max": "16777216",
          "net.core.wmem_max": "16777216"}


def test_the_block_is_the_courses_seven_sysctls():
    assert {k.sysctl: k.course for k in tune.BLOCK} == COURSE


@pytest.mark.parametrize("wl", [w for k in tune.BLOCK for w in k.workloads], ids=lambda w: w.what[:40])
def test_every_workload_is_a_point_of_an_experiment_that_measures_its_metric(wl):
    exp = catalog.load(wl.experiment)
    sets = {k: v for k, v in wl.sets}
    grid = exp.grid(sets, True)
    assert len(grid) == 1, (wl.what, grid)                  # one quick point
    assert wl.metric in {m.name for m in exp.metrics} and wl.better in ("higher", "lower")
    assert wl.host in {"*", "kernel"} | set(exp.topology(grid[0]).nodes())
    assert wl.when and (wl.quick or wl.slow_why)


def side(median, p10=None, p90=None):
    return {"median": median, "p10": median if p10 is None else p10,
            "p90": median if p90 is None else p90}


@pytest.mark.parametrize("a, b, better, want", [
    (side(60.0), side(15.0), "lower", "helps"),
    (side(1000.0, 990, 1000), side(0.0), "lower", "helps"),
    (side(17.0, 16.8, 17.2), side(19.0, 18.9, 19.1), "higher", "helps"),
    (side(19.0, 18.5, 19.4), side(19.2, 18.7, 19.5), "higher", "no measurable effect"),   # in spread
    (side(100.0), side(101.5), "higher", "no measurable effect"),                          # < 2 %
    (side(4.0), side(8.0), "lower", "hurts"),
])
def test_an_effect_must_clear_the_spread_and_two_percent(a, b, better, want):
    assert tune.effect(a, b, better) == want


def row(effect, when, default="60", value="15", status="measured"):
    return {"effect": effect, "when": when, "default": default, "value": value, "status": status,
            "workload": when}


def test_verdicts():
    knob = tune.BLOCK[4]
    assert tune.verdict(knob, [row("helps", "a"), row("helps", "b")]) == "helps"
    assert tune.verdict(knob, [row("no measurable effect", "TIME_WAIT"), row("helps", "orphans")]) == (
        "only for orphans (not: TIME_WAIT)")
    assert tune.verdict(knob, [row("no measurable effect", "x")]).startswith("no measurable effect")
    assert tune.verdict(knob, [row("hurts", "x"), row("helps", "y")]) == "hurts: x"
    assert tune.verdict(knob, [row("", "x", "4096", "4096")]) == (
        "no change: 15 is already this kernel's default")
    assert tune.verdict(knob, [{"status": "missing"}]) == "not in this kernel"
    assert tune.verdict(knob, [{"status": "not run with --quick: slow"}]).startswith("not measured")


def test_an_unknown_sysctl_for_only_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="not in the course's block"):
        tune.run(tmp_path, quick=True, only="tcp_nonsense")


def test_the_summary_has_every_row_and_a_verdict_per_sysctl():
    knob = tune.BLOCK[4]
    rows = [row("helps", "orphans") | {"sysctl": knob.sysctl, "course": "15", "a_median": 60.0,
                                       "a_p10": 60.0, "a_p90": 60.0, "b_median": 15.0,
                                       "b_p10": 15.0, "b_p90": 15.0},
            {"sysctl": knob.sysctl, "course": "15", "workload": "slow one", "status": "not run"}]
    text = tune.summary([knob], rows, {knob.sysctl: "helps"}, True)
    assert "| `net.ipv4.tcp_fin_timeout` | 60 | 15 | orphans | 60 [60, 60] | 15 [15, 15] | helps |" in text
    assert "| slow one | | | not run |" in text and "**helps**" in text


@pytest.mark.parametrize("word, want", [
    ("net.ipv4.tcp_tw_reuse=1", {"*": {"net.ipv4.tcp_tw_reuse": "1"}}),
    ("h1:net.ipv4.ip_local_port_range=1024 65535", {"h1": {"net.ipv4.ip_local_port_range": "1024 65535"}}),
    ("kernel:net.core.rmem_max=default", {"kernel": {"net.core.rmem_max": "default"}}),
])
def test_sysctl_words(word, want):
    assert parse_sysctls([word]) == want


@pytest.mark.parametrize("word", ["tcp_tw_reuse", "net.ipv4.tcp_tw_reuse=", "h1:=3", "NET..x=1"])
def test_bad_sysctl_words_name_the_value(word):
    with pytest.raises(BadInput, match="expected"):
        parse_sysctls([word])


def test_a_sysctl_for_every_host_replaces_what_the_experiment_set_for_one(monkeypatch):
    monkeypatch.setattr("wirelab.lab.sysctl.fresh_value", lambda name, kernel_wide=False: "60")
    base = {"h1": {"net.ipv4.tcp_fin_timeout": "5", "net.ipv4.tcp_rfc1337": "1"}, "*": {"a.b": "1"}}
    out = overlay(base, {"*": {"net.ipv4.tcp_fin_timeout": "15"}})
    assert out["h1"] == {"net.ipv4.tcp_fin_timeout": "15", "net.ipv4.tcp_rfc1337": "1"}
    assert out["*"]["net.ipv4.tcp_fin_timeout"] == "15"
    assert overlay(base, {"h2": {"net.ipv4.tcp_fin_timeout": "default"}})["h2"] == {
        "net.ipv4.tcp_fin_timeout": "60"}       # Linux's baseline


def test_a_sysctl_the_kernel_lacks_is_named(monkeypatch):
    from wirelab.errors import EnvironmentProblem
    monkeypatch.setattr("wirelab.lab.sysctl.fresh_value", lambda name, kernel_wide=False: None)
    with pytest.raises(EnvironmentProblem, match="no sysctl net.ipv4.tcp_nothing"):
        overlay({}, {"*": {"net.ipv4.tcp_nothing": "1"}})
