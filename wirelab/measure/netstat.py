"""Kernel counters of one lab namespace, read in-process (no ``nstat``
process start: inside UML that costs ~30x native).

``/proc/thread-self/net/netstat`` shows the namespace of the *calling
thread*, so it is read inside :func:`wirelab.lab.netns.entered`.  The file is
pairs of lines, a header and its values, per group::

    TcpExt: SyncookiesSent ... DelayedACKs ...
    TcpExt: 0 ... 17 ...
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from wirelab.lab import netns

T = TypeVar("T")

NETSTAT = "/proc/thread-self/net/netstat"


class CounterError(LookupError):
    """A counter or group is missing from the text, or the text is malformed."""


def parse_netstat(text: str) -> dict[str, dict[str, int]]:
    """{group: {counter: value}} from netstat/snmp-style text."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) % 2:
        raise CounterError("netstat text has an odd number of lines (header without values)")
    out: dict[str, dict[str, int]] = {}
    for header, values in zip(lines[0::2], lines[1::2], strict=True):
        hname, *names = header.split()
        vname, *nums = values.split()
        if hname != vname or len(names) != len(nums):
            raise CounterError(f"netstat header {hname!r} does not match its values line {vname!r}")
        out[hname.rstrip(":")] = {n: int(v) for n, v in zip(names, nums, strict=True)}
    return out


def counter(text: str, group: str, name: str) -> int:
    """One counter, e.g. ``counter(text, "TcpExt", "DelayedACKs")``."""
    groups = parse_netstat(text)
    try:
        return groups[group][name]
    except KeyError:
        raise CounterError(f"no counter {group}:{name} in netstat") from None


def read_counter(ns: str, group: str, name: str) -> int:
    """GROUP:NAME as seen inside the named namespace NS, now."""
    with netns.entered(ns):
        with open(NETSTAT) as f:
            text = f.read()
    return counter(text, group, name)


def read_counters(ns: str, group: str, names) -> dict[str, int]:
    """Several GROUP counters of namespace NS at one moment."""
    with netns.entered(ns):
        with open(NETSTAT) as f:
            text = f.read()
    return {n: counter(text, group, n) for n in names}


def counted(ns: str, group: str, names: Iterable[str], action: Callable[[], T]) -> tuple[T, dict[str, int]]:
    """Call ACTION() between two reads of GROUP's counters NAMES in namespace NS: (what it
    returned, {name: how much it grew})."""
    names = tuple(names)
    before = read_counters(ns, group, names)
    got = action()
    after = read_counters(ns, group, names)
    return got, {n: after[n] - before[n] for n in names}
