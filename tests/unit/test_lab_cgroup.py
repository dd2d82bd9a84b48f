"""wirelab.lab.cgroup: where a lab's cgroup goes on a v1 and a v2 machine, what it writes
there, and how it refuses bad caps.  No root: the hierarchies are folders under tmp_path."""
from __future__ import annotations

import pytest

from wirelab.errors import BadInput
from wirelab.lab import cgroup

#: this project's CI machine: v1 memory and pids hierarchies beside an empty cgroup2
V1_MOUNTS = """\
35 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 30 0:31 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
37 30 0:32 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
38 30 0:33 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_SELF = "8:pids:/\n4:memory:/process_api/93a5\n1:cpu:/\n0::/\n"
#: Debian 12/13: one cgroup2 tree, the login session's scope
V2_MOUNTS = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V2_SELF = "0::/user.slice/user-0.slice/session-3.scope\n"


def test_v1_puts_the_lab_beside_this_process_in_each_hierarchy():
    lay = cgroup.layout(V1_MOUNTS, V1_SELF)
    assert isinstance(lay, cgroup.Layout) and lay.version == 1
    assert str(lay.parents["memory"]) == "/sys/fs/cgroup/memory/process_api/93a5"
    assert str(lay.parents["pids"]) == "/sys/fs/cgroup/pids"
    assert lay.origins == lay.parents


def test_v2_puts_the_lab_under_the_roots_wirelab_folder(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma\n")
    lay = cgroup.layout(V2_MOUNTS.replace("/sys/fs/cgroup", str(tmp_path)), V2_SELF)
    assert isinstance(lay, cgroup.Layout) and lay.version == 2
    assert lay.parents == {"memory": tmp_path / "wirelab", "pids": tmp_path / "wirelab"}
    assert lay.origins["memory"] == tmp_path / "user.slice/user-0.slice/session-3.scope"


def test_no_usable_hierarchy_says_why(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu io\n")
    why = cgroup.layout(V2_MOUNTS.replace("/sys/fs/cgroup", str(tmp_path)), V2_SELF)
    assert why == f"cgroup v2 at {tmp_path} lacks the memory, pids controller"
    assert cgroup.layout("", "") == "no cgroup hierarchy with the memory and pids controllers is mounted"
    c = cgroup.Confinement("wl0001", cgroup.Caps(), where=why)
    c.enter()
    assert c.status == why and c.dirs == {} and c.available_bytes() is None and c.peaks() == {}


def test_v1_enter_writes_the_caps_and_moves_the_process(tmp_path):
    lay = cgroup.Layout(1, {"memory": tmp_path / "m", "pids": tmp_path / "p"},
                        {"memory": tmp_path / "m", "pids": tmp_path / "p"})
    for d in lay.parents.values():
        d.mkdir()
    c = cgroup.Confinement("wl0001", cgroup.Caps(memory_mb=256, tasks=300), where=lay, pid=4242)
    c.enter()
    m, p = tmp_path / "m/wirelab-wl0001", tmp_path / "p/wirelab-wl0001"
    assert c.dirs == {"memory": m, "pids": p}
    assert (m / "memory.limit_in_bytes").read_text() == str(256 << 20)
    assert (p / "pids.max").read_text() == "300"
    assert (m / "cgroup.procs").read_text() == (p / "cgroup.procs").read_text() == "4242"
    assert c.status == "cgroup v1 wirelab-wl0001: memory <= 256 MB, <= 300 tasks"
    (m / "memory.usage_in_bytes").write_text(str(56 << 20))
    (m / "memory.max_usage_in_bytes").write_text(str(60 << 20))
    (p / "pids.peak").write_text("17\n")
    assert c.available_bytes() == 200 << 20
    assert c.peaks() == {"memory_peak_mb": 60.0, "tasks_peak": 17.0}


def test_v2_enter_enables_the_controllers_and_exit_moves_back(tmp_path, monkeypatch):
    origin = tmp_path / "user.slice"
    origin.mkdir()
    lay = cgroup.Layout(2, dict.fromkeys(cgroup.CONTROLLERS, tmp_path / "wirelab"),
                        dict.fromkeys(cgroup.CONTROLLERS, origin))
    c = cgroup.Confinement("wl0002", cgroup.Caps(memory_mb=128, tasks=64), where=lay, pid=7)
    c.enter()
    d = tmp_path / "wirelab/wirelab-wl0002"
    assert c.dirs == {"memory": d, "pids": d}
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (tmp_path / "wirelab/cgroup.subtree_control").read_text() == "+memory +pids"
    assert (d / "memory.max").read_text() == str(128 << 20) and (d / "pids.max").read_text() == "64"
    assert (d / "cgroup.procs").read_text() == "7"
    removed = []
    monkeypatch.setattr(cgroup, "remove", lambda path: removed.append(path))
    c.exit()
    assert (origin / "cgroup.procs").read_text() == "7" and removed == [d] and c.dirs == {}


def test_a_cgroup_it_cannot_make_leaves_the_lab_uncapped_and_says_so(tmp_path):
    lay = cgroup.Layout(1, {"memory": tmp_path / "absent", "pids": tmp_path / "absent"},
                        {"memory": tmp_path, "pids": tmp_path})
    c = cgroup.Confinement("wl0003", cgroup.Caps(), where=lay)
    c.enter()
    assert c.status.startswith("uncapped: cannot make the lab's cgroup (") and c.dirs == {}


def test_remove_touches_only_lab_cgroups(tmp_path):
    (tmp_path / "system.slice").mkdir()
    said = cgroup.remove(tmp_path / "system.slice")
    assert said == f"cgroup {tmp_path}/system.slice: not a lab's, left alone"
    assert (tmp_path / "system.slice").is_dir()
    (tmp_path / "wirelab-wl0004").mkdir()
    assert cgroup.remove(tmp_path / "wirelab-wl0004").endswith("removed")
    assert cgroup.remove(tmp_path / "wirelab-wl0004").endswith("already gone")


@pytest.mark.parametrize("caps", [dict(memory_mb=10), dict(tasks=4), dict(memory_mb=1.5)])
def test_bad_caps_are_refused_naming_the_value(caps):
    with pytest.raises(BadInput, match="allowed"):
        cgroup.Caps(**caps)
