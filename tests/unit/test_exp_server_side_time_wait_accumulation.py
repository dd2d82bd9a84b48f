"""[16] server_side_time_wait_accumulation: the count min(connections, cap) and the overflow
past it, the slab object size read from /proc/slabinfo (or sysfs when merged), the servers'
sysctls and one fresh server per trial.  No root."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.run import catalog

EXP = catalog.load("server_side_time_wait_accumulation")
MOD = EXP.module

SLABINFO = """slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables ...
tw_sock_TCPv6          0      0    256   16    1 : tunables    0    0    0 : slabdata      0      0      0
tw_sock_TCP           96    160    256   16    1 : tunables    0    0    0 : slabdata     10     10      0
TCP                   65    117   2368   13    8 : tunables    0    0    0 : slabdata      9      9      0
"""


def params(**over) -> dict:
    return {p.name: p.parse(p.default) for p in EXP.PARAMS} | over


@pytest.fixture
def slab(tmp_path, monkeypatch):
    """A kernel whose tw_sock_TCP cache is its own, 256 B objects (the 6.18 host's)."""
    (tmp_path / "slabinfo").write_text(SLABINFO)
    cache = tmp_path / "slab" / "tw_sock_TCP"
    cache.mkdir(parents=True)
    (cache / "aliases").write_text("0\n")
    (cache / "slab_size").write_text("256\n")
    (cache / "objs_per_slab").write_text("16\n")
    (cache / "cpu_partial").write_text("52\n")
    monkeypatch.setattr(MOD.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(MOD, "SLABINFO", tmp_path / "slabinfo")
    monkeypatch.setattr(MOD, "SYS_SLAB", tmp_path / "slab")
    return tmp_path


def test_slabinfo_gives_active_objects_and_object_size():
    info = MOD.parse_slabinfo(SLABINFO)
    assert info["tw_sock_TCP"] == (96, 256) and info["TCP"] == (65, 2368)


def test_under_the_cap_every_connection_leaves_one_time_wait(slab):
    assert MOD.predict(params(connections_count=10000, tw_buckets_count=20000), kernel_facts()) == {
        "time_wait_count": 10000.0, "overflow_count": 0.0, "failure_count": 0.0,
        "server_ports_count": 1.0, "tw_objects_ratio": 1.0, "tw_slab_bytes": 256.0}


def test_past_the_cap_the_overflow_counter_takes_exactly_the_excess(slab):
    p = MOD.predict(params(connections_count=10000, tw_buckets_count=300), kernel_facts())
    # too few TIME_WAIT sockets to see one object each through SLUB's per-CPU slack
    assert p == {"time_wait_count": 300.0, "overflow_count": 9700.0, "failure_count": 0.0,
                 "server_ports_count": 1.0}
    assert MOD.predict(params(connections_count=10000, tw_buckets_count=5000),
                       kernel_facts())["overflow_count"] == 5000.0


def test_slub_may_count_free_per_cpu_objects_as_in_use(slab):
    # per CPU: its slab (16) and ceil(2 x 52 / 16) = 7 partial slabs of 16: 128 objects
    assert MOD.tw_cache() == (256.0, 256.0)
    # judged from 256 / 3% = 8,534 TIME_WAIT sockets on 2 CPUs, not from 8,533
    judged = [c for c in (8533, 8534) if "tw_objects_ratio" in MOD.predict(
        params(connections_count=20000, tw_buckets_count=c), kernel_facts())]
    assert judged == [8534]
    (slab / "slab" / "tw_sock_TCP" / "cpu_partial").write_text("0\n")
    assert MOD.tw_cache() == (256.0, 32.0)        # no per-CPU partial slabs: one slab each


def test_a_merged_cache_is_sized_from_sysfs_and_never_judged(slab):
    (slab / "slabinfo").write_text(SLABINFO.replace("tw_sock_TCP ", "kmalloc-rnd-256 "))
    (slab / "slab" / "tw_sock_TCP" / "aliases").write_text("3\n")
    assert MOD.tw_cache() == (256.0, None)
    p = MOD.predict(params(connections_count=10000, tw_buckets_count=20000), kernel_facts())
    assert "tw_objects_ratio" not in p and "tw_slab_bytes" not in p


def test_without_slab_files_nothing_about_slab_is_predicted(tmp_path, monkeypatch):
    monkeypatch.setattr(MOD, "SLABINFO", tmp_path / "none")
    monkeypatch.setattr(MOD, "SYS_SLAB", tmp_path / "none")
    assert MOD.tw_cache() == (0.0, None)
    assert "tw_slab_bytes" not in MOD.predict(params(), kernel_facts())


def test_each_server_gets_the_cap_and_keeps_its_time_wait_from_rst():
    s = EXP.sysctls(params(tw_buckets_count=300))
    assert set(s) == {"h4", "h5", "h6", "*"}
    for h in ("h4", "h5", "h6"):
        assert s[h] == {"net.ipv4.tcp_max_tw_buckets": "300", "net.ipv4.tcp_rfc1337": "1"}


def test_one_fresh_server_per_trial_for_every_trial_the_runner_asks():
    assert EXP.topology_params(params()) == {"pairs": 3}
    topo = EXP.topology(params())
    assert sorted(topo.hosts()) == ["h1", "h2", "h3", "h4", "h5", "h6"]
    assert len(MOD.SERVER_NAMES) >= max(EXP.REPEATS, EXP.QUICK_REPEATS)
    # clients bind their own ports: distinct 4-tuples below the ephemeral range
    n = EXP.params["connections_count"].max
    assert MOD.FIRST_CLIENT_PORT + n // MOD.SERVERS < 32768
