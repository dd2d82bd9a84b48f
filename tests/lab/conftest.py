"""Lab tests: real namespaces, real qdiscs, real UML guests.  They need root
(``sudo make test`` runs them); they fail, not skip, without it."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WIRELAB = [sys.executable, "-m", "wirelab"]


@pytest.fixture(autouse=True)
def _need_root():
    assert os.geteuid() == 0, "lab tests build namespaces and need root: run `sudo make test`"


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


def snapshot() -> dict:
    return {"netns": lab_namespaces(), "uml": uml_pids(), "ledgers": ledgers()}


@pytest.fixture
def no_leftovers():
    """Assert the test leaves no namespace, UML process or ledger behind."""
    before = snapshot()
    yield before
    deadline = time.monotonic() + 5
    while True:
        after = snapshot()
        new = {k: after[k] - before[k] for k in after}
        if not any(new.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not any(new.values()), f"left behind: {new}"


def wirelab(*args, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*WIRELAB, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, stdin=subprocess.DEVNULL, **kwargs)


def root_sysctls() -> dict[str, str]:
    """Every readable sysctl of the host's root namespace (plus the limits
    Mininet's fixLimits touches outside net.*)."""
    out = {}
    for base in ("/proc/sys/net", "/proc/sys/fs/file-max", "/proc/sys/kernel/pty/max"):
        paths = [Path(base)] if Path(base).is_file() else Path(base).rglob("*")
        for p in paths:
            # Counters and per-interface entries of other namespaces' lifetimes
            # change on their own; skip what is not a knob.
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
