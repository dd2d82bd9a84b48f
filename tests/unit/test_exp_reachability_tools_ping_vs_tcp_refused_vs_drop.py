"""[33] reachability_tools_ping_vs_tcp_refused_vs_drop: one round trip to 'refused' or
'connected', the application's timeout for a dropped ping or SYN, and the SYNs a DROP
sees before the timeout from the SYN schedule."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.run import catalog

EXP = catalog.load("reachability_tools_ping_vs_tcp_refused_vs_drop")
K = kernel_facts()


def params(**over) -> dict:
    return {p.name: p.parse(p.default) for p in EXP.PARAMS} | over


@pytest.mark.parametrize("case, ms, code, syns", [
    ("ping", 2500.0, 2.0, 0), ("open", 50.0, 0.0, 1), ("closed", 50.0, 1.0, 1),
    ("reject_rst", 50.0, 1.0, 1), ("reject_icmp", 50.0, 1.0, 1),
    ("drop", 2500.0, 2.0, 2),       # SYNs at 0 and 1 s; the next (3 s) is past 2.5 s
])
def test_prediction_at_50_ms_and_a_2_5_s_timeout(case, ms, code, syns):
    out = EXP.module.predict(params(case=case, rtt_ms=50, timeout_ms=2500), K)
    assert out == {"time_ms": ms, "outcome_code": code, "syn_count": syns}


def test_a_longer_timeout_sees_more_syns():
    out = EXP.module.predict(params(case="drop", rtt_ms=50, timeout_ms=8000), K)
    assert out["syn_count"] == 4    # 0, 1, 3, 7 s


def test_the_answer_is_this_syns_own_rst_syn_ack_or_an_unreachable():
    """wirelab.measure.tap.answered_ms: a late FIN of the previous connection (an ACK to
    another port) is not the answer; the RST acknowledging this SYN is, 50 ms later."""
    from wirelab.measure.packets import Segment
    from wirelab.measure.tap import Event, answered_ms
    syn = Event(10.0, True, Segment(10.0, "10.0.1.2", 40001, "10.0.2.2", 7002, 999, 0, 0x02, b""))
    stale = Event(10.045, False, Segment(10.045, "10.0.2.2", 7001, "10.0.1.2", 40000, 5, 77, 0x11, b""))
    rst = Event(10.050, False, Segment(10.050, "10.0.2.2", 7002, "10.0.1.2", 40001, 0, 1000, 0x14, b""))
    assert answered_ms([syn, stale, rst], [syn]) == pytest.approx(50.0)
    icmp = Event(10.051, False, Segment(10.051, "10.0.2.2", 3, "10.0.1.2", 3, 0, 0, 0, b"", 1))
    assert answered_ms([syn, stale, icmp], [syn]) == pytest.approx(51.0)
    assert answered_ms([syn, stale], [syn]) is None and answered_ms([], []) is None
