"""How much of a CPU the host kept from the UML guest, and what a trial does when it is too much.

In poll idle mode UML never sleeps on the host: it always wants one host CPU.  When the
host keeps it waiting (the hypervisor's other tenants: steal; other processes or a CPU
quota: time on a run queue), the guest's clock, which is the host's, runs on while nothing
in the lab does: netem releases late, every flight and every end's step stretches.  A trial
timed in such a window times the host, not the lab (a CI run here met one: 1 MiB flights
took 5-10 ms instead of 1.4, and a new connection's 7 rounds came 17 ms late; a rehearsal
met five minutes of 25-78 % steal).

Host side (``Meter``, driven by ``uml.run``'s wait loop): every 0.1 s the running totals
of the time UML's processes spent runnable but waiting for a CPU (schedstat's run_delay,
every task of the tree) and of the machine's steal go to the control directory's ``pace``
file, one fixed-width record rewritten in place.  Why not the CPU time UML used: a guest
that starts processes (a curl per trial) shows 15-35 % less of it with nothing waiting and
no steal (host processes come and go, wake-ups cross CPUs), which would read as a starved
guest.  Guest side: ``read()`` that record; ``disturbed(a, b)`` says why a trial between
two reads does not count; ``Quiet.wait()`` waits for the host to give the CPU back.  The
runner excludes such a trial (recorded, not judged) and runs another: the test is what the
host kept from the emulator, never the trial's result."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from wirelab import settings
from wirelab.errors import LabError

PERIOD_S = 0.1
FILE = "pace"
#: A trial counts when the emulator had at least this share of a CPU through it.
MIN_SHARE = 0.9
#: Windows shorter than this are not judged (two records, 0.1 s apart, bound them).
MIN_WINDOW_MS = 250.0
#: How long a run waits, in all, for the host to give the CPU back.
QUIET_WAIT_S = 180.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_GUEST_FILE = "/run/wirelab-ctl/" + FILE     # uml.GUEST_CTL (not imported: uml imports us)


@dataclass(frozen=True)
class Sample:
    wall: float        # time.time() of the host when taken, s
    waited_ms: float   # time UML's tasks spent runnable, waiting for a CPU, so far
    steal_ms: float    # the machine's steal so far, per CPU (all CPUs' over their number)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    except OSError:
        pass
    return out


def _process_waited_ms(pid: int) -> float:
    """Time PID's live tasks spent on a run queue, waiting for a CPU (schedstat, ns)."""
    ms = 0.0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            ms += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[1]) / 1e6
    except (OSError, IndexError, ValueError):
        pass
    return ms


def tree_waited_ms(root: int) -> float:
    """Run-queue time so far of ROOT and every descendant alive now, ms (an exited
    process's is lost: errs towards 'not disturbed')."""
    total, todo, seen = 0.0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _process_waited_ms(pid)
        todo += _children(pid)
    return total


def steal_ms() -> float:
    """The machine's steal so far, per CPU: the hypervisor's time on all of them over their
    number (UML polls on one; which one, and which was stolen, nobody here can tell)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    total = int(fields[8]) * 1000.0 / _CLK_TCK if len(fields) > 8 else 0.0
    return total / (os.cpu_count() or 1)


def record(s: Sample) -> bytes:
    return f"{s.wall:.3f} {s.waited_ms:.1f} {s.steal_ms:.1f}".ljust(63).encode() + b"\n"


def parse(raw: bytes) -> Sample | None:
    try:
        wall, waited, steal = (float(x) for x in raw.split())
    except ValueError:
        return None
    return Sample(wall, waited, steal)


class Meter:
    """The host half: ``tick()`` as often as you like; it samples every PERIOD_S."""

    def __init__(self, root_pid: int, path: str):
        self.root, self._next = root_pid, 0.0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + PERIOD_S
            os.pwrite(self._fd, record(Sample(time.time(), tree_waited_ms(self.root), steal_ms())), 0)

    def close(self) -> None:
        os.close(self._fd)


def read(path: str | None = None) -> Sample | None:
    """The host's last record; None outside a UML guest in poll idle mode (sleeping idle
    gives the CPU back on purpose) or before the first record."""
    if path is None:
        guest = settings.guest()
        if not guest or guest.get("idle") != "poll":
            return None
        path = _GUEST_FILE
    try:
        with open(path, "rb") as f:
            return parse(f.read(64))
    except OSError:
        return None


def share(a: Sample | None, b: Sample | None) -> float | None:
    """The share of one CPU the host gave UML from A to B: what is left of the window after
    UML's run-queue waits and the machine's steal per CPU; None when the window is too
    short to say."""
    if a is None or b is None:
        return None
    window = (b.wall - a.wall) * 1000.0
    if window < MIN_WINDOW_MS:
        return None
    kept = (b.waited_ms - a.waited_ms) + (b.steal_ms - a.steal_ms)
    return min(1.0, max(0.0, 1.0 - kept / window))


def disturbed(a: Sample | None, b: Sample | None) -> str | None:
    """Why a trial between A and B does not count, or None when it does."""
    got = share(a, b)
    if got is None or got >= MIN_SHARE:
        return None
    return (f"the host gave the emulator {got:.0%} of a CPU during the trial (a trial counts "
            f"with >= {MIN_SHARE:.0%})")


class Quiet:
    """Waits, a second at a time, until the emulator had MIN_SHARE of a CPU for a whole
    second; LabError once a run has waited QUIET_WAIT_S in all."""

    def __init__(self, say=print, limit_s: float = QUIET_WAIT_S, reader=read, sleep=time.sleep):
        self.waited_s, self.limit_s = 0.0, limit_s
        self._say, self._read, self._sleep = say, reader, sleep

    def wait(self) -> None:
        while True:
            a = self._read()
            self._sleep(1.0)
            got = share(a, self._read())
            if got is None or got >= MIN_SHARE:
                return
            self.waited_s += 1.0
            self._say(f"waiting for the host: the emulator had {got:.0%} of a CPU over the "
                      f"last second ({self.waited_s:.0f} s waited)")
            if self.waited_s >= self.limit_s:
                raise LabError(f"the host kept the emulator under {MIN_SHARE:.0%} of a CPU "
                               f"for {self.waited_s:.0f} s in this run: nothing measured "
                               "now would be the lab's")
