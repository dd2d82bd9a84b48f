"""[41] openflow_reactive_flow_setup: the packet-ins predicted per exchange, the line of
switches, and the lab it asks for.  No root."""
from __future__ import annotations

import pytest

from wirelab.errors import BadInput
from wirelab.lab.openflow import OpenFlowLab
from wirelab.run import catalog
from wirelab.topologies.switch_line import SwitchLine

EXP = catalog.load("openflow_reactive_flow_setup")
MOD = EXP.module


@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_two_n_then_n_then_none_and_two_n_after_idling(n):
    assert MOD.predict({"switches_count": n}, {}) == {
        "first_trips_count": 2.0 * n, "second_trips_count": float(n), "later_trips_count": 0.0,
        "idle_trips_count": 2.0 * n}


def test_the_line_has_every_switch_once_between_the_hosts():
    topo = SwitchLine(switches=3)
    assert topo.hosts() == ["h1", "h2"] and topo.switches() == ["s1", "s2", "s3"]
    links = {tuple(sorted(link)) for link in topo.links()}
    assert links == {("h1", "s1"), ("s1", "s2"), ("s2", "s3"), ("h2", "s3")}
    with pytest.raises(ValueError, match="switches=9"):
        SwitchLine(switches=9)
    with pytest.raises(BadInput, match="switches_count"):
        EXP.grid({"switches_count": "0"})


def test_the_spacing_outlasts_ovs_revalidation_and_the_gap_the_idle_timeout():
    assert MOD.SPACING_S > 0.5                       # max-revalidator, ms 500
    assert MOD.IDLE_GAP_S - MOD.SPACING_S > MOD.IDLE_S + 1.0   # expiry is checked about every second
    lab = EXP.lab({"switches_count": 2})
    assert isinstance(lab, OpenFlowLab) and lab.app_config == {"idle_timeout_s": MOD.IDLE_S}
    assert [p["switches_count"] for p in EXP.grid({}, quick=True)] == [1, 3]
