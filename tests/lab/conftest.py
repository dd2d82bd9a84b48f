"""Lab tests: real namespaces, real qdiscs, real UML guests.  They need root (``sudo
make test`` runs them); they fail, not skip, without it."""
from __future__ import annotations

import os
import time

import pytest


@pytest.fixture(autouse=True)
def _need_root():
    assert os.geteuid() == 0, "lab tests build namespaces and need root: run `sudo make test`"


def _root_state() -> dict:
    """What the issue asks the lab suite to leave as it found it: TIME_WAIT sockets of lab
    addresses (10.0.0.0/8) in the root namespace (none may ever exist there; the machine's
    own traffic is not the lab's), the file handles allocated machine-wide, and the free
    memory."""
    with open("/proc/net/tcp") as f:
        tw = sum(1 for line in f.readlines()[1:] if line.split()[3] == "06"
                 and any(a.split(":")[0].endswith("0A") for a in line.split()[1:3]))
    with open("/proc/sys/fs/file-nr") as f:
        files = int(f.read().split()[0])
    with open("/proc/meminfo") as f:
        avail = next(int(ln.split()[1]) for ln in f if ln.startswith("MemAvailable:"))
    return {"time_wait": tw, "files": files, "avail_kb": avail}


@pytest.fixture(scope="session", autouse=True)
def _root_namespace_unchanged():
    """Before and after the whole suite (port exhaustion, 10,000 TIME_WAIT sockets and
    thousands of fds happen in lab namespaces and processes only): no TIME_WAIT of a lab
    address in the root namespace, and, once the kernel has finished tearing the last labs'
    namespaces down (it does so asynchronously: up to 30 s is allowed), no more than 256
    file handles and 256 MB of memory fewer than before (pytest's own files, the page cache
    and slab move a little on their own)."""
    before = _root_state()
    yield
    deadline = time.monotonic() + 30
    while True:
        after = _root_state()
        ok = (after["time_wait"] <= before["time_wait"] and after["files"] <= before["files"] + 256
              and after["avail_kb"] >= before["avail_kb"] - 256 * 1024)
        if ok or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert ok, (before, after)
