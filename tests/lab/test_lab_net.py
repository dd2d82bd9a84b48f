"""wirelab.lab.net on the host kernel (namespaces, veth, tbf: no netem needed): builds,
carries traffic, always cleans up, and starts every namespace from Linux's defaults."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support import ROOT, lab_namespaces, root_sysctls, wirelab
from wirelab.errors import BadInput, GlobalSysctlError
from wirelab.lab import netns
from wirelab.lab.net import Lab
from wirelab.lab.sysctl import BASELINE, sysctl_path
from wirelab.run.catalog import load_topology as get

pytestmark = pytest.mark.lab


def test_routed_path_carries_traffic_and_cleans_up(no_leftovers):
    with Lab(get("routed_path")()) as lab:
        names = lab_namespaces()
        assert {f"{lab.tag}-h1", f"{lab.tag}-h2", f"{lab.tag}-r1"} <= names
        res = lab["h1"].run(["ping", "-c", "1", "-W", "2", lab["h2"].ip()])
        assert " 0% packet loss" in res.stdout
        # TTL seen at h2's side: one router in between.
        assert "ttl=63" in res.stdout
        assert lab["r1"].sysctl("net.ipv4.ip_forward") == "1"
        assert lab["h1"].sysctl("net.ipv4.ip_forward") == "0"
    assert not any(n.startswith(lab.tag) for n in lab_namespaces())


def test_every_thread_gets_a_netlink_socket_in_the_nodes_namespace(no_leftovers):
    """Threads that come and go (a fault timeline's, an experiment's watcher per trial)
    often get a finished thread's ident; each must still see the node's links, never the
    namespace its thread runs in (the host's)."""
    with Lab(get("single_link")()) as lab:
        seen, idents = [], []

        def links():
            idents.append(threading.get_ident())
            seen.append(sorted(link.get_attr("IFLA_IFNAME") for link in lab["h1"].ipr.get_links()))
        for _ in range(6):
            t = threading.Thread(target=links)
            t.start()
            t.join()
        assert len(set(idents)) < len(idents)           # an ident came back: the case at stake
        assert seen == [["h1-eth0", "lo"]] * 6, seen


def test_dumbbell_bridges_in_their_own_namespace(no_leftovers):
    with Lab(get("dumbbell")(pairs=2, bw_mbps=50, queue_pkts=20)) as lab:
        res = lab["h1"].run(["ping", "-c", "1", "-W", "2", "10.0.0.4"])
        assert " 0% packet loss" in res.stdout
        sw = lab["s1"]
        assert sw.ns == f"{lab.tag}-sw"
        qd = sw.run(["tc", "-j", "qdisc", "show", "dev", "s1-eth1"]).stdout
        kinds = [q["kind"] for q in json.loads(qd)]
        assert "tbf" in kinds
        # Nothing of the lab in the root namespace.
        links = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout
        assert not any(link["ifname"].startswith(("s1", "s2", "h1-", "h2-"))
                       for link in json.loads(links))


def test_exception_inside_the_lab_cleans_up(no_leftovers):
    with pytest.raises(RuntimeError, match="boom"):
        with Lab(get("single_link")()) as lab:
            lab["h1"].popen(["sleep", "600"])
            raise RuntimeError("boom")
    assert not any(n.startswith(lab.tag) for n in lab_namespaces())


def test_every_namespace_starts_from_linux_defaults(no_leftovers):
    """New namespaces inherit some of the host's tuning; a lab sets Linux's defaults."""
    with Lab(get("single_link")(), sysctls={"h2": {"net.ipv4.tcp_fin_timeout": "15"}}) as lab:
        for name, value in BASELINE.items():
            if sysctl_path(name).exists():
                assert lab["h1"].sysctl(name).split() == value.split(), name
        assert lab["h2"].sysctl("net.ipv4.tcp_fin_timeout") == "15"
        assert lab["h1"].sysctl("net.ipv6.conf.all.disable_ipv6") == "1"


def test_bad_link_value_fails_before_anything_is_left(no_leftovers):
    with pytest.raises(BadInput, match="loss_pct"):
        with Lab(get("single_link")(loss_pct=150)):
            pass


def test_global_sysctls_are_refused_and_host_untouched(no_leftovers):
    before = Path("/proc/sys/kernel/pty/max").read_text()
    with Lab(get("single_link")()) as lab:
        with pytest.raises(GlobalSysctlError):
            lab["h1"].sysctl("kernel.pty.max", "20000")
        with pytest.raises(GlobalSysctlError):
            lab["h1"].sysctl("fs.file-max", "10000")
        # Per-namespace knob: set in h1, the host's value stays.
        host_rmem = Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()
        assert lab["h1"].sysctl("net.ipv4.tcp_rmem", "4096 131072 6291456") == "4096\t131072\t6291456"
        assert Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split() == host_rmem
    assert Path("/proc/sys/kernel/pty/max").read_text() == before


def test_a_kernel_wide_sysctl_is_never_changed_on_the_host(no_leftovers):
    """net.core.rmem_max is one value for the whole kernel: a lab asking for another value
    is refused before anything is built (only a UML guest may change it); asking for the
    value the kernel has is fine."""
    from wirelab.errors import EnvironmentProblem
    now = Path("/proc/sys/net/core/rmem_max").read_text().strip()
    with pytest.raises(EnvironmentProblem, match="only a lab inside User-Mode Linux"):
        with Lab(get("single_link")(), sysctls={"kernel": {"net.core.rmem_max": str(int(now) + 4096)}}):
            pass
    assert Path("/proc/sys/net/core/rmem_max").read_text().strip() == now
    with Lab(get("single_link")(), sysctls={"kernel": {"net.core.rmem_max": now}}) as lab:
        assert "kernel" not in lab.effective_sysctls()


def test_host_root_sysctls_identical_after_a_lab(no_leftovers):
    before = root_sysctls()
    with Lab(get("dumbbell")(pairs=1, bw_mbps=10),
             sysctls={"*": {"net.ipv4.tcp_slow_start_after_idle": "0",
                            "net.core.somaxconn": "64"}}) as lab:
        lab["h1"].run(["ping", "-c", "1", "-W", "2", "10.0.0.2"])
    after = root_sysctls()
    changed = {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}
    assert not changed, f"host sysctls changed: {changed}"


def _start_holder():
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/lab/helpers/hold_lab.py")],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    tag = proc.stdout.readline().strip()
    assert tag.startswith("wl"), f"holder printed {tag!r}"
    assert f"{tag}-h1" in lab_namespaces()
    return proc, tag


def _sleepers_in(tag):
    """PIDs of processes running in the lab's namespaces."""
    pids = []
    for name in lab_namespaces():
        if name.startswith(tag):
            pids += netns.pids_in(netns.inode(name))
    return pids


def test_sigint_to_a_live_lab_leaves_nothing(no_leftovers):
    proc, tag = _start_holder()
    sleepers = _sleepers_in(tag)
    assert sleepers, "the holder's process should be running in h2"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)
    assert not any(n.startswith(tag) for n in lab_namespaces())
    for pid in sleepers:
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} survived"


def test_sigkill_then_wirelab_clean_leaves_nothing(no_leftovers):
    proc, tag = _start_holder()
    sleepers = _sleepers_in(tag)
    proc.kill()
    proc.wait(timeout=10)
    # The lab outlived its owner: namespaces and the sleeping process remain.
    assert f"{tag}-h1" in lab_namespaces()
    res = wirelab("clean")
    assert res.returncode == 0, res.stderr
    assert f"{tag}: namespace {tag}-h1: removed" in res.stdout
    assert not any(n.startswith(tag) for n in lab_namespaces())
    deadline = time.monotonic() + 5
    while any(os.path.exists(f"/proc/{p}") for p in sleepers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(os.path.exists(f"/proc/{p}") for p in sleepers)
    # A second clean finds nothing of this run left to do.
    assert tag not in wirelab("clean").stdout


def test_clean_leaves_a_live_lab_alone(no_leftovers):
    with Lab(get("single_link")()) as lab:
        res = wirelab("clean")
        assert f"{lab.tag}: run is alive, left alone" in res.stdout
        assert f"{lab.tag}-h1" in lab_namespaces()
