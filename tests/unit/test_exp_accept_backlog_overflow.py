"""[30] accept_backlog_overflow: the prediction per case on both SYN schedules, the sysctls
per case, how connect times are judged, and that the design has no race within the
timer slack a kernel shows."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.run import catalog

EXP = catalog.load("accept_backlog_overflow")
MOD = EXP.module
K61 = kernel_facts(release="6.1.0-13-amd64")
K612 = kernel_facts(release="6.12.113", tcp_syn_linear_timeouts="4")


def params(**over) -> dict:
    return {p.name: p.parse(p.default) for p in EXP.PARAMS} | over


@pytest.mark.parametrize("kernel", [K61, K612])
@pytest.mark.parametrize("case, queue, served, phantom, reset, overflow", [
    ("cookies", 4, 4, 4, 0, 4),         # 4 request socks + 4 cookies; 4 cookie ACKs dropped
    ("no_cookies", 4, 8, 0, 0, 2),      # delayed, never lost
    ("abort", 4, 6, 0, 2, 2),           # the two overflowing ACKs answered with RST
    ("capped", 5, 8, 0, 0, 1),          # listen(4096) under somaxconn 4: holds 5
])
def test_prediction(kernel, case, queue, served, phantom, reset, overflow):
    out = MOD.predict(params(case=case), kernel)
    assert out == {"queue_count": queue, "backlog_limit_count": queue - 1, "served_count": served,
                   "phantom_count": phantom, "reset_count": reset, "overflow_count": overflow,
                   "schedule_miss_count": 0.0}


@pytest.mark.parametrize("case", ["cookies", "no_cookies", "abort", "capped"])
@pytest.mark.parametrize("kernel", [K61, K612])
def test_counts_hold_with_every_timer_up_to_a_quarter_second_late(case, kernel):
    base = MOD.model(params(case=case), kernel)
    for slack in (0.02, 0.05, 0.1, 0.15, 0.25):
        late = MOD.model(params(case=case), kernel, slack_s=slack)
        assert (len(late.served_s), len(late.phantoms()), len(late.reset), late.overflows) == (
            len(base.served_s), len(base.phantoms()), len(base.reset), base.overflows), slack


def test_delayed_clients_wait_for_the_resent_syn_of_their_kernel():
    assert sorted(MOD.model(params(case="no_cookies"), K61).connect_s.values()) == pytest.approx(
        [0.05] * 4 + [1.05] * 4)


@pytest.mark.parametrize("case, server", [
    ("cookies", {"net.ipv4.tcp_syncookies": "1", "net.ipv4.tcp_abort_on_overflow": "0"}),
    ("abort", {"net.ipv4.tcp_syncookies": "0", "net.ipv4.tcp_abort_on_overflow": "1"}),
    ("capped", {"net.ipv4.tcp_syncookies": "0", "net.ipv4.tcp_abort_on_overflow": "0",
                "net.core.somaxconn": "4"}),
])
def test_sysctls(case, server):
    assert EXP.sysctls(params(case=case))["h2"] == server
    assert MOD.listen_backlog(params(case=case)) == (4096 if case == "capped" else 3)


def test_connect_times_are_compared_sorted_and_late_only():
    nominal = [0.05, 0.05, 1.05]
    assert MOD.misses([1.10, 0.06, 0.05], nominal) == 0         # order does not matter
    assert MOD.misses([0.05, 0.05, 1.04], nominal) == 1         # 10 ms early
    assert MOD.misses([0.05, 0.05, 1.25], nominal) == 1         # past 1.05 x 1.13 + 0.05
    assert MOD.misses([0.05, 0.05], nominal) == 1               # one never connected
