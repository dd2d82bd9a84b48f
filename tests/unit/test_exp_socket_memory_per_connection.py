"""[18] socket_memory_per_connection: the per-end sum of slot sizes, the truesize of 64 KB
unread and its pages, the bands, slab growth, how many connections fit.  No root (the slot
sizes are the kernel facts', as the lab reads them from the running kernel)."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.errors import LabError
from wirelab.measure import slab
from wirelab.run import catalog

EXP = catalog.load("socket_memory_per_connection")
MOD = EXP.module
SLABINFO = """slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables ...
TCPv6                 26     26   2496   13    8 : tunables    0    0    0 : slabdata      2      2      0
tw_sock_TCP           96    160    256   16    1 : tunables    0    0    0 : slabdata     10     10      0
TCP                   65    117   2368   13    8 : tunables    0    0    0 : slabdata      9      9      0
sock_inode_cache     152    228    832   19    4 : tunables    0    0    0 : slabdata     12     12      0
"""


def facts(**sizes) -> dict:
    """The 6.18 host's caches (support.SLAB_618), with SIZES of some changed."""
    k = kernel_facts()
    for c, size in sizes.items():
        k["slab"][c]["size_bytes"] = size
    return k


def test_an_idle_end_is_its_objects_slot_sizes_and_64_kb_unread_is_17_pages():
    pred = MOD.predict({"connections_count": 4000}, facts())
    # TCP + inode + file + dentry + the LSM's two blobs + half the client's two bind buckets
    assert pred["slab_per_end_bytes"] == 2368 + 832 + 192 + 192 + 32 + 24 + 128 == 3768
    assert pred["slab_all_per_end_bytes"] == 3768 and pred["time_wait_bytes"] == 256
    assert pred["rmem_per_conn_bytes"] == 65536 + 256 + 576        # one skb: sk_buff + small head
    assert pred["charged_per_conn_bytes"] == 17 * 4096               # whole pages
    # the course's million connections, one end each: 3.77 GB, ~3.5 GiB
    assert pred["slab_per_end_bytes"] * 1e6 / 2**30 == pytest.approx(3.51, abs=0.01)


def test_the_prediction_is_the_kernel_facts_slot_sizes_merged_or_not():
    pred = MOD.predict({"connections_count": 4000}, facts(TCP=2496, tcp_bind2_bucket=64))
    assert pred["slab_per_end_bytes"] == 3768 + 128 - 32
    assert MOD.predict({"connections_count": 4000}, facts(tw_sock_TCP=192))["time_wait_bytes"] == 192


def test_caches_a_kernel_lacks_cost_nothing_and_before_6_3_only_idle_is_judged():
    old = kernel_facts()
    for c in ("lsm_inode_cache", "lsm_file_cache", "skbuff_small_head"):
        del old["slab"][c]
    pred = MOD.predict({"connections_count": 4000}, old)
    assert pred == {"slab_per_end_bytes": 3712.0, "slab_all_per_end_bytes": 3712.0,
                    "time_wait_bytes": 256.0}


def test_without_slab_facts_there_is_no_prediction():
    with pytest.raises(LabError, match="slot sizes"):
        MOD.predict({"connections_count": 4000}, kernel_facts() | {"slab": {}})


def test_the_bands():
    pred = MOD.predict({"connections_count": 4000}, facts())
    slab = EXP.metric("slab_per_end_bytes").tolerance
    assert slab.check([3736.0], pred["slab_per_end_bytes"])[0]           # measured, 6.18
    assert not slab.check([3768 * 1.04], pred["slab_per_end_bytes"])[0]
    assert not slab.check([3768 * 0.96], pred["slab_per_end_bytes"])[0]
    rmem, head = EXP.metric("rmem_per_conn_bytes").tolerance, 256 + 576
    assert rmem.check([65536 + 2 * head], pred["rmem_per_conn_bytes"])[0]     # measured: 2 skbs
    assert rmem.check([65536 + 5 * head], pred["rmem_per_conn_bytes"])[0]     # the first flight: IW/2
    assert not rmem.check([65536 + 6 * head], pred["rmem_per_conn_bytes"])[0]
    assert rmem.impossible(65536.0, pred["rmem_per_conn_bytes"])           # less than the data
    charged = EXP.metric("charged_per_conn_bytes").tolerance
    assert charged.check([18 * 4096], pred["charged_per_conn_bytes"])[0]
    assert not charged.check([19 * 4096], pred["charged_per_conn_bytes"])[0]


def test_slab_growth_is_objects_added_times_slot_size():
    rows = slab.parse(SLABINFO)
    after = {**rows, "TCP": (65 + 10, 2368), "sock_inode_cache": (152 + 10, 832)}
    assert MOD.grown(rows, after) == 10 * (2368 + 832)
    assert MOD.grown(rows, after, ["TCP"]) == 10 * 2368


def test_connections_are_capped_by_fds_memory_and_tcp_mem(monkeypatch):
    pred = MOD.predict({"connections_count": 4000}, facts())
    monkeypatch.setattr(MOD, "read_global", lambda name: "288459\t384612\t576918")
    lots = 24000000 * 1024
    assert MOD.capacity(4000, 20000, pred, lots) == (4000, 4000)
    assert MOD.capacity(50000, 20000, pred, lots)[0] == (20000 - 64) // 2      # 2 fds per connection
    n, filled = MOD.capacity(4000, 20000, pred, 256 << 20)            # 256 MiB: 1/16 per end pair
    assert n == int(256 * 2**20 / 16 / (2 * 3768)) == 2226 and filled == int(16 * 2**20 / (65536 + 8192))
    monkeypatch.setattr(MOD, "read_global", lambda name: "20000\t30000\t40000")
    assert MOD.capacity(4000, 20000, pred, lots) == (4000, int(20000 * 4096 / 2 / (65536 + 8192)))


def test_the_client_has_room_for_three_trials_of_time_wait():
    s = EXP.sysctls({"connections_count": 8000})["h1"]
    lo, hi = (int(x) for x in s["net.ipv4.ip_local_port_range"].split())
    assert hi - lo + 1 >= 3 * 8000 and int(s["net.ipv4.tcp_max_tw_buckets"]) >= 3 * 8000
    assert s["net.ipv4.tcp_rfc1337"] == "1"
