"""[07] rto_backoff_partition: the data retransmission schedule predicted from the RTO
the kernel facts give (HZ, RTO_MIN), the loss probe first, and the give-up time."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.run import catalog

EXP = catalog.load("rto_backoff_partition")
K = kernel_facts(hz=100)


def params(**over) -> dict:
    return {p.name: p.parse(p.default) for p in EXP.PARAMS} | over


def test_retries2_five_at_50_ms():
    # RTO = 50 + 200 ms, next whole jiffy at HZ 100 = 260 ms; probe min(2 x 50 + 200, 260)
    # = 260 ms; RTO retransmissions at 0.52, 1.04, 2.08, 4.16, 8.32; the expiry at
    # 16.64 s is 16.12 s after the first (0.52) >= 12.6 s -> ETIMEDOUT
    out = EXP.module.predict(params(retries2_count=5, user_timeout_ms=0, rtt_ms=50), K)
    assert out["first_retrans_s"] == pytest.approx(0.26)
    assert out["rto_retrans_s"] == pytest.approx(0.52)
    assert out["abort_s"] == pytest.approx(16.64)
    assert out["retrans_count"] == 6 and out["backoff_ratio"] == 2.0


def test_a_user_timeout_of_3_s_gives_up_3_s_after_the_first_rto_retransmission():
    out = EXP.module.predict(params(retries2_count=5, user_timeout_ms=3000, rtt_ms=50), K)
    assert out["abort_s"] == pytest.approx(0.52 + 3.0)
    assert out["retrans_count"] == 4                        # 0.26, 0.52, 1.04, 2.08


def test_the_default_gives_up_after_fifteen_minutes():
    out = EXP.module.predict(params(retries2_count=15, user_timeout_ms=0, rtt_ms=50), K)
    assert 924.6 <= out["abort_s"] - out["rto_retrans_s"] <= 924.6 + 120


def test_the_swept_sysctl_reaches_the_client():
    assert EXP.sysctls(params(retries2_count=8))["h1"]["net.ipv4.tcp_retries2"] == "8"
