"""[08] loss_recovery_fast_retransmit_vs_rto: recovery times and mechanisms predicted
for a mid-flight loss, a tail loss and a lost probe; the drop rules pick one segment."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.run import catalog

EXP = catalog.load("loss_recovery_fast_retransmit_vs_rto")
MOD = EXP.module
K = kernel_facts(hz=100)


def params(**over) -> dict:
    return {p.name: p.parse(p.default) for p in EXP.PARAMS} | over


@pytest.mark.parametrize("case, ms, code", [
    ("middle", 50.0, 1.0),          # SACKs one r later mark it lost: fast retransmit
    ("tail", 310.0, 2.0),           # r + min(2 x 50 + 200, RTO 260): the loss probe
    ("tail_twice", 570.0, 3.0),     # the probe lost too: one RTO (260 ms) after it
])
def test_prediction_at_50_ms(case, ms, code):
    out = MOD.predict(params(case=case, rtt_ms=50), K)
    assert out == {"recovery_ms": pytest.approx(ms), "mechanism_code": code}


@pytest.mark.parametrize("case, ms", [("middle", 50.0), ("tail", 310.0), ("tail_twice", 830.0)])
def test_without_sack_there_is_no_probe_and_the_rto_recovers_a_tail(case, ms):
    # r + RTO (260) for the tail; the lost retransmission waits twice that again
    out = MOD.predict(params(case=case, rtt_ms=50, sack="0"), K)
    assert out == {"recovery_ms": pytest.approx(ms), "mechanism_code": 1.0 if case == "middle" else 3.0}


def test_each_marker_is_in_exactly_one_segment_of_the_response():
    for case in MOD.CASES:
        body = MOD.response(case)
        k = MOD.DROP_AT[case]
        marker = MOD._marker(k)
        assert body.count(marker) == 1
        at = body.index(marker)
        assert at // MOD.MSS == (at + len(marker) - 1) // MOD.MSS == k


@pytest.mark.parametrize("sack, recovery", [("0", "1"), ("1", "0")])
def test_sack_and_rack_are_set_on_both_ends(sack, recovery):
    s = EXP.sysctls(params(sack=sack, recovery=recovery))
    for node in ("h1", "h2"):
        assert s[node] == {"net.ipv4.tcp_sack": sack, "net.ipv4.tcp_recovery": recovery}
