"""[32] keepalive_dead_peer_detection: idle keep-alive against unacked data (retries2)
and TCP_USER_TIMEOUT, predicted from the kernel facts."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.run import catalog

EXP = catalog.load("keepalive_dead_peer_detection")
K = kernel_facts(hz=100)


def params(**over) -> dict:
    return {p.name: p.parse(p.default) for p in EXP.PARAMS} | over


@pytest.mark.parametrize("case, detect, sent", [
    ("keepalive", 5.0, 3),          # idle 2 s, probes at 2, 3, 4 s, reset at 2 + 3 x 1
    # r = 10: RTO 220 ms, probe at 0.22, RTO retransmissions from 0.44 doubling to 7.04;
    # 14.08 is 13.64 s after 0.44 >= 12.6 s (tcp_retries2 = 5)
    ("data", 14.08, 6),
    ("user_timeout", 3.44, 4),      # 0.44 + 3 s, the 1.76 s wait clamped to 1.68
])
def test_prediction(case, detect, sent):
    out = EXP.module.predict(params(case=case, rtt_ms=10), K)
    assert out["detect_s"] == pytest.approx(detect) and out["sent_count"] == sent


def test_retries2_is_pinned_in_the_client():
    assert EXP.sysctls(params())["h1"]["net.ipv4.tcp_retries2"] == "5"
