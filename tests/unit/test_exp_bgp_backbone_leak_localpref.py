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


class _Routes:
    def __init__(self, answer):
        self.answer = answer

    def route(self, *_args, **_kw):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_no_route_is_not_via_atl_but_any_other_failure_is_a_fault(exp):
    from pyroute2.netlink.exceptions import NetlinkError

    class Msg:
        def __init__(self, gw):
            self.gw = gw

        def get_attr(self, _name):
            return self.gw

    st = {"atl": {"sjc": "10.0.9.1"}}

    def via(answer):
        return exp.module._via_atl({"sjc": type("N", (), {"ipr": _Routes(answer)})()}, st, "sjc", "10.2.0.10")
    assert via([Msg("10.0.9.1")]) is True
    assert via([Msg("10.0.1.1")]) is False
    assert via(NetlinkError(101, "Network is unreachable")) is False
    with pytest.raises(OSError):          # a socket in trouble is not a route: it crashes the trial
        via(OSError(9, "Bad file descriptor"))
