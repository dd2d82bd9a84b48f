"""[16] server_side_time_wait_accumulation: the count min(connections, cap) and the overflow
past it, the slab metrics judged only where the kernel facts show tw_sock_TCP its own cache
with SLUB's slack within the band, the servers' sysctls and one fresh server per trial.  No root."""
from __future__ import annotations

from support import kernel_facts
from wirelab.run import catalog

EXP = catalog.load("server_side_time_wait_accumulation")
MOD = EXP.module


def params(**over) -> dict:
    return {p.name: p.parse(p.default) for p in EXP.PARAMS} | over


def tw_facts(**over) -> dict:
    """The 6.18 host's facts (tw_sock_TCP its own cache, 256 B slots, 256 objects of slack on
    2 CPUs), with OVER in its tw_sock_TCP entry."""
    k = kernel_facts()
    k["slab"]["tw_sock_TCP"] |= over
    return k


def test_under_the_cap_every_connection_leaves_one_time_wait():
    assert MOD.predict(params(connections_count=10000, tw_buckets_count=20000), tw_facts()) == {
        "time_wait_count": 10000.0, "overflow_count": 0.0, "failure_count": 0.0,
        "server_ports_count": 1.0, "tw_objects_ratio": 1.0, "tw_slab_bytes": 256.0}


def test_past_the_cap_the_overflow_counter_takes_exactly_the_excess():
    p = MOD.predict(params(connections_count=10000, tw_buckets_count=300), tw_facts())
    # too few TIME_WAIT sockets to see one object each through SLUB's per-CPU slack
    assert p == {"time_wait_count": 300.0, "overflow_count": 9700.0, "failure_count": 0.0,
                 "server_ports_count": 1.0}
    assert MOD.predict(params(connections_count=10000, tw_buckets_count=5000),
                       tw_facts())["overflow_count"] == 5000.0


def test_slub_may_count_free_per_cpu_objects_as_in_use():
    def judged(facts, caps):
        return [c for c in caps if "tw_objects_ratio" in MOD.predict(
            params(connections_count=20000, tw_buckets_count=c), facts)]
    # judged from 256 / 3% = 8,534 TIME_WAIT sockets (256 objects of slack), not from 8,533
    assert judged(tw_facts(), (8533, 8534)) == [8534]
    assert judged(tw_facts(slack_objects=32), (1066, 1067)) == [1067]      # no per-CPU partials
    assert MOD.predict(params(), tw_facts(size_bytes=192))["tw_slab_bytes"] == 192.0


def test_a_merged_cache_is_never_judged():
    for facts in (tw_facts(own=False, row="kmalloc-rnd-256", slack_objects=None),
                  tw_facts(own=False), tw_facts(slack_objects=None)):
        p = MOD.predict(params(connections_count=10000, tw_buckets_count=20000), facts)
        assert "tw_objects_ratio" not in p and "tw_slab_bytes" not in p


def test_without_slab_facts_nothing_about_slab_is_predicted():
    for slab in ({}, {"TCP": kernel_facts()["slab"]["TCP"]}):
        p = MOD.predict(params(), kernel_facts() | {"slab": slab})
        assert p == {"time_wait_count": 10000.0, "overflow_count": 0.0, "failure_count": 0.0,
                     "server_ports_count": 1.0}
    k = kernel_facts()
    del k["slab"]
    assert "tw_slab_bytes" not in MOD.predict(params(), k)


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
