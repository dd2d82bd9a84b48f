"""[06] syn_retransmission_schedule: the prediction from the kernel's release and sysctls
(6.1 doubling, 6.5+ linear steps), the per-socket bounds, and how SYN times are judged.
The schedule arithmetic itself is in test_models_retransmit.py."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.models import releases
from wirelab.run import catalog

EXP = catalog.load("syn_retransmission_schedule")
MOD = EXP.module
K61 = kernel_facts(release="6.1.0-13-amd64")
K612 = kernel_facts(release="6.12.113", tcp_syn_linear_timeouts="4")


def params(**over) -> dict:
    return {p.name: p.parse(p.default) for p in EXP.PARAMS} | over


@pytest.mark.parametrize("case, retries, last, count, fail", [
    ("sysctl", 2, 3.0, 3, 7.0),             # SYNs at 0, 1, 3 s; the timer fires at 7 s
    ("sysctl", 6, 63.0, 7, 127.0),          # the default: 2 min 7 s
    ("syncnt", 6, 1.0, 2, 3.0),             # TCP_SYNCNT = 1 overrides the sysctl
    ("user_timeout", 6, 1.0, 2, 2.5),       # TCP_USER_TIMEOUT 2.5 s cuts the 1 -> 3 s wait
])
def test_prediction_on_6_1(case, retries, last, count, fail):
    out = MOD.predict(params(case=case, syn_retries_count=retries), K61)
    assert out == {"etimedout_s": fail, "last_syn_s": last, "syn_count": count,
                   "schedule_miss_count": 0.0}


def test_prediction_on_6_12_takes_the_linear_steps_it_read():
    # retries 2 + 4 linear: waits 1,1,1,1,1,2 -> SYNs at 0..5 s; the 7 s budget of two
    # doublings of 1 s ends it at the next expiry, 7 s (not 11: the count would allow 6)
    out = MOD.predict(params(case="sysctl", syn_retries_count=2), K612)
    assert (out["last_syn_s"], out["syn_count"], out["etimedout_s"]) == (5.0, 6.0, 7.0)
    out = MOD.predict(params(case="syncnt", syn_retries_count=2), K612)
    assert (out["last_syn_s"], out["syn_count"], out["etimedout_s"]) == (2.0, 3.0, 3.0)


def test_a_6_12_kernel_without_the_sysctl_read_is_refused():
    facts = kernel_facts(release="6.12.113")
    with pytest.raises(releases.ModelOutOfRange):
        MOD.predict(params(), facts)


def test_the_lab_sets_the_swept_sysctl_in_the_client_only():
    s = EXP.sysctls(params(syn_retries_count=3))
    assert s["h1"]["net.ipv4.tcp_syn_retries"] == "3" and "h2" not in s


@pytest.mark.parametrize("measured, misses", [
    ([0.0, 1.0, 3.0], 0),
    ([0.0, 1.12, 3.3], 0),                  # late inside +13% + 50 ms
    ([0.0, 0.95, 3.0], 1),                  # early: a timer never fires early
    ([0.0, 1.0, 3.5], 1),                   # later than the band
    ([0.0, 1.0], 1),                        # one missing
    ([0.0, 1.0, 3.0, 7.0], 1),              # one extra
])
def test_each_syn_is_judged_against_its_own_nominal_time(measured, misses):
    assert MOD.misses(measured, [0.0, 1.0, 3.0]) == misses
