"""[31] connection_capacity_fd_and_4tuple: the fd count the server starts with, the
4-tuple product, the per-case sysctls, and refusing what the process cannot hold."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.run import catalog

EXP = catalog.load("connection_capacity_fd_and_4tuple")
MOD = EXP.module


def params(**over) -> dict:
    return {p.name: p.parse(p.default) for p in EXP.PARAMS} | over


def test_accepts_the_soft_limit_less_the_four_fds_it_starts_with():
    assert MOD.predict(params(case="fd_limit", nofile_count=1024), kernel_facts()) == {
        "accepted_count": 1020.0, "queued_count": float(MOD.EXTRA)}


@pytest.mark.parametrize("case, k", [("1_addr", 1), ("2_addrs", 2), ("3_addrs", 3)])
def test_one_server_port_holds_addresses_times_the_pool(case, k):
    default = kernel_facts(ip_local_port_range="32768 60999")
    assert MOD.predict(params(case=case), default) == {"concurrent_count": k * 28232.0}
    assert MOD.predict(params(case=case), kernel_facts(ip_local_port_range="32768 33067")) == {
        "concurrent_count": k * 300.0}
    assert 3 * 28232 > 65535                  # more than one address has ports


def test_the_client_range_comes_from_ports_count():
    assert EXP.sysctls(params(ports_count=300))["h1"] == {"net.ipv4.ip_local_port_range": "32768 33067"}


def test_the_server_program_keeps_only_four_fds():
    assert "os.closerange(3" in MOD.SERVER and MOD.SERVER.index("closerange") < MOD.SERVER.index(
        "socket.socket()")
