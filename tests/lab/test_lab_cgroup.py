"""A lab's own cgroup on this machine: the process that builds it is inside while it is up,
its memory and task caps hold what the lab starts, and nothing is left when it closes
(normally, or when its builder is killed and `wirelab clean` finishes)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from support import ROOT, WIRELAB, lab_cgroups
from wirelab.lab import cgroup
from wirelab.lab.net import Lab
from wirelab.run.catalog import load_topology as get

pytestmark = pytest.mark.lab

HOG = ("import sys; open('/proc/self/oom_score_adj', 'w').write('1000'); "
       "x = bytearray({mb} << 20); x[::4096] = b'x' * len(x[::4096]); print('survived')")


def test_the_lab_holds_its_builder_and_caps_memory_and_tasks(no_leftovers):
    before = Path("/proc/self/cgroup").read_text()
    with Lab(get("single_link")(), caps=cgroup.Caps(memory_mb=128, tasks=64)) as lab:
        mine = Path("/proc/self/cgroup").read_text()
        name = f"wirelab-{lab.tag}"
        assert mine.count(name) == (2 if lab.confinement.layout.version == 1 else 1), mine
        assert lab.resources()["confinement"].endswith(f"{name}: memory <= 128 MB, <= 64 tasks")
        assert lab.available_memory_bytes() <= 128 << 20
        # a program of the lab that wants 300 MB is killed at the cap; its builder lives on
        hog = lab["h1"].popen(["python3", "-c", HOG.format(mb=300)], stdout=subprocess.PIPE)
        out, _ = hog.communicate(timeout=60)
        assert hog.returncode == -9 and b"survived" not in out
        # the same program under the cap finishes
        ok = lab["h1"].run(["python3", "-c", HOG.format(mb=32)])
        assert ok.returncode == 0 and "survived" in ok.stdout
        # tasks: starting sleepers stops at the cap (the builder's own threads count too)
        sleepers, refused = [], None
        try:
            for _ in range(100):
                sleepers.append(subprocess.Popen(["sleep", "30"]))
        except BlockingIOError as e:
            refused = e
        finally:
            for p in sleepers:
                p.kill()
                p.wait()
        assert refused is not None and 0 < len(sleepers) < 64
        assert lab.resources()["tasks_peak"] <= 64
    assert Path("/proc/self/cgroup").read_text() == before
    assert not lab_cgroups()


def test_a_killed_builders_cgroup_is_removed_by_clean(tmp_path, no_leftovers):
    """SIGKILL the process holding a lab: its cgroup stays (in the ledger) until `wirelab
    clean` removes it with the namespaces."""
    script = ("from wirelab.lab.net import Lab\nfrom wirelab.run.catalog import load_topology\n"
              "import time\nlab = Lab(load_topology('single_link')()).__enter__()\n"
              "print(lab.tag, flush=True)\ntime.sleep(60)\n")
    p = subprocess.Popen([WIRELAB[0], "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    tag = p.stdout.readline().strip()
    assert any(d.endswith(f"wirelab-{tag}") for d in lab_cgroups())
    p.kill()
    p.wait()
    time.sleep(0.2)
    res = subprocess.run([*WIRELAB, "clean"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"wirelab-{tag}: removed" in res.stdout + res.stderr
    assert not any(d.endswith(f"wirelab-{tag}") for d in lab_cgroups())
