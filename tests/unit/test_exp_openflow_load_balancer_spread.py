"""[43] openflow_load_balancer_spread: predictions per policy, the chi-square band, and
the lab it asks for.  No root."""
from __future__ import annotations

import math
import random

import pytest

from wirelab.lab.openflow import OpenFlowLab
from wirelab.run import catalog

EXP = catalog.load("openflow_load_balancer_spread")
MOD = EXP.module


def test_round_robin_is_even_to_within_one_and_the_hash_like_fair_dice():
    for n, gap in ((30, 0.0), (31, 1.0), (10, 1.0), (99, 0.0)):
        assert MOD.predict({"policy": "round_robin", "connections_count": n}, {}) == {
            "misplaced_count": 0.0, "gap_count": gap}
    assert MOD.predict({"policy": "hash", "connections_count": 30}, {}) == {
        "misplaced_count": 0.0, "chi2_ratio": pytest.approx(1.3863, abs=1e-4)}


def test_the_chi2_band_is_the_middle_99_8_percent_of_chi2_with_2_df():
    lo, hi = EXP.metric("chi2_ratio").tolerance.bounds(MOD._CHI2_MEDIAN)
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(-2 * math.log(0.001))            # 13.8
    # N fair dice of 3 faces: the statistic lands inside about 999 times in 1000.
    rng = random.Random(7)
    inside = 0
    for _ in range(4000):
        counts = [0, 0, 0]
        for _ in range(30):
            counts[rng.randrange(3)] += 1
        chi2 = sum((c - 10) ** 2 / 10 for c in counts)
        inside += lo <= chi2 <= hi
    assert inside >= 3980
    # A hash that sent everything to one backend is far outside.
    assert sum((c - 10) ** 2 / 10 for c in (30, 0, 0)) > hi


def test_the_lab_is_an_openflow_lab_with_the_backends_macs():
    lab = EXP.lab({"policy": "round_robin", "connections_count": 31})
    assert isinstance(lab, OpenFlowLab) and lab.app == MOD.APP
    assert lab.app_config["policy"] == "round_robin"
    assert [b["mac"] for b in lab.app_config["backends"]] == [
        "02:00:00:00:01:02", "02:00:00:00:01:03", "02:00:00:00:01:04"]
    assert EXP.topology({"policy": "hash", "connections_count": 30}).hosts() == ["h1", "h2", "h3", "h4"]
