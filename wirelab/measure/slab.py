"""The kernel's slab caches: /proc/slabinfo (root only) and SLUB's sysfs view of them.

/proc/slabinfo has one row per cache the allocator keeps: objects in use and the slot
size (``objsize``: the object with its padding and metadata, what it costs).  SLUB merges
caches of like size and flags into one: only the first name has a row, and the counts of
every cache merged into it add up there.  /sys/kernel/slab has an entry per name; a merged
name is a symlink to the shared cache (``:A-0000128``), whose ``aliases`` counts the other
names.  So a cache's row is the row whose sysfs entry resolves to the same directory.

:func:`caches` gives what a prediction reads about some caches (the lab records it in the
kernel facts); :func:`read` what a trial measures.
"""
from __future__ import annotations

import os
from pathlib import Path

SLABINFO, SYS_SLAB = Path("/proc/slabinfo"), Path("/sys/kernel/slab")


def parse(text: str) -> dict[str, tuple[int, int]]:
    """{cache: (objects in use, slot size in bytes)} from /proc/slabinfo text."""
    out = {}
    for line in text.splitlines()[2:]:
        f = line.split()
        if len(f) > 3:
            out[f[0]] = (int(f[1]), int(f[3]))
    return out


def read(path: Path = SLABINFO) -> dict[str, tuple[int, int]]:
    """/proc/slabinfo now: {cache: (objects in use, slot size in bytes)}.  Root only."""
    return parse(path.read_text())


def rows_of(names, rows, sys_slab: Path = SYS_SLAB) -> dict[str, str]:
    """{cache: the row of ROWS (parsed /proc/slabinfo) that holds it}: its own, or the one
    SLUB merged it into.  A name with neither is left out."""
    out, real = {}, dict[str, str]()
    for c in names:
        if c in rows:
            out[c] = c
        elif (sys_slab / c).exists():
            if not real:
                for r in rows:
                    real.setdefault(os.path.realpath(sys_slab / r), r)
            if (row := real.get(os.path.realpath(sys_slab / c))) is not None:
                out[c] = row
    return out


def caches(names, slabinfo: Path = SLABINFO, sys_slab: Path = SYS_SLAB,
           cpus: int | None = None) -> dict[str, dict]:
    """{cache: {"size_bytes", "own", "row", "slack_objects"}} for NAMES the kernel has:
    its slot size; whether it is its own cache (no other name merged with it, so its row
    counts its objects only); the /proc/slabinfo row it is counted under; and, for its own
    cache, the free objects SLUB may count as in use: per CPU its slab and its partial
    slabs (None where merged or unreadable).  {} when /proc/slabinfo is unreadable."""
    try:
        rows = read(slabinfo)
    except (OSError, ValueError):
        return {}
    cpus = cpus or os.cpu_count() or 1
    out = {}
    for c, row in rows_of(names, rows, sys_slab).items():
        d = sys_slab / c
        own = not d.is_symlink() and _num(d, "aliases") == 0
        slack = None
        if own and (per_slab := _num(d, "objs_per_slab")) and (cp := _num(d, "cpu_partial")) is not None:
            # slub_set_cpu_partial(): ceil(2 cp / per_slab) slabs
            slack = cpus * per_slab * (1 - (-2 * cp // per_slab))
        out[c] = {"size_bytes": rows[row][1], "own": own, "row": row, "slack_objects": slack}
    return out


def _num(d: Path, name: str) -> int | None:
    """The number sysfs file D/NAME starts with, None if unreadable."""
    try:
        return int((d / name).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
