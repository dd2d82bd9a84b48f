"""wirelab.spec.bands, on tcp_handshake's prediction and the one-sided band that
judges it."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.run import catalog
from wirelab.spec import Tolerance

KERNEL = kernel_facts()


@pytest.fixture(scope="module")
def exp():
    return catalog.load("tcp_handshake")


@pytest.mark.parametrize("r", [0.0, 1.0, 10.0, 50.0, 123.4, 5000.0])
def test_connect_one_rtt_accept_one_and_a_half(exp, r):
    pred = exp.predict({"rtt_ms": r}, KERNEL)
    assert set(pred) == {m.name for m in exp.metrics}
    assert pred["connect_ms"] == pytest.approx(r)
    assert pred["accept_ms"] == pytest.approx(1.5 * r)


def test_predict_accepts_the_grid_values(exp):
    for point in exp.grid({}):
        pred = exp.predict(point, KERNEL)
        assert pred["accept_ms"] - pred["connect_ms"] == pytest.approx(0.5 * point["rtt_ms"])


def test_tolerance_is_one_sided(exp):
    tol = exp.metric("connect_ms").tolerance
    assert tol == exp.metric("accept_ms").tolerance
    assert tol.below == 0
    p = 100.0
    lo, hi = tol.bounds(p)
    assert lo == p
    assert hi == pytest.approx(p + 0.5 + 0.03 * p)
    assert tol.check([p], p) == (True, p)
    assert tol.check([p - 0.001], p)[0] is False          # early: impossible, fails
    assert tol.check([p + 0.5 + 3.0], p)[0] is True       # at predicted + 0.5 + 3%
    assert tol.check([p + 0.5 + 3.0 + 1e-6], p)[0] is False
    # The statistic is the median: one early and one late outlier do not decide.
    ok, stat = tol.check([0.0, 101.0, 102.0, 102.5, 1000.0], p)
    assert ok and stat == 102.0


@pytest.mark.parametrize("r", [1.0, 10.0, 50.0, 200.0])
def test_tolerance_edges_for_several_rtts(exp, r):
    tol = exp.metric("connect_ms").tolerance
    edge = r + 0.5 + 0.03 * r
    assert tol.check([edge * (1 - 1e-12)], r)[0]
    assert not tol.check([edge + 1e-6], r)[0]
    assert not tol.check([r - 1e-6], r)[0]


def test_tolerance_with_slack_below_and_other_statistics():
    tol = Tolerance(abs=1.0, rel=0.0, below=2.0, statistic="mean")
    assert tol.bounds(10.0) == (8.0, 11.0)
    assert tol.check([8.0, 8.0], 10.0) == (True, 8.0)
    assert tol.check([7.0, 8.0], 10.0) == (False, 7.5)
    assert Tolerance(0, 0, statistic="min").check([5.0, 9.0], 5.0) == (True, 5.0)
    assert "never below" in Tolerance(0.5, 0.03).describe()
    assert "-2 ms" in tol.describe()
    with pytest.raises(ValueError):
        Tolerance(0, 0, statistic="mode").check([1.0], 1.0)


def test_a_count_band_with_a_floor_of_a_tenth_of_a_round_trip():
    """n round trips pass within ±0.1 n, and never less than ±0.1: 0, 1 and 2 round trips
    are told apart."""
    tol = Tolerance(abs=0.0, rel=0.10, min_abs=0.1, symmetric=True)
    assert tol.bounds(0.0) == pytest.approx((-0.1, 0.1))
    assert tol.bounds(1.0) == pytest.approx((0.9, 1.1))
    assert tol.bounds(2.0) == pytest.approx((1.8, 2.2))
    assert not tol.check([1.0], 2.0)[0] and not tol.check([1.15], 1.0)[0]
    ms = Tolerance(abs=0.0, rel=0.10, min_rtt_frac=0.10, symmetric=True)
    assert ms.bounds(0.0, {"rtt_ms": 50}) == pytest.approx((-5.0, 5.0))
    assert ms.bounds(100.0, {"rtt_ms": 50}) == pytest.approx((90.0, 110.0))
    assert "max(" in ms.describe()
