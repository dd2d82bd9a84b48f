"""[14] time_wait_duration_and_fin_timeout: TIME_WAIT is 60 s whatever tcp_fin_timeout,
the orphan's FIN_WAIT_2 is tcp_fin_timeout, an end is judged only when watched, and the
timer wheel's rounding."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.run import catalog

EXP = catalog.load("time_wait_duration_and_fin_timeout")
MOD = EXP.module


def params(**over) -> dict:
    return {p.name: p.parse(p.default) for p in EXP.PARAMS} | over


@pytest.mark.parametrize("fin", [15, 60])
@pytest.mark.parametrize("case", ["client_closes", "server_closes"])
def test_time_wait_is_sixty_seconds_whatever_fin_timeout_says(case, fin):
    out = MOD.predict(params(case=case, fin_timeout_s=fin, conns_count=20), kernel_facts())
    assert out == {"tw_timer_s": 60.0, "tw_lifetime_s": 60.0, "closer_tw_count": 20.0,
                   "other_tw_count": 0.0}


def test_an_end_not_watched_is_not_judged():
    quick = MOD.predict(params(case="client_closes", watch_s=10), kernel_facts())
    assert "tw_lifetime_s" not in quick and quick["tw_timer_s"] == 60.0
    assert MOD.predict(params(case="orphan", fin_timeout_s=5, watch_s=10), kernel_facts()) == {
        "fw2_timer_s": 5.0, "fw2_lifetime_s": 5.0}
    assert MOD.predict(params(case="orphan", fin_timeout_s=60, watch_s=10), kernel_facts()) == {
        "fw2_timer_s": 60.0}


@pytest.mark.parametrize("timeout_s, hz, late_s", [
    (0.5, 100, 0.01),       # 50 ticks: level 0, one tick
    (5.0, 100, 0.08),       # 500 ticks: level 1, 8 ticks
    (5.0, 1000, 0.512),     # 5000 ticks: level 3
    (60.0, 100, 5.12),      # 6000 ticks: level 3, 512 ticks
    (60.0, 1000, 4.096),    # 60000 ticks: level 4, 4096 ticks
    (60.0, 250, 2.048),     # 15000 ticks: level 3
])
def test_the_timer_wheel_rounds_up_by_a_bucket_of_its_level(timeout_s, hz, late_s):
    assert MOD.wheel_late_s(timeout_s, hz) == pytest.approx(late_s)
    assert MOD.wheel_late_s(timeout_s, hz) <= timeout_s * 8 / 63 + 1 / hz    # the band's rel


def test_fin_timeout_is_set_on_both_hosts():
    s = EXP.sysctls(params(fin_timeout_s=15))
    # and no RST may end a TIME_WAIT early (on 2 CPUs a late ACK draws one: [15])
    assert s["h1"] == s["h2"] == {"net.ipv4.tcp_fin_timeout": "15", "net.ipv4.tcp_rfc1337": "1"}
