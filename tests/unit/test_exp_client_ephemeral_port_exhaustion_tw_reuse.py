"""[15] client_ephemeral_port_exhaustion_tw_reuse: the pool from the port range read
back, the sysctls per case, each trial's own destination ports.  No root."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.run import catalog

EXP = catalog.load("client_ephemeral_port_exhaustion_tw_reuse")
MOD = EXP.module


def params(**over) -> dict:
    return {p.name: p.parse(p.default) for p in EXP.PARAMS} | over


def test_the_default_range_is_28232_ports_per_destination():
    k = kernel_facts(ip_local_port_range="32768 60999")
    assert MOD.predict(params(case="client_closes"), k) == {
        "first_failure_count": 28232.0, "time_wait_count": 28232.0, "second_port_count": 28232.0}
    # the course's "~28,000" at the 60 s TIME_WAIT: 470.5 connections a second
    assert MOD.pool(k) / 60 == pytest.approx(470.53, abs=0.01)


@pytest.mark.parametrize("case", ["server_closes", "tw_reuse"])
def test_closing_second_or_reusing_never_fails(case):
    assert MOD.predict(params(case=case), kernel_facts()) == {"failure_count": 0.0}


@pytest.mark.parametrize("case, reuse", [("client_closes", "2"), ("server_closes", "2"),
                                         ("tw_reuse", "1")])
def test_the_client_gets_the_range_and_its_reuse_setting(case, reuse):
    s = EXP.sysctls(params(case=case, ports_count=1000))
    assert s["h1"] == {"net.ipv4.ip_local_port_range": "32768 33767", "net.ipv4.tcp_tw_reuse": reuse,
                       "net.ipv4.tcp_rfc1337": "1"}   # no RST assassinates a TIME_WAIT
    assert MOD.rate_per_s(1000) == 500.0      # 2 s to use the pool once


def test_every_trial_has_destinations_of_its_own():
    seen = [p for k in range(6) for p in MOD.ports(k)]
    assert len(seen) == len(set(seen)) == 12
