"""Lab tests: real namespaces, real qdiscs, real UML guests.  They need root (``sudo
make test`` runs them); they fail, not skip, without it."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _need_root():
    assert os.geteuid() == 0, "lab tests build namespaces and need root: run `sudo make test`"


def _root_state() -> dict:
    """What the issue asks the lab suite to leave as it found it, in the root namespace:
    TIME_WAIT sockets of lab addresses (10.0.0.0/8: none may ever exist there; other
    tests and the machine's own traffic are not the lab's), this process's open fds, and
    (roughly) the free memory."""
    with open("/proc/net/tcp") as f:
        tw = sum(1 for line in f.readlines()[1:] if line.split()[3] == "06"
                 and any(a.split(":")[0].endswith("0A") for a in line.split()[1:3]))
    with open("/proc/meminfo") as f:
        avail = next(int(ln.split()[1]) for ln in f if ln.startswith("MemAvailable:"))
    return {"time_wait": tw, "fds": len(os.listdir("/proc/self/fd")), "avail_kb": avail}


@pytest.fixture(scope="session")
def _root_before():
    return _root_state()


@pytest.fixture(autouse=True)
def _root_namespace_unchanged(_root_before):
    """After every lab test (port exhaustion, 10,000 TIME_WAIT sockets, thousands of fds
    happen in lab namespaces and processes only): no TIME_WAIT of a lab address in the
    root namespace, no more fds open in this process than before the first lab test, and
    no more than 256 MB of memory gone (the page cache and slab move a little on their
    own)."""
    yield
    after = _root_state()
    assert after["time_wait"] <= _root_before["time_wait"], (_root_before, after)
    assert after["fds"] <= _root_before["fds"], (_root_before, after)
    assert after["avail_kb"] >= _root_before["avail_kb"] - 256 * 1024, (_root_before, after)
