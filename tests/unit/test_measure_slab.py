"""wirelab.measure.slab: /proc/slabinfo rows, the row a cache SLUB merged into another is
counted under (its /sys/kernel/slab symlink), and the facts a prediction reads: slot size,
own cache or not, per-CPU slack.  A fake /proc and sysfs under tmp_path: no root."""
from __future__ import annotations

import pytest

from wirelab.measure import slab

SLABINFO = """slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables ...
tw_sock_TCP           96    160    256   16    1 : tunables    0    0    0 : slabdata     10     10      0
TCP                   65    117   2368   13    8 : tunables    0    0    0 : slabdata      9      9      0
eventpoll_epi       4221   4512    128   32    1 : tunables    0    0    0 : slabdata    141    141      0
lsm_inode_cache    78464  78464     32  128    1 : tunables    0    0    0 : slabdata    613    613      0
"""
NAMES = ("TCP", "tw_sock_TCP", "tcp_bind_bucket", "tcp_bind2_bucket", "lsm_inode_cache", "dentry")


def cache(d, aliases=0, objs_per_slab=16, cpu_partial=52):
    d.mkdir(parents=True)
    for name, v in (("aliases", aliases), ("objs_per_slab", objs_per_slab), ("cpu_partial", cpu_partial)):
        (d / name).write_text(f"{v}\n")
    return d


@pytest.fixture
def kernel(tmp_path):
    """/proc/slabinfo and /sys/kernel/slab as SLUB shows them: TCP and tw_sock_TCP their own
    caches; the bind buckets merged into eventpoll_epi's (:A-0000128, only the first name has
    a row); lsm_inode_cache the first name of a merged cache, so it has a row."""
    (tmp_path / "slabinfo").write_text(SLABINFO)
    sys = tmp_path / "slab"
    cache(sys / "TCP", objs_per_slab=13, cpu_partial=24)
    cache(sys / "tw_sock_TCP")
    cache(sys / ":A-0000128", aliases=2, objs_per_slab=32, cpu_partial=120)
    cache(sys / ":0000032", aliases=2, objs_per_slab=128, cpu_partial=120)
    for name, target in (("eventpoll_epi", ":A-0000128"), ("tcp_bind_bucket", ":A-0000128"),
                         ("tcp_bind2_bucket", ":A-0000128"), ("lsm_inode_cache", ":0000032")):
        (sys / name).symlink_to(target)
    return tmp_path


def facts(kernel, names=NAMES, cpus=2):
    return slab.caches(names, kernel / "slabinfo", kernel / "slab", cpus=cpus)


def test_rows_are_objects_in_use_and_slot_size(kernel):
    rows = slab.parse(SLABINFO)
    assert rows == {"tw_sock_TCP": (96, 256), "TCP": (65, 2368), "eventpoll_epi": (4221, 128),
                    "lsm_inode_cache": (78464, 32)}
    assert slab.read(kernel / "slabinfo") == rows
    assert slab.parse(SLABINFO.splitlines(keepends=True)[0]) == {}         # the header only


def test_a_merged_cache_is_counted_under_the_row_of_the_cache_it_shares(kernel):
    rows = slab.parse(SLABINFO)
    assert slab.rows_of(NAMES, rows, kernel / "slab") == {
        "TCP": "TCP", "tw_sock_TCP": "tw_sock_TCP", "tcp_bind_bucket": "eventpoll_epi",
        "tcp_bind2_bucket": "eventpoll_epi", "lsm_inode_cache": "lsm_inode_cache"}
    # a name in sysfs whose cache has no row, and one the kernel lacks: left out
    (kernel / "slab" / "orphan").symlink_to(":0000032")
    assert slab.rows_of(["orphan", "nope"], {"TCP": (1, 2)}, kernel / "slab") == {}


def test_the_facts_a_prediction_reads(kernel):
    got = facts(kernel)
    assert got == {
        # per CPU its slab and ceil(2 cpu_partial / objs_per_slab) partial slabs: 2 x 13 x (1 + 4)
        "TCP": {"size_bytes": 2368, "own": True, "row": "TCP", "slack_objects": 130},
        "tw_sock_TCP": {"size_bytes": 256, "own": True, "row": "tw_sock_TCP", "slack_objects": 256},
        "tcp_bind_bucket": {"size_bytes": 128, "own": False, "row": "eventpoll_epi", "slack_objects": None},
        "tcp_bind2_bucket": {"size_bytes": 128, "own": False, "row": "eventpoll_epi", "slack_objects": None},
        # listed under its own name, but a symlink with aliases: its row counts others' objects
        "lsm_inode_cache": {"size_bytes": 32, "own": False, "row": "lsm_inode_cache", "slack_objects": None},
    }                                                   # dentry: not in this kernel, absent
    assert facts(kernel, ["tw_sock_TCP"], cpus=4)["tw_sock_TCP"]["slack_objects"] == 512


def test_slack_without_per_cpu_partial_slabs_is_one_slab_per_cpu(kernel):
    (kernel / "slab" / "tw_sock_TCP" / "cpu_partial").write_text("0\n")
    assert facts(kernel)["tw_sock_TCP"]["slack_objects"] == 2 * 16


def test_a_cache_with_aliases_is_not_its_own_even_as_a_directory(kernel):
    (kernel / "slab" / "tw_sock_TCP" / "aliases").write_text("3\n")
    assert facts(kernel)["tw_sock_TCP"] == {"size_bytes": 256, "own": False, "row": "tw_sock_TCP",
                                            "slack_objects": None}


def test_without_sysfs_rows_are_sized_but_nothing_is_own_or_merged(kernel):
    got = slab.caches(NAMES, kernel / "slabinfo", kernel / "none", cpus=2)
    assert set(got) == {"TCP", "tw_sock_TCP", "lsm_inode_cache"}
    assert not any(v["own"] or v["slack_objects"] is not None for v in got.values())
    (kernel / "slab" / "TCP" / "objs_per_slab").unlink()          # a file unreadable: no slack
    assert facts(kernel)["TCP"] == {"size_bytes": 2368, "own": True, "row": "TCP", "slack_objects": None}


def test_unreadable_slabinfo_gives_nothing_and_never_raises(kernel):
    assert slab.caches(NAMES, kernel / "none", kernel / "slab") == {}
    assert slab.caches(NAMES, kernel / "slab", kernel / "slab") == {}        # a directory
    (kernel / "slabinfo").write_text(SLABINFO + "broken  x  y  z\n")
    assert facts(kernel) == {}
