"""[39] http2_multiplexing_vs_http1 without root: the round-trip
predictions, the +-1 r band (and the floor of the reported spans and lossy
runs), and the checks on curl's -w rows.  The packet-tap timing is tested
in test_tap.py."""
from __future__ import annotations

import math

import pytest

from wirelab import experiment
from wirelab.errors import LabError

KERNEL = {"release": "6.1.176", "sysctls": {"net.ipv4.tcp_timestamps": "1"}, "hz": 100}

@pytest.fixture(scope="module")
def exp():
    return experiment.load("http2_vs_http1")


def params(rtt=50.0, tls="1.3", loss=2.0):
    return {"rtt_ms": rtt, "loss_pct": loss, "tls": tls}


def test_predictions_at_50ms_tls13(exp):
    pred = exp.predict(params(), KERNEL)
    assert pred["seq_ms"] == pytest.approx(100 + 20 * 50)      # h + 20 r
    assert pred["par6_ms"] == pytest.approx(100 + 4 * 50)      # h + ceil(20/6) r
    # 20 x 5 KiB = 102 400 B > 70 segments x 1448 B: a fourth slow-start round
    assert pred["h2_ms"] == pytest.approx(100 + 4 * 50)
    for m in ("seq", "par6", "h2"):
        assert pred[f"{m}_loss_ms"] == pred[f"{m}_span_ms"] == pred[f"{m}_ms"]
    assert set(pred) == set(exp.METRICS)


def test_tls12_handshake_is_one_rtt_longer(exp):
    a, b = exp.predict(params(tls="1.3"), KERNEL), exp.predict(params(tls="1.2"), KERNEL)
    for m in exp.METRICS:
        assert b[m] - a[m] == pytest.approx(50.0)


@pytest.mark.parametrize("size, rounds", [(1, 1), (5000, 1), (14480, 1), (14481, 2),
                                          (43440, 2), (43441, 3), (100_000, 3),
                                          (101_360, 3), (101_361, 4)])
def test_slow_start_rounds(exp, size, rounds):
    assert exp.module.slow_start_rounds(size, KERNEL) == rounds


def test_ordering_holds_for_any_rtt(exp):
    for r in (1.0, 10.0, 50.0, 300.0):
        pred = exp.predict(params(rtt=r), KERNEL)
        assert pred["h2_ms"] <= pred["par6_ms"] < pred["seq_ms"]


def test_clean_band_is_plus_minus_one_rtt(exp):
    tol = exp.tolerance("seq_ms")
    assert tol.bounds(1100.0, params()) == (1050.0, 1150.0)
    assert tol.check([1149.0], 1100.0, params())[0]
    assert not tol.check([1151.0], 1100.0, params())[0]
    assert not tol.check([1049.0], 1100.0, params())[0]
    assert tol.bounds(1100.0, params(rtt=10.0)) == (1090.0, 1110.0)


@pytest.mark.parametrize("metric", ["h2_loss_ms", "seq_span_ms"])
def test_spans_and_lossy_runs_are_reported_above_a_floor(exp, metric):
    tol = exp.tolerance(metric)
    lo, hi = tol.bounds(250.0, params())
    assert lo == 250.0 and math.isinf(hi)
    assert tol.check([5000.0], 250.0, params())[0]
    assert not tol.check([249.0], 250.0, params())[0]       # nothing beats the round trips


def test_check_reports_the_loss_ordering(exp):
    entry = {"params": params(), "measured": {"seq_loss_ms": 1500.0, "par6_loss_ms": 400.0,
                                              "h2_loss_ms": 600.0}}
    ok, note = exp.module.check(entry)
    assert ok
    assert "par6 400 < h2 600 < seq 1500" in note and "slower than 6 connections by 200" in note


def _rows(n, http, connects):
    rows = [{"response_code": 200, "size_download": 5120, "http_version": http,
             "num_connects": 0} for _ in range(n)]
    for r in rows[:connects]:
        r["num_connects"] = 1
    return rows


def test_validate_checks_http_version_and_connections(exp):
    v = exp.module._validate
    v(_rows(20, "2", 1), "h2")
    v(_rows(20, "1.1", 6), "par6")
    v(_rows(20, "1.1", 1), "seq")
    with pytest.raises(LabError):
        v(_rows(20, "1.1", 1), "h2")           # not multiplexed
    with pytest.raises(LabError):
        v(_rows(20, "1.1", 2), "seq")          # a second connection
    with pytest.raises(LabError):
        v(_rows(19, "1.1", 6), "par6")         # a transfer missing
