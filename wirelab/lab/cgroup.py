"""A lab's own control group: a memory and a task cap on everything the lab runs.

Experiments push the kernel to its limits on purpose (sockets by the ten thousand, full
accept queues, every ephemeral port); the cgroup keeps that from pushing the machine.
While a lab is up, the process that built it (and so every thread, program and socket it
starts: a socket's memory is charged to the cgroup of the task that made it) sits in
``wirelab-<tag>``, a child cgroup with ``memory`` and ``pids`` limits; on close it moves
back to where it was and the cgroup is removed.  Memory charged before the move stays where
it was: the cap counts what the lab adds.

Both hierarchies are served:

* cgroup v2 (Debian 12/13, Ubuntu; one tree at /sys/fs/cgroup): the lab's cgroup is made
  under ``wirelab/`` at the tree's root, because a v2 cgroup holding processes (a login
  session's scope) cannot enable controllers for children; limits ``memory.max`` and
  ``pids.max``.
* cgroup v1 (a memory and a pids hierarchy, as on this project's CI machine): a child of
  the process's own cgroup in each; limits ``memory.limit_in_bytes`` and ``pids.max``.

Where neither is writable (a container without cgroup delegation, a UML guest whose
kernel mounts none) the lab runs uncapped and says so (:attr:`Confinement.status`): the UML
guest's memory (``WIRELAB_UML_MEM_MB``) bounds it there.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from wirelab.errors import BadInput

CONTROLLERS = ("memory", "pids")
V2_PARENT = "wirelab"


@dataclass(frozen=True)
class Caps:
    """What a lab may use: MEMORY_MB of memory its processes and sockets add, TASKS
    threads and processes at once (its builder's threads included)."""
    memory_mb: int = 1024
    tasks: int = 1024

    def __post_init__(self):
        if not (isinstance(self.memory_mb, int) and 64 <= self.memory_mb <= 1 << 20):
            raise BadInput(f"memory cap {self.memory_mb!r} MB: allowed 64 .. {1 << 20}")
        if not (isinstance(self.tasks, int) and 32 <= self.tasks <= 1 << 22):
            raise BadInput(f"task cap {self.tasks!r}: allowed 32 .. {1 << 22}")

    def describe(self) -> str:
        return f"memory <= {self.memory_mb} MB, <= {self.tasks} tasks"


@dataclass(frozen=True)
class Layout:
    """Where the cgroups go: VERSION 1 or 2, and per controller the directory the lab's
    cgroup is made in and the one the process came from."""
    version: int
    parents: dict[str, Path]
    origins: dict[str, Path]


def _mounts(mountinfo: str) -> tuple[Path | None, dict[str, Path]]:
    """(the cgroup2 mount, {v1 controller: its mount}) from /proc/self/mountinfo."""
    v2: Path | None = None
    v1: dict[str, Path] = {}
    for line in mountinfo.splitlines():
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup2" and v2 is None:
            v2 = Path(fields[4])
        elif tail[0] == "cgroup":
            for opt in tail[2].split(","):
                if opt in CONTROLLERS:
                    v1.setdefault(opt, Path(fields[4]))
    return v2, v1


def _own(proc_cgroup: str) -> tuple[str | None, dict[str, str]]:
    """(the v2 path, {v1 controller: path}) of this process, from /proc/self/cgroup."""
    v2, v1 = None, {}
    for line in proc_cgroup.splitlines():
        _, ctrls, path = line.split(":", 2)
        if ctrls == "":
            v2 = path
        for c in ctrls.split(","):
            if c in CONTROLLERS:
                v1[c] = path
    return v2, v1


def layout(mountinfo: str, proc_cgroup: str) -> Layout | str:
    """Where this process's lab cgroups would go, or why nowhere."""
    m2, m1 = _mounts(mountinfo)
    o2, o1 = _own(proc_cgroup)
    if all(c in m1 and c in o1 for c in CONTROLLERS):
        return Layout(1, {c: m1[c] / o1[c].lstrip("/") for c in CONTROLLERS},
                      {c: m1[c] / o1[c].lstrip("/") for c in CONTROLLERS})
    if m2 is not None and o2 is not None:
        try:
            have = (m2 / "cgroup.controllers").read_text().split()
        except OSError:
            have = []
        missing = [c for c in CONTROLLERS if c not in have]
        if missing:
            return f"cgroup v2 at {m2} lacks the {', '.join(missing)} controller"
        origin = m2 / o2.lstrip("/")
        return Layout(2, dict.fromkeys(CONTROLLERS, m2 / V2_PARENT), dict.fromkeys(CONTROLLERS, origin))
    return "no cgroup hierarchy with the memory and pids controllers is mounted"


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


class Confinement:
    """The lab's cgroups while they exist.  :meth:`enter` makes them and moves this process
    in; :meth:`exit` moves it back and removes them.  STATUS says what holds the lab."""

    def __init__(self, tag: str, caps: Caps, where: Layout | str | None = None, pid: int | None = None):
        self.caps, self.name, self.pid = caps, f"wirelab-{tag}", pid or os.getpid()
        if where is None:
            where = layout(Path("/proc/self/mountinfo").read_text(), Path("/proc/self/cgroup").read_text())
        self.layout = where if isinstance(where, Layout) else None
        self.status = where if isinstance(where, str) else ""
        self.dirs: dict[str, Path] = {}

    def enter(self) -> None:
        if self.layout is None:
            return
        lay = self.layout
        try:
            if lay.version == 2:
                parent = lay.parents["memory"]
                parent.mkdir(exist_ok=True)
                _write(parent.parent / "cgroup.subtree_control", "+memory +pids")
                _write(parent / "cgroup.subtree_control", "+memory +pids")
            for c in CONTROLLERS:
                d = lay.parents[c] / self.name
                d.mkdir(exist_ok=lay.version == 2 and c == "pids")
                self.dirs[c] = d
            limit = "memory.max" if lay.version == 2 else "memory.limit_in_bytes"
            _write(self.dirs["memory"] / limit, str(self.caps.memory_mb << 20))
            _write(self.dirs["pids"] / "pids.max", str(self.caps.tasks))
            for d in dict.fromkeys(self.dirs.values()):
                _write(d / "cgroup.procs", str(self.pid))
        except OSError as e:
            self.exit()
            self.status = f"uncapped: cannot make the lab's cgroup ({e})"
            return
        self.status = f"cgroup v{lay.version} {self.name}: {self.caps.describe()}"

    def peaks(self) -> dict[str, float]:
        """The most memory (MB) and tasks the lab has held so far, where the kernel says."""
        out: dict[str, float] = {}
        files = {"memory": ("memory.peak", "memory.max_usage_in_bytes"), "pids": ("pids.peak",)}
        for c, names in files.items():
            for name in names:
                with contextlib.suppress(OSError, KeyError, ValueError):
                    v = int((self.dirs[c] / name).read_text())
                    out["memory_peak_mb" if c == "memory" else "tasks_peak"] = (
                        round(v / (1 << 20), 1) if c == "memory" else float(v))
                    break
        return out

    def available_bytes(self) -> int | None:
        """Memory the lab may still add before its cap, or None when uncapped."""
        d = self.dirs.get("memory")
        if d is None:
            return None
        name = "memory.current" if (d / "memory.current").exists() else "memory.usage_in_bytes"
        try:
            return max(0, (self.caps.memory_mb << 20) - int((d / name).read_text()))
        except (OSError, ValueError):
            return None

    def exit(self) -> None:
        """Move the process back, then remove the lab's cgroups (v2: their parent too when
        no other lab uses it).  Raises OSError when a cgroup still holds a process."""
        if self.layout is None or not self.dirs:
            return
        for c in dict.fromkeys(self.layout.origins):
            origin = self.layout.origins[c]
            if c == "memory" or self.layout.version == 1:
                with contextlib.suppress(OSError):
                    _write(origin / "cgroup.procs", str(self.pid))
        for d in dict.fromkeys(reversed(self.dirs.values())):
            remove(d)
        self.dirs = {}
        if self.layout.version == 2:
            with contextlib.suppress(OSError):
                self.layout.parents["memory"].rmdir()


def remove(d: Path) -> str:
    """Remove the lab cgroup D (after a crash, from the ledger): ``wirelab-*`` only."""
    if not d.name.startswith("wirelab-"):
        return f"cgroup {d}: not a lab's, left alone"
    if not d.exists():
        return f"cgroup {d}: already gone"
    d.rmdir()           # EBUSY while a process is still in it
    return f"cgroup {d}: removed"
