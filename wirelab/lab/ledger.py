"""The crash ledger and the undo stack: one cleanup path for everything a run
creates.

Every setup step pushes its own undo onto an :class:`UndoStack`; the stack
unwinds in reverse on success, error or Ctrl-C.  While a run is alive its
:class:`Ledger` (``/run/wirelab/runs/TAG.json``) lists what exists right now
(namespaces, processes, UML guests) and the run holds an exclusive ``flock``
on ``TAG.lock``.  If the run dies without unwinding (SIGKILL, power loss),
``wirelab clean`` finds ledgers whose lock is free and finishes the job from
what they list: it never kills programs by name and never deletes anything
the ledger does not name.  (Interfaces, qdiscs, routes and iptables rules all
live inside lab namespaces, so they go with the namespace.)
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from wirelab import settings
from wirelab.lab import netns

log = logging.getLogger(__name__)


def proc_starttime(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: start time in clock ticks (tells a PID
    from a later process that reused it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[19])


def new_tag() -> str:
    """A short run tag, prefix of every name a run creates (``wl3fa2``)."""
    return "wl" + secrets.token_hex(2)


class Ledger:
    """What a live run has created, kept on disk until it is undone."""

    def __init__(self, tag: str, state_dir: Path | None = None):
        self.tag = tag
        self.dir = (state_dir or settings.current().state_dir) / "runs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"{tag}.json"
        self._lock_fd = os.open(self.dir / f"{tag}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise FileExistsError(f"run tag {tag} is in use by a live run") from None
        if self.path.exists():
            os.close(self._lock_fd)
            raise FileExistsError(f"a ledger for {tag} already exists: run `wirelab clean` first")
        self.items: list[dict] = []
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"tag": self.tag, "pid": os.getpid(),
                                   "started": time.time(), "items": self.items}))
        os.replace(tmp, self.path)

    def add(self, item: dict) -> dict:
        self.items.append(item)
        self._write()
        return item

    def remove(self, item: dict) -> None:
        with contextlib.suppress(ValueError):
            self.items.remove(item)
            self._write()

    def close(self) -> None:
        """All undone: drop the ledger and release the lock."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{self.tag}.lock").unlink()
        os.close(self._lock_fd)


class UndoStack:
    """Undo actions, run in reverse order exactly once.

    ``push(what, fn, item)`` records FN to undo step WHAT, and ITEM (if any)
    in the ledger until FN has run.  ``unwind()`` runs every undo even if some
    fail, with SIGINT/SIGTERM blocked so a second Ctrl-C cannot cut the
    cleanup short, and returns the failures.
    """

    def __init__(self, ledger: Ledger | None = None):
        self.ledger = ledger
        self._stack: list[tuple[str, Callable[[], None], dict | None]] = []

    def push(self, what: str, fn: Callable[[], None], item: dict | None = None) -> None:
        if item is not None and self.ledger is not None:
            self.ledger.add(item)
        self._stack.append((what, fn, item))

    def __len__(self) -> int:
        return len(self._stack)

    def unwind(self) -> list[str]:
        failures = []
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            while self._stack:
                what, fn, item = self._stack.pop()
                try:
                    fn()
                except Exception as e:  # keep unwinding; report every failure
                    log.warning("cleanup step %r failed: %s", what, e)
                    failures.append(f"{what}: {e}")
                    continue  # its ledger item stays, for `wirelab clean` to retry
                if item is not None and self.ledger is not None:
                    self.ledger.remove(item)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return failures


# --- finishing a dead run's cleanup -------------------------------------------

def stop_process(pid: int, starttime: int | None, grace_s: float = 2.0) -> bool:
    """TERM, then KILL after GRACE_S, a process we started (checked by its
    start time so a reused PID is never touched).  True if it was ours."""
    if starttime is not None and proc_starttime(pid) != starttime:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc_starttime(pid) != starttime:
            return True
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    return True


def session_members(sid: int, since: int | None) -> list[int]:
    """PIDs of processes in session SID started no earlier than SINCE (clock ticks): a
    UML guest's whole process tree (it runs in a session of its own), found by session
    and start time, never by program name."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and (since is None or int(fields[19]) >= since):
            out.append(int(entry))
    return out


def _end_uml(item: dict) -> str:
    """Kill every process of a dead run's UML guest and remove its control directory."""
    sid = item.get("sid", item["pid"])
    members = session_members(sid, item.get("starttime"))
    for pid in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while session_members(sid, item.get("starttime")) and time.monotonic() < deadline:
        for pid in members:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    left = session_members(sid, item.get("starttime"))
    what = f"{len(members)} processes killed" if members else "processes already gone"
    ctl = item.get("ctl")
    if ctl and Path(ctl).name.startswith("wirelab-uml-") and Path(ctl).is_dir():
        shutil.rmtree(ctl, ignore_errors=True)
        what += f", {ctl} removed"
    if left or (ctl and Path(ctl).exists()):
        raise OSError(f"UML guest {item['pid']}: {len(left)} processes or its control "
                      "directory survived")
    return f"UML guest {item['pid']}: {what}"


def undo_item(item: dict) -> str:
    """Undo one ledger item of a dead run; return what was done."""
    kind = item.get("kind")
    if kind == "process":
        done = stop_process(item["pid"], item.get("starttime"))
        return f"process {item['pid']} ({item.get('argv0', '?')}): {'stopped' if done else 'already gone'}"
    if kind == "uml":
        return _end_uml(item)
    if kind == "dir":
        path = Path(item["path"])
        if not path.name.startswith("wirelab-"):
            return f"directory {path}: not a lab's, left alone"
        if not path.exists():
            return f"directory {path}: already gone"
        shutil.rmtree(path)
        return f"directory {path}: removed"
    if kind == "cgroup":
        from wirelab.lab.cgroup import remove
        return "; ".join(remove(Path(p)) for p in item["paths"])
    if kind == "netns":
        name = item["name"]
        if not netns.exists(name):
            return f"namespace {name}: already gone"
        if netns.inode(name) != item.get("inode"):
            return f"namespace {name}: not ours (different inode), left alone"
        for pid in netns.pids_in(item["inode"]):
            stop_process(pid, proc_starttime(pid))
        netns.remove(name)
        return f"namespace {name}: removed"
    return f"unknown ledger item {item!r}: left alone"


class CleanReport(list):
    """What ``clean`` did, a line per item; ``left`` counts what it could not undo."""
    left = 0


def clean(state_dir: Path | None = None) -> CleanReport:
    """Finish the cleanup of every dead run; skip live ones.  Returns a report; an item
    that cannot be undone stays in its ledger (and counts in ``report.left``)."""
    runs = (state_dir or settings.current().state_dir) / "runs"
    report = CleanReport()
    if not runs.is_dir():
        return report
    for path in sorted(runs.glob("*.json")):
        tag = path.stem
        lock_path = runs / f"{tag}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                report.append(f"{tag}: run is alive, left alone")
                continue
            try:
                items = json.loads(path.read_text()).get("items", [])
            except (OSError, ValueError) as e:
                report.append(f"{tag}: unreadable ledger ({e}), removed")
                items = []
            kept = []
            for item in reversed(items):
                try:
                    report.append(f"{tag}: {undo_item(item)}")
                except OSError as e:
                    report.append(f"{tag}: FAILED: {e}")
                    kept.append(item)
            if kept:
                report.left += len(kept)
                path.write_text(json.dumps({"tag": tag, "items": kept[::-1]}))
            else:
                path.unlink()
                lock_path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return report
