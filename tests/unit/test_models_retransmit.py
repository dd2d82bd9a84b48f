"""wirelab.models.retransmit: the SYN schedule, the data RTO backoff and its time-based
give-up, keep-alive.  Expected values are worked out by hand from the kernel's rules (see
the module docstring), never by calling the model twice."""
from __future__ import annotations

import pytest

from wirelab.models import releases
from wirelab.models.retransmit import (
    data_schedule,
    keepalive_detection_s,
    linear_timeouts,
    loss_probe_s,
    model_timeout_s,
    syn_schedule,
    syn_waits,
)


def test_the_course_schedule_is_pure_doubling_on_6_1():
    # tcp_syn_retries = 6: SYNs at 0, 1, 3, 7, 15, 31, 63 s, ETIMEDOUT 64 s later.
    times, fail = syn_schedule(6)
    assert times == [0, 1, 3, 7, 15, 31, 63]
    assert fail == 127


def test_linear_timeouts_add_four_one_second_steps_on_6_5_and_later():
    assert syn_waits(6, 4)[:6] == [1, 1, 1, 1, 1, 2]
    times, fail = syn_schedule(6, linear=4)
    assert times == [0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67]
    assert fail == 131                      # 10 retransmissions, and past the 127 s budget


def test_with_linear_steps_the_time_budget_ends_it_before_the_count():
    # tcp_syn_retries 2: a budget of (2^3 - 1) x 1 s = 7 s from the first SYN; the linear
    # steps fit five retransmissions in it (0..5 s), the expiry at 7 s gives up -- as
    # Debian's 6.12.113 did in the lab (SYNs at 0, 1.0, 2.0, 3.0, 4.0, 5.2 s, ETIMEDOUT 7.3 s)
    assert syn_schedule(2, linear=4) == ([0, 1, 2, 3, 4, 5], 7)
    assert syn_schedule(1, linear=4) == ([0, 1, 2], 3)          # TCP_SYNCNT 1: 3 s


@pytest.mark.parametrize("retries, times, fail", [(1, [0, 1], 3), (2, [0, 1, 3], 7),
                                                  (3, [0, 1, 3, 7], 15)])
def test_fewer_retries_give_up_sooner(retries, times, fail):
    assert syn_schedule(retries) == (times, fail)


def test_a_user_timeout_clamps_the_last_wait():
    # 2.5 s: SYNs at 0 and 1 s; the wait from 1 s would end at 3 s, clamped to 2.5 s.
    assert syn_schedule(6, user_timeout_s=2.5) == ([0, 1], 2.5)
    # exactly on a send time: that SYN is not sent, the error comes then
    assert syn_schedule(6, user_timeout_s=3.0) == ([0, 1], 3.0)


def test_linear_timeouts_come_from_the_facts_or_are_refused():
    assert linear_timeouts({"release": "6.1.0-13-amd64", "sysctls": {}}) == 0
    assert linear_timeouts({"release": "6.12.1", "sysctls":
                            {"net.ipv4.tcp_syn_linear_timeouts": "4"}}) == 4
    with pytest.raises(releases.ModelOutOfRange, match="tcp_syn_linear_timeouts"):
        linear_timeouts({"release": "6.12.1", "sysctls": {}})


@pytest.mark.parametrize("n, seconds", [(1, 0.6), (5, 12.6), (8, 102.2), (9, 204.6),
                                        (10, 324.6), (15, 924.6)])
def test_the_give_up_time_of_tcp_retries2(n, seconds):
    # (2^(N+1) - 1) x 0.2 s up to N = 9, then 120 s (TCP_RTO_MAX) per further retry
    assert model_timeout_s(n) == pytest.approx(seconds)


def test_the_loss_probe_waits_two_rtts_and_never_past_the_rto():
    assert loss_probe_s(0.010, 0.5) == pytest.approx(0.220)          # one packet: + 200 ms
    assert loss_probe_s(0.010, 0.5, packets_out=4) == pytest.approx(0.022)   # + 2 ms
    assert loss_probe_s(0.200, 0.3) == pytest.approx(0.3)            # capped by the RTO


def test_data_backoff_doubles_and_gives_up_at_the_first_expiry_past_the_budget():
    # RTO 0.2 s, retries2 = 1 (budget 0.6 s from the first retransmission at 0.2 s):
    # retransmissions at 0.2 and 0.6 s; the expiry at 1.4 s is 1.2 s after 0.2 -> give up.
    times, fail = data_schedule(0.2, 1)
    assert times == pytest.approx([0.2, 0.6]) and fail == pytest.approx(1.4)
    # retries2 = 5 (12.6 s): 0.2, 0.6, 1.4, 3.0, 6.2, 12.6 (12.4 s in: not yet), 25.4
    times, fail = data_schedule(0.2, 5)
    assert times == pytest.approx([0.2, 0.6, 1.4, 3.0, 6.2, 12.6])
    assert fail == pytest.approx(25.4)


def test_the_probe_goes_first_and_does_not_start_the_give_up_clock():
    # probe at 0.3 s, then the RTO (0.25 s) from it: 0.55 (the clock starts), 1.05, 2.05
    times, fail = data_schedule(0.25, 1, probe_s=0.3)
    assert times == pytest.approx([0.3, 0.55, 1.05])
    assert fail == pytest.approx(2.05)                      # 1.5 s after 0.55 >= 0.6


def test_data_give_up_on_a_user_timeout_clamps_the_last_wait():
    # RTO 0.25, no probe, 1 s user timeout from the first retransmission at 0.25:
    # 0.25, 0.75 (wait 0.5), next wait 1.0 clamped to 0.5 -> error at 1.25
    times, fail = data_schedule(0.25, 15, user_timeout_s=1.0)
    assert times == pytest.approx([0.25, 0.75])
    assert fail == pytest.approx(1.25)


def test_the_rto_is_capped_at_two_minutes():
    times, _ = data_schedule(0.2, 15)
    waits = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(waits) == pytest.approx(120.0)
    assert waits[:3] == pytest.approx([0.4, 0.8, 1.6])


def test_keepalive_defaults_take_two_hours_eleven_minutes():
    assert keepalive_detection_s() == 7875.0
    assert keepalive_detection_s(30, 30, 3) == 120.0
