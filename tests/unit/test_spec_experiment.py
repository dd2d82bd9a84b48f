"""wirelab.spec: parameters, grids and repeats of the real tcp_handshake experiment,
and finding experiments (wirelab.run.catalog)."""
from __future__ import annotations

import types

import pytest

from wirelab.errors import BadInput
from wirelab.run import catalog
from wirelab.spec import experiment
from wirelab.spec.experiment import MAX_REPEATS
from wirelab.spec.params import Param


@pytest.fixture(scope="module")
def exp():
    return catalog.load("tcp_handshake")


@pytest.fixture(scope="module")
def rtt(exp):
    return exp.params["rtt_ms"]


@pytest.mark.parametrize("raw, shown", [
    (-5, "-5"), ("-5", "'-5'"), ("abc", "'abc'"), ("nan", "'nan'"), ("inf", "'inf'"),
    ("-inf", "'-inf'"), (float("nan"), "nan"), (1e9, "1000000000"), ("5000.001", "'5000.001'"),
])
def test_bad_values_name_parameter_value_and_range(rtt, raw, shown):
    with pytest.raises(BadInput) as ei:
        rtt.parse(raw)
    msg = str(ei.value)
    assert "rtt_ms" in msg
    assert shown in msg
    assert "0 to 5000" in msg


@pytest.mark.parametrize("raw, want", [("0", 0.0), (" 10 ", 10.0), ("5000", 5000.0),
                                       (50, 50.0), ("1e2", 100.0), ("0.25", 0.25)])
def test_good_values_parse_to_floats(rtt, raw, want):
    value = rtt.parse(raw)
    assert value == want and isinstance(value, float)


def test_bad_value_through_grid(exp):
    with pytest.raises(BadInput, match=r"rtt_ms: '-5' is outside the allowed range 0 to 5000"):
        exp.grid({"rtt_ms": "-5"})
    # One bad value in a list spoils the list.
    with pytest.raises(BadInput, match="'abc'"):
        exp.grid({"rtt_ms": ["10", "abc"]})


def test_unknown_parameter_lists_known_names(exp):
    with pytest.raises(BadInput) as ei:
        exp.grid({"rtt": "10"})
    msg = str(ei.value)
    assert "'rtt'" in msg and "known: rtt_ms" in msg and exp.id in msg


def test_quick_grid_is_a_subset_of_the_full_grid(exp):
    quick = exp.grid({}, quick=True)
    full = exp.grid({})
    assert [p["rtt_ms"] for p in quick] == [1.0, 10.0, 50.0]
    assert [p["rtt_ms"] for p in full] == [1.0, 10.0, 50.0, 100.0, 200.0]
    assert all(p in full for p in quick)


def test_overrides(exp):
    assert exp.grid({"rtt_ms": "20"}) == [{"rtt_ms": 20.0}]
    assert exp.grid({"rtt_ms": ["1", "300"]}, quick=True) == [{"rtt_ms": 1.0}, {"rtt_ms": 300.0}]
    assert exp.grid({"rtt_ms": (5, 7.5)}) == [{"rtt_ms": 5.0}, {"rtt_ms": 7.5}]
    with pytest.raises(BadInput, match="rtt_ms: no value given"):
        exp.grid({"rtt_ms": []})


def test_grid_is_the_product_of_axes():
    """Two parameters: every combination, in order."""
    mod = catalog.load("tcp_handshake").module
    fake = types.SimpleNamespace(**{k: getattr(mod, k) for k in experiment.REQUIRED})
    fake.__name__ = "fake"
    fake.X = "a_ms"
    fake.PARAMS = [Param("a_ms", 1, 0, 10, grid=(1, 2)),
                   Param("n_pkts", 3, 1, 9, grid=(3,), quick=(4, 5), type=int)]
    exp = experiment.Experiment(fake)
    assert exp.grid({}) == [{"a_ms": 1.0, "n_pkts": 3}, {"a_ms": 2.0, "n_pkts": 3}]
    assert exp.grid({"a_ms": "7"}, quick=True) == [{"a_ms": 7.0, "n_pkts": 4},
                                                   {"a_ms": 7.0, "n_pkts": 5}]


def test_repeats(exp):
    assert exp.repeats(None, quick=False) == exp.REPEATS
    assert exp.repeats(None, quick=True) == exp.QUICK_REPEATS
    assert exp.repeats(1, quick=False) == 1
    assert exp.repeats(MAX_REPEATS, quick=True) == MAX_REPEATS


@pytest.mark.parametrize("n", [0, -1, MAX_REPEATS + 1])
def test_bad_repeats(exp, n):
    with pytest.raises(BadInput, match=rf"--repeats {n}: must be 1 to {MAX_REPEATS}"):
        exp.repeats(n, quick=False)


def test_int_param():
    p = Param("count_pkts", default=3, min=1, max=100, type=int)
    assert p.parse("7") == 7 and isinstance(p.parse("7"), int)
    assert p.parse("7.0") == 7 and isinstance(p.parse("7.0"), int)
    assert p.parse(8) == 8
    for raw in ("2.5", "nan", "inf", "x"):
        with pytest.raises(BadInput, match=r"count_pkts: .* is not a whole number; allowed: 1 to 100"):
            p.parse(raw)
    with pytest.raises(BadInput, match="outside"):
        p.parse("101")


def test_int_param_rejects_float_2_5():
    # A float that is not whole is rejected, not truncated (int(2.5) == 2).
    p = Param("count_pkts", default=3, min=1, max=100, type=int)
    with pytest.raises(BadInput, match="count_pkts"):
        p.parse(2.5)


def test_load_unknown_lists_experiments_and_aliases():
    with pytest.raises(BadInput) as ei:
        catalog.load("nope")
    msg = str(ei.value)
    assert "'nope'" in msg
    known = msg.split("known: ", 1)[1].split(", ")
    assert "tcp_handshake_one_rtt" in known and "tcp_handshake" in known  # id and alias
    assert set(catalog.names()) <= set(known)


def test_load_by_alias_and_by_id_is_the_same_module():
    by_alias = catalog.load("tcp_handshake")
    by_id = catalog.load("tcp_handshake_one_rtt")
    assert by_alias.module is by_id.module
    assert by_alias.id == by_id.id == "tcp_handshake_one_rtt"
    assert "tcp_handshake" in by_id.ALIASES


def test_a_point_predicts_the_metrics_that_apply_to_it_and_its_rows_carry_those():
    """flow_control's paused reader has no goodput and its window cases no probes: each
    point predicts its own metrics (at least one judged), and a row must carry exactly
    those."""
    from wirelab.errors import LabError
    from wirelab.run import runner
    exp = catalog.load("flow_control_rwnd_bdp_and_buffer_sysctls")
    runner._check_prediction(exp, {"goodput_mbps": 5.0})
    for bad in ({}, {"window_kb": 64.0}, {"goodput_mbps": 5.0, "speed_mbps": 1.0}):
        with pytest.raises(LabError, match="predict"):
            runner._check_prediction(exp, bad)
    pred = {"first_probe_rto_ratio": 1.0, "backoff_rto_ratio": 2.0, "zero_window_count": 1.0}
    row = {"first_probe_rto_ratio": 1.03, "backoff_rto_ratio": 2.1, "zero_window_count": 1.0}
    assert runner._rows_of(exp, row, pred) == [row]
    with pytest.raises(LabError, match="missing backoff_rto_ratio"):
        runner._rows_of(exp, {"first_probe_rto_ratio": 1.03, "zero_window_count": 1.0}, pred)
    with pytest.raises(LabError, match="unknown goodput_mbps"):
        runner._rows_of(exp, row | {"goodput_mbps": 1.0}, pred)
    # a reported metric may come where nothing predicts it (the autotuned window)
    auto = {"goodput_mbps": 19.0, "window_kb": 900.0}
    assert runner._rows_of(exp, auto, {"goodput_mbps": 19.1}) == [auto]
