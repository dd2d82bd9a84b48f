"""CPU time a lab process spent, read from /proc (no process start)."""
from __future__ import annotations

import os
from pathlib import Path

from wirelab.lab.wait import poll


def child_of(parent_pid: int, timeout_s: float = 30.0) -> int:
    """The only child of PARENT_PID (e.g. an nginx master's one worker)."""
    def child():
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == parent_pid:
                    return int(entry)
        return None
    return poll(child, timeout_s, f"the child of process {parent_pid}")


def cpu_ns(pid: int) -> int:
    """Nanoseconds PID has run on a CPU (/proc/<pid>/schedstat, first field;
    utime+stime where the kernel lacks schedstat).  Inside UML the scheduler clock
    advances in jiffies (10 ms at HZ=100): one request's value is 0 or a whole tick,
    and only a mean over many trials estimates its CPU time."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
