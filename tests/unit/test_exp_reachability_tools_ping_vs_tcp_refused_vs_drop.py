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
