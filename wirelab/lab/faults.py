"""Faults, and a timeline that plays them on a running lab.

A fault is a small value that knows how to break one thing and how to put it back:
``apply(lab)`` makes the change and returns its undo.  The vocabulary:

=====================  ================================================================
``Impair(a, b, ...)``  the link A-B's netem/tbf: delay, jitter, loss, burst loss
                       (Gilbert), corruption, duplication, reordering, rate, queue; both
                       directions, or only A's egress (``direction="a>b"``) or B's
``Down(a, b)``         the link A-B down at both ends; up again restores the static
                       routes the kernel dropped with it
``Partition(a, b)``    packets from the hosts of group A to those of group B dropped
                       (``one_way=False``: both ways), by iptables rules in A's nodes
``Signal(name, ...)``  a process the scenario registered: ``kill`` (SIGKILL: it stays
                       dead) or ``pause`` (SIGSTOP, SIGCONT on undo)
``Action(text, ...)``  anything else, as a pair of callables: an FRR policy edit, a DNS
                       server answering SERVFAIL or nothing
=====================  ================================================================

A :class:`Timeline` lists events: a fault at ``at_s`` seconds from the start, lasting
``for_s`` (or to the end).  :class:`Player` plays one in a thread beside the workload,
records when each change really happened (``marks``, for the plot), and on leaving its
block undoes whatever is still in force, in reverse order, also after an error or Ctrl-C.
The testbed's ``link`` commands (``wirelab up``) apply the same faults by hand.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wirelab.errors import BadInput, LabError
from wirelab.lab import firewall
from wirelab.lab.shaping import LIMITS, Shaping

Undo = Callable[[], None]
DIRECTIONS = ("both", "a>b", "b>a")


@dataclass(frozen=True)
class Impair:
    """Change the shaping of the link A-B: the given netem/tbf values replace those in
    force (the others stay), and undo puts back what those values were, leaving what
    other faults changed meanwhile in force.  Like ``tc qdisc replace``, a change drops
    what the old qdisc still held (packets netem was delaying are lost at that moment)."""
    a: str
    b: str
    changes: dict = field(default_factory=dict)
    direction: str = "both"

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise BadInput(f"direction {self.direction!r}: allowed {', '.join(DIRECTIONS)}")
        unknown = set(self.changes) - set(LIMITS)
        if unknown or not self.changes:
            raise BadInput(f"link {self.a}-{self.b}: {', '.join(sorted(unknown)) or 'no change'}: "
                           f"allowed {', '.join(LIMITS)}")
        Shaping.from_params(self.changes, f"link {self.a}-{self.b}")

    def describe(self) -> str:
        arrow = {"both": "<->", "a>b": "->", "b>a": "<-"}[self.direction]
        return f"{self.a}{arrow}{self.b} " + " ".join(f"{k}={v:g}" if isinstance(v, float | int)
                                                      else f"{k}={v}" for k, v in self.changes.items())

    def apply(self, lab) -> Undo:
        ends = lab.link_ends(self.a, self.b)
        ends = {"both": ends, "a>b": ends[:1], "b>a": ends[1:]}[self.direction]
        before = []
        for node, ifname in ends:
            old = node.intfs[ifname].shaping
            before.append((node, ifname, old))
            lab.shape(_name(lab, node), ifname, **{**old.as_dict(), **self.changes})

        def undo():
            for node, ifname, old in reversed(before):
                now, was = node.intfs[ifname].shaping.as_dict(), old.as_dict()
                lab.shape(_name(lab, node), ifname, **{**now, **{k: was[k] for k in self.changes}})
        return undo


@dataclass(frozen=True)
class Down:
    """The link A-B down at both ends."""
    a: str
    b: str

    def describe(self) -> str:
        return f"{self.a}-{self.b} down"

    def apply(self, lab) -> Undo:
        lab.set_link(self.a, self.b, False)

        def undo():
            lab.set_link(self.a, self.b, True)
        return undo


@dataclass(frozen=True)
class Partition:
    """Drop what the hosts of group A send to the addresses of group B (and back, unless
    ONE_WAY), with a DROP rule per pair in the sender's OUTPUT and FORWARD chains."""
    a: tuple[str, ...]
    b: tuple[str, ...]
    one_way: bool = True

    def describe(self) -> str:
        return f"partition {','.join(self.a)} {'->' if self.one_way else '<->'} {','.join(self.b)}"

    def apply(self, lab) -> Undo:
        pairs = [(s, d) for s in self.a for d in self.b]
        if not self.one_way:
            pairs += [(d, s) for s in self.a for d in self.b]
        added: list[tuple] = []

        def undo():
            for node, rule in reversed(added):
                firewall.delete(node, *rule)
        try:
            for src, dst in pairs:
                for addr in _addresses(lab[dst]):
                    for chain in ("OUTPUT", "FORWARD"):
                        rule = (chain, "-d", addr, "-j", "DROP")
                        firewall.rule(lab[src], *rule)
                        added.append((lab[src], rule))
        except BaseException:
            undo()
            raise
        return undo


@dataclass(frozen=True)
class Signal:
    """KIND "kill" (SIGKILL) or "pause" (SIGSTOP, then SIGCONT on undo) the process the
    scenario registered as NAME (a Popen or a pid)."""
    name: str
    kind: str = "kill"

    def __post_init__(self):
        if self.kind not in ("kill", "pause"):
            raise BadInput(f"signal {self.kind!r}: allowed kill, pause")

    def describe(self) -> str:
        return f"{self.kind} {self.name}"

    def apply(self, lab, registry: dict | None = None) -> Undo:
        target = (registry or {}).get(self.name)
        if target is None:
            raise LabError(f"no process registered as {self.name!r} for {self.describe()}")
        pid = target if isinstance(target, int) else target.pid
        os.kill(pid, signal.SIGKILL if self.kind == "kill" else signal.SIGSTOP)
        if self.kind == "kill":
            return lambda: None
        return lambda: os.kill(pid, signal.SIGCONT)


@dataclass(frozen=True)
class Action:
    """Any other change, as DO(lab) -> undo callable."""
    text: str
    do: Callable

    def describe(self) -> str:
        return self.text

    def apply(self, lab) -> Undo:
        return self.do(lab) or (lambda: None)


def periodic(text: str, rate_per_s: float, fn: Callable[[], object]) -> Action:
    """An Action that calls FN RATE_PER_S times a second, evenly spaced from when it is
    applied, in a thread, until it is undone (a generator bounded by its event's span)."""
    if not rate_per_s > 0:
        raise BadInput(f"{text}: rate {rate_per_s!r} a second: must be > 0")

    def do(lab) -> Undo:
        stop = threading.Event()

        def run() -> None:
            t0, n = time.monotonic(), 0
            while not stop.wait(max(0.0, t0 + n / rate_per_s - time.monotonic())):
                fn()
                n += 1
        t = threading.Thread(target=run, name=text, daemon=True)
        t.start()

        def undo() -> None:
            stop.set()
            t.join(5)
        return undo
    return Action(text, do)


Fault = Impair | Down | Partition | Signal | Action


def _name(lab, node) -> str:
    """A name LAB knows NODE by (the switch namespace holds every switch's ports)."""
    return next(n for n, x in lab.nodes.items() if x is node)


def _addresses(node) -> list[str]:
    return [i.ip.split("/")[0] for i in node.intfs.values() if i.ip]


@dataclass(frozen=True)
class Event:
    at_s: float
    fault: Fault
    for_s: float | None = None      # None: in force until the timeline ends

    def __post_init__(self):
        if not (self.at_s >= 0) or (self.for_s is not None and not self.for_s > 0):
            raise BadInput(f"{self.fault.describe()}: at_s {self.at_s!r} must be >= 0 and "
                           f"for_s {self.for_s!r} > 0 (or none: to the end)")


@dataclass(frozen=True)
class Step:
    t_s: float
    apply: bool             # False: the undo of EVENT
    event: int


@dataclass(frozen=True)
class Mark:
    """What the player did, and when (seconds from its start), for the plot."""
    t_s: float
    planned_s: float
    apply: bool
    text: str


class Timeline:
    def __init__(self, events: list[Event]):
        self.events = tuple(events)

    def steps(self) -> list[Step]:
        """Every change in time order; at one instant undos go first (a fault that ends
        as another begins), then events in the order given."""
        out = []
        for i, e in enumerate(self.events):
            out.append(Step(e.at_s, True, i))
            if e.for_s is not None:
                out.append(Step(e.at_s + e.for_s, False, i))
        return sorted(out, key=lambda s: (s.t_s, s.apply, s.event))

    @property
    def end_s(self) -> float:
        return max((s.t_s for s in self.steps()), default=0.0)

    def spans(self) -> list[tuple[float, float | None, str]]:
        """(start, end or None, text) of each event, as planned."""
        return [(e.at_s, None if e.for_s is None else e.at_s + e.for_s, e.fault.describe())
                for e in self.events]


class Player:
    """Plays TIMELINE on LAB in a thread from ``start()`` (or entering the block); undoes
    what is still in force when it ends.  CLOCK and a WAIT(seconds, stop_event) are
    injectable for tests."""

    def __init__(self, lab, timeline: Timeline, *, registry: dict | None = None,
                 clock: Callable[[], float] = time.monotonic, wait: Callable | None = None):
        self.lab, self.timeline, self.registry = lab, timeline, registry or {}
        self.clock = clock
        self.wait = wait or (lambda s, stop: stop.wait(s))
        self.marks: list[Mark] = []
        self.error: BaseException | None = None
        self.t0 = 0.0
        self._undo: dict[int, Undo] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Player:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.error is not None and exc[0] is None:
            raise LabError(f"a fault failed: {self.error}") from self.error

    def start(self) -> None:
        self.t0 = self.clock()
        self._thread = threading.Thread(target=self._play, name="faults", daemon=True)
        self._thread.start()

    def now(self) -> float:
        """Seconds since the player started."""
        return self.clock() - self.t0

    def _play(self) -> None:
        try:
            for step in self.timeline.steps():
                left = step.t_s - self.now()
                if left > 0 and self.wait(left, self._stop):
                    return
                if self._stop.is_set():
                    return
                try:
                    self._do(step)
                except Exception as e:
                    what = self.timeline.events[step.event].fault.describe()
                    raise LabError(f"{'applying' if step.apply else 'undoing'} {what} at "
                                   f"{step.t_s:g} s: {type(e).__name__}: {e}") from e
        except BaseException as e:   # noqa: BLE001 - reported on stop()
            self.error = e

    def _do(self, step: Step) -> None:
        event = self.timeline.events[step.event]
        with self._lock:
            if step.apply:
                fault = event.fault
                undo = fault.apply(self.lab, self.registry) if isinstance(fault, Signal) \
                    else fault.apply(self.lab)
                self._undo[step.event] = undo
            else:
                if step.event not in self._undo:
                    return
                self._undo.pop(step.event)()
            self.marks.append(Mark(round(self.now(), 4), step.t_s, step.apply, event.fault.describe()))

    def stop(self) -> None:
        """Stop playing and undo, newest first, every fault still in force."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for i in reversed(list(self._undo)):        # the newest first
                undo = self._undo.pop(i)
                undo()
                self.marks.append(Mark(round(self.now(), 4), self.timeline.events[i].at_s,
                                       False, self.timeline.events[i].fault.describe()))

    def in_force(self) -> list[str]:
        with self._lock:
            return [self.timeline.events[i].fault.describe() for i in self._undo]
