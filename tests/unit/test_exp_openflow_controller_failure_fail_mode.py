"""[42] openflow_controller_failure_fail_mode: predictions per fail mode, the fail-open
log line, the lab it asks for, and the check that keeps secure mode exact.  No root."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from wirelab.errors import BadInput
from wirelab.lab.openflow import OpenFlowLab
from wirelab.run import catalog
from wirelab.topologies.dumbbell import Dumbbell

EXP = catalog.load("openflow_controller_failure_fail_mode")
MOD = EXP.module


def test_secure_admits_nothing_new_and_standalone_fails_open_after_three_probes():
    assert MOD.predict({"fail_mode": "secure", "fault": "kill", "probe_s": 5}, {}) == {
        "new_answered_count": 0.0, "kept_lost_count": 0.0}
    for probe in (5, 8, 30):
        p = MOD.predict({"fail_mode": "standalone", "fault": "pause", "probe_s": probe}, {})
        assert p == {"new_flow_s": 3.0 * probe, "kept_lost_count": 0.0}


def test_the_band_is_ovs_whole_second_clock_and_the_probe_spacing():
    lo, hi = EXP.metric("new_flow_s").tolerance.bounds(15.0)
    assert (lo, hi) == pytest.approx((13.9, 16.1))


def test_the_grid_and_the_lab_it_builds():
    quick = EXP.grid({}, quick=True)
    assert [(p["fail_mode"], p["fault"], p["probe_s"]) for p in quick] == [
        ("secure", "kill", 5), ("standalone", "kill", 5)]
    assert len(EXP.grid({}, quick=False)) == 8
    assert EXP.topology(quick[0]).hosts() == ["h1", "h2", "h3", "h4"]
    lab = EXP.lab({**quick[1], "probe_s": 8})
    assert isinstance(lab, OpenFlowLab)
    assert (lab.fail_mode, lab.inactivity_probe_s, lab.app) == ("standalone", 8, MOD.APP)
    with pytest.raises(BadInput, match="probe_s"):
        EXP.grid({"probe_s": "4"})
    with pytest.raises(BadInput, match="inactivity_probe_s=4"):
        OpenFlowLab(Dumbbell(pairs=1), MOD.APP, inactivity_probe_s=4)


def test_the_failing_open_line_is_read_from_the_log(tmp_path):
    (tmp_path / "ovs").mkdir()
    (tmp_path / "ovs" / "vswitchd.log").write_text(
        "2026-11-27T00:44:41.655Z|00139|rconn|WARN|s1<->tcp:127.0.0.1:6653: connection failed\n"
        "2026-11-27T00:44:42.631Z|00141|fail_open|WARN|Could not connect to controller (or switch "
        "failed controller's post-connection admission control policy) for 15 seconds, failing open\n")
    lab = SimpleNamespace(workdir=tmp_path)
    at = dt.datetime(2026, 11, 27, 0, 44, 42, 631000, tzinfo=dt.UTC).timestamp()
    assert MOD._failing_open(lab, at - 15.0) == pytest.approx(at)
    assert MOD._failing_open(lab, at + 1.0) is None


def test_check_fails_secure_on_any_lost_echo_and_lets_standalone_lose_the_one_in_flight():
    assert MOD.check({"params": {"fail_mode": "secure"}, "measured": {"kept_lost_count": 1.0}})
    assert MOD.check({"params": {"fail_mode": "secure"}, "measured": {"kept_lost_count": 0.0}}) is None
    assert MOD.check({"params": {"fail_mode": "standalone"}, "measured": {"kept_lost_count": 1.0}}) is None
