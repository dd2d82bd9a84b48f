"""[12] cwnd_response_to_loss: the cut each congestion control makes, and how a TCP_INFO
trace is read (the first recovery, the window before it, the loss state after a
timeout).  No root."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.errors import LabError
from wirelab.lab import firewall
from wirelab.run import catalog

EXP = catalog.load("cwnd_response_to_loss")
MOD = EXP.module
INF = 0x7FFFFFFF


def trace(*states):
    """(ca_state, cwnd, ssthresh) triples -> TCP_INFO samples 5 ms apart."""
    return [{"t_s": i * 0.005, "ca_state": s, "snd_cwnd": c, "snd_ssthresh": t}
            for i, (s, c, t) in enumerate(states)]


@pytest.mark.parametrize("cc, ratio", [("reno", 0.5), ("cubic", 717 / 1024)])
def test_prediction(cc, ratio):
    assert MOD.predict({"cc": cc, "rtt_ms": 50}, kernel_facts()) == {
        "ssthresh_ratio": pytest.approx(ratio), "cwnd_after_rto_segs": 1.0}


def test_bbr_is_predicted_to_keep_its_window_and_is_read_through_the_recovery():
    assert MOD.predict({"cc": "bbr", "rtt_ms": 50}, kernel_facts()) == {
        "cwnd_kept_ratio": 1.0, "cwnd_after_rto_segs": 1.0}
    # no ssthresh (infinite throughout): the smallest cwnd in the second recovery / before
    got = MOD.analyse(trace((0, 40, INF), (3, 50, INF), (0, 80, INF), (0, 100, INF),
                            (3, 96, INF), (3, 104, INF), (0, 120, INF), (4, 1, INF)),
                      model_based=True)
    assert got["cwnd_kept_ratio"] == 0.96 and got["cwnd_after_rto_segs"] == 1.0


def test_the_cut_is_read_at_the_second_recovery_against_the_window_just_before():
    got = MOD.analyse(trace(
        (0, 10, INF), (0, 40, INF), (3, 45, 30), (0, 31, 30),         # drop 1: slow start ends
        (0, 58, 30), (0, 60, 30), (3, 45, 30), (3, 30, 30), (0, 31, 30),   # drop 2 in CA
        (4, 1, 15), (4, 2, 15), (0, 16, 15)))
    assert got["ssthresh_ratio"] == 0.5 and got["cwnd_after_rto_segs"] == 1.0
    assert got["cwnd_before"] == 60 and got["ssthresh_before"] == 30


def test_a_trace_without_two_recoveries_or_a_timeout_is_a_lab_fault():
    with pytest.raises(LabError, match="1 fast recoveries"):
        MOD.analyse(trace((0, 10, INF), (0, 40, INF), (3, 45, 30), (0, 31, 30), (4, 1, 10)))
    with pytest.raises(LabError, match="no timeout"):
        MOD.analyse(trace((0, 40, INF), (3, 30, 30), (0, 31, 30), (0, 60, 30), (3, 30, 30),
                          (0, 31, 30)))


def test_the_second_drop_must_come_in_congestion_avoidance():
    # still in slow start (ssthresh infinite) before the second recovery: not the claim
    with pytest.raises(LabError, match="not in congestion avoidance"):
        MOD.analyse(trace((3, 20, INF), (0, 40, INF), (3, 45, 30), (4, 1, 10)))


def test_each_marker_is_dropped_once_and_sits_inside_its_segment():
    assert sorted(MOD.DROPS) == [50, 1020] and len(set(MOD.DROPS.values())) == 2
    for segment, marker in MOD.DROPS.items():
        at = segment * MOD.MSS + MOD.MSS // 2
        assert at // MOD.MSS == (at + len(marker) - 1) // MOD.MSS == segment
        rule = firewall.nth_drop(0, *firewall.carrying(marker, MOD.PORT))
        assert marker.decode() in rule and rule[-2:] == ("-j", "DROP") and "nth" in rule
