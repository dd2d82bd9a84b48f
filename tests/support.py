"""Helpers the tests share (imported as ``support``; conftest files only hold fixtures)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIRELAB = [sys.executable, "-m", "wirelab"]


# --- what a lab may leave behind ----------------------------------------------------

def lab_namespaces() -> set[str]:
    try:
        return {n for n in os.listdir("/run/netns") if n.startswith("wl")}
    except FileNotFoundError:
        return set()


def uml_pids() -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                exe = os.readlink(f"/proc/{entry}/exe")
            except OSError:
                continue
            if exe.endswith("linux.uml") or exe.endswith("linux.uml (deleted)"):
                out.add(int(entry))
    return out


def ledgers() -> set[str]:
    d = Path("/run/wirelab/runs")
    return {p.name for p in d.glob("*.json")} if d.is_dir() else set()


def uml_control_dirs() -> set[str]:
    return {p.name for p in Path("/tmp").glob("wirelab-uml-*")}


def temp_dirs() -> set[str]:
    """Scratch folders a lab or a testbed session makes under /tmp."""
    return {p.name for pattern in ("wirelab-up-*", "wirelab-wl*")
            for p in Path("/tmp").glob(pattern)}


def lab_cgroups() -> set[str]:
    """The labs' cgroups (wirelab.lab.cgroup) where this process would make them."""
    from wirelab.lab import cgroup
    lay = cgroup.layout(Path("/proc/self/mountinfo").read_text(), Path("/proc/self/cgroup").read_text())
    if isinstance(lay, str):
        return set()
    return {str(d) for parent in set(lay.parents.values()) for d in parent.glob("wirelab-*")}


def snapshot() -> dict:
    return {"netns": lab_namespaces(), "uml": uml_pids(), "ledgers": ledgers(),
            "uml_ctl": uml_control_dirs(), "tmp": temp_dirs(), "cgroups": lab_cgroups()}


def left_behind(before: dict, settle_s: float = 5.0) -> dict:
    """What appeared since BEFORE and is still there after up to SETTLE_S."""
    deadline = time.monotonic() + settle_s
    while True:
        after = snapshot()
        new = {k: after[k] - before[k] for k in after}
        if not any(new.values()) or time.monotonic() > deadline:
            return {k: v for k, v in new.items() if v}
        time.sleep(0.1)


# --- running the command ---------------------------------------------------------------

def wirelab(*args, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    """``python -m wirelab ARGS`` from the project root, output captured."""
    kwargs.setdefault("cwd", ROOT)
    return subprocess.run([*WIRELAB, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kwargs)


def root_sysctls() -> dict[str, str]:
    """Every readable sysctl of the host's root namespace (plus the limits Mininet's
    fixLimits touches outside net.*)."""
    out = {}
    for base in ("/proc/sys/net", "/proc/sys/fs/file-max", "/proc/sys/kernel/pty/max"):
        paths = [Path(base)] if Path(base).is_file() else Path(base).rglob("*")
        for p in paths:
            # Counters and per-interface entries of other namespaces' lifetimes change
            # on their own; skip what is not a knob.
            if not p.is_file() or "/conf/" in str(p) and "/conf/all/" not in str(p) \
                    and "/conf/default/" not in str(p):
                continue
            if "/neigh/" in str(p) and "/neigh/default/" not in str(p):
                continue
            try:
                out[str(p)] = p.read_text().strip()
            except OSError:
                continue
    for volatile in ("/proc/sys/net/netfilter/nf_conntrack_count",):
        out.pop(volatile, None)
    return out


# --- kernel facts a prediction reads ---------------------------------------------------

#: kernel["slab"] as the 6.18 host (x86_64, 2 CPUs) gives it: /proc/slabinfo's slot sizes,
#: SLUB's merges (the LSM blobs and the bind buckets share others' caches) and per-CPU slack.
SLAB_618 = {
    "TCP": {"size_bytes": 2368, "own": True, "row": "TCP", "slack_objects": 130},
    "sock_inode_cache": {"size_bytes": 832, "own": True, "row": "sock_inode_cache", "slack_objects": 266},
    "filp": {"size_bytes": 192, "own": True, "row": "filp", "slack_objects": 546},
    "dentry": {"size_bytes": 192, "own": True, "row": "dentry", "slack_objects": 546},
    "lsm_inode_cache": {"size_bytes": 32, "own": False, "row": "lsm_inode_cache", "slack_objects": None},
    "lsm_file_cache": {"size_bytes": 24, "own": False, "row": "lsm_file_cache", "slack_objects": None},
    "tcp_bind_bucket": {"size_bytes": 128, "own": False, "row": "eventpoll_epi", "slack_objects": None},
    "tcp_bind2_bucket": {"size_bytes": 128, "own": False, "row": "eventpoll_epi", "slack_objects": None},
    "skbuff_head_cache": {"size_bytes": 256, "own": True, "row": "skbuff_head_cache", "slack_objects": 256},
    "skbuff_small_head": {"size_bytes": 576, "own": True, "row": "skbuff_small_head", "slack_objects": 252},
    "tw_sock_TCP": {"size_bytes": 256, "own": True, "row": "tw_sock_TCP", "slack_objects": 256},
}


def kernel_facts(hz: int = 100, release: str = "6.1.0-test", **sysctls: str) -> dict:
    """Facts as wirelab.kernel.facts.read gives them for a lab namespace: Linux's
    defaults (the lab's baseline) and the runner's trial sysctls, with SYSCTLS
    (underscored names: tcp_rmem="4096 87380 6291456") on top, and the slab caches
    of SLAB_618 (a copy: a test may change it)."""
    from wirelab.lab.sysctl import BASELINE
    from wirelab.spec.experiment import TRIAL_SYSCTLS
    values = {**BASELINE, **TRIAL_SYSCTLS}
    values.update({f"net.ipv4.{k}": v for k, v in sysctls.items()})
    return {"release": release, "hz": hz, "sysctls": values, "mtu": 1500, "iw_segs": 10,
            "rto_min_ms": 200.0,
            "global": {"net.core.rmem_max": "212992", "net.core.wmem_max": "212992",
                       "net.core.somaxconn": "4096"},
            "slab": {c: dict(v) for c, v in SLAB_618.items()}}


# --- synthetic runs (for reading, analysing and plotting without a lab) -----------------

EXPERIMENT = "tcp_handshake_one_rtt"


def trial_rows(points: dict[float, tuple[float, float]], repeats: int = 5) -> list[dict]:
    """Synthetic rows for tcp_handshake: {rtt_ms: (connect_ms, accept_ms)} -> rows with
    a small spread around the given values and the experiment's own predictions."""
    rows = []
    for idx, (rtt, (connect, accept)) in enumerate(sorted(points.items())):
        for rep in range(repeats):
            jiggle = 0.01 * rep
            rows.append({"point": idx, "repeat": rep, "rtt_ms": rtt,
                         "connect_ms": connect + jiggle, "accept_ms": accept + jiggle,
                         "predicted_connect_ms": rtt, "predicted_accept_ms": 1.5 * rtt})
    return rows


def write_run(root, points, status="completed", repeats=5) -> Path:
    """A complete synthetic tcp_handshake run directory under ROOT; returns its path."""
    from wirelab.report import results
    from wirelab.run import catalog
    exp = catalog.load(EXPERIMENT)
    run_dir = results.new_run_dir(EXPERIMENT, root)
    results.write_manifest(run_dir, {
        "experiment": EXPERIMENT, "params": {"rtt_ms": sorted(points)}, "repeats": repeats,
        "seed": 1, "kernel": {"release": "6.1.0-test"}, "backend": "host",
        "started": "2024-01-01T00:00:00+00:00", "ended": "2024-01-01T00:01:00+00:00",
        "status": status})
    cols = results.trial_columns(list(exp.params), [m.name for m in exp.trial_metrics])
    results.write_trials(run_dir, cols, trial_rows(points, repeats))
    return run_dir


def lab_facts(exp, params: dict, hz: int = 100) -> dict:
    """The kernel facts the runner would read for EXP at PARAMS: the first host's
    namespace (the first node of the topology) with the experiment's sysctls set."""
    facts = kernel_facts(hz=hz)
    first = next(n for n in exp.topology(params).nodes() if not n.startswith("s"))
    for node in ("*", first):
        facts["sysctls"].update(exp.sysctls(params).get(node, {}))
    return facts
