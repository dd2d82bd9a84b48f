"""[36] retry_storm_metastable_congestion: the predictions from the metastable model, the
retry policies' rules and the refusal of a device that would be the bottleneck.  No root."""
from __future__ import annotations

import random

import pytest

from wirelab.errors import BadInput
from wirelab.models import metastable as ms
from wirelab.peers.retry_clients import Budget, Policy
from wirelab.run import catalog

MOD = catalog.load("retry_storm_metastable_congestion").module
BASE = {"new_per_s": 250, "mu_per_s": 400, "queue_count": 800, "timeout_ms": 300, "surge_x": 3.0,
        "surge_s": 5.0, "observe_s": 20.0, "request_bytes": 1200, "device_mbps": 8.0, "clients_count": 2}


def test_immediate_retries_and_backoff_stay_failed_and_a_budget_drains():
    imm = MOD.predict({**BASE, "policy": "immediate"}, {})
    assert imm["goodput_after_ratio"] == 0.0 and imm["load_after_per_s"] == 1000.0
    assert imm["device_drop_ratio"] == pytest.approx(1 - 8e6 / (1000 * 1242 * 8))
    assert imm["inpath_blind_count"] == 1.0 and "recovery_s" not in imm
    back = MOD.predict({**BASE, "policy": "backoff"}, {})
    assert back["goodput_after_ratio"] == 0.0 and back["load_after_per_s"] == 1250.0      # 5 tries
    bud = MOD.predict({**BASE, "policy": "budget"}, {})
    assert bud["goodput_after_ratio"] == 1.0 and bud["load_after_per_s"] == 250.0
    assert bud["recovery_s"] == pytest.approx((800 - 400 * 0.3) / (400 - 275))
    assert bud["device_drop_ratio"] == 0.0 and bud["inpath_blind_count"] == 0.0
    for p in (imm, back, bud):
        assert p["queue_at_end_count"] == 800.0 and p["oob_loss_ratio"] == 0.0


def test_a_short_queue_never_fails_and_a_small_load_fits():
    svc = ms.Service(400, 100, 0.3)             # a full queue waits 0.25 s < the timeout
    assert not ms.metastable(1000, svc) and ms.recovery_s(1000, ms.Service(400, 800, 0.3)) is None
    assert ms.recovery_s(300, ms.Service(400, 100, 0.3)) == 0.0
    assert ms.device_loss(100, 1200, 8.0) == 0.0


@pytest.mark.parametrize("params, says", [
    ({"device_mbps": 3.0}, "the device passes 302 requests/s"),
    ({"new_per_s": 400}, "must exceed new_per_s 400"),
])
def test_a_lab_whose_bottleneck_is_not_the_service_is_refused(params, says):
    with pytest.raises(BadInput, match=says):
        MOD.predict({**BASE, "policy": "immediate", **params}, {})


def test_policies_retry_as_they_say():
    rng = random.Random(1)
    imm = Policy("immediate")
    assert [imm.retry_after(k, rng) for k in range(1, 5)] == [0.0, 0.0, 0.0, None]
    back = Policy("backoff")
    waits = [back.retry_after(k, rng) for k in range(1, 5)]
    assert all(0.0 <= w <= 0.1 * 2 ** (k - 1) for k, w in zip(range(1, 5), waits, strict=True))
    assert back.retry_after(5, rng) is None
    capped = Policy("backoff", tries=20, cap_s=1.0)
    assert max(capped.retry_after(15, rng) for _ in range(200)) <= 1.0
    b = Budget(0.1, 10.0)
    for _ in range(25):
        b.earn()
    assert b.spend() and b.spend() and not b.spend()          # 2.5 tokens: two retries
    with pytest.raises(ValueError, match="policy 'hedge'"):
        Policy("hedge")
