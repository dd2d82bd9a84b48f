"""[34] bgp_backbone_leak_localpref: the predictions from the link rate, the frame and the policy."""
from __future__ import annotations

import pytest

from support import lab_facts
from wirelab.run import catalog


@pytest.fixture
def exp():
    return catalog.load("bgp_backbone_leak_localpref")


def test_leaked_goodput_is_the_thin_links_payload_share(exp):
    params = exp.grid({}, quick=True)[0]
    p = exp.predict(params, lab_facts(exp, params))
    assert p["leak_goodput_mbps"] == pytest.approx(10 * 1448 / 1514)
    assert p["leak_loss_pct"] == pytest.approx(100 * (1 - 10 * 1448 / 1514 / 40))
    assert p["atl_path_pct"] == 100.0 and p["before_goodput_mbps"] == p["after_goodput_mbps"] == 40.0


def test_max_prefix_recovers_at_once_and_local_pref_after_the_route_map_delay(exp):
    by_fix = {g["fix"]: exp.predict(g, lab_facts(exp, g)) for g in exp.grid({}, quick=True)}
    assert by_fix["max_prefix"]["recovery_s"] == 0.0
    assert by_fix["local_pref"]["recovery_s"] == by_fix["local_pref"]["leak_onset_s"] == 5.0


def test_the_normal_export_is_two_prefixes(exp):
    assert exp.module.MAX_PREFIX == 2
