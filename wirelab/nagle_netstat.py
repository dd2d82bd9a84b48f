"""Kernel counters of one lab namespace, read in-process (no ``nstat``
process start: inside UML that costs ~30x native).

``/proc/thread-self/net/netstat`` shows the namespace of the *calling
thread*, so it is read inside :func:`wirelab.netns.entered`.  The file is
pairs of lines, a header and its values, per group::

    TcpExt: SyncookiesSent ... DelayedACKs ...
    TcpExt: 0 ... 17 ...

Also the jiffies counter (``/proc/timer_list``), so an experiment can
measure the tick length it runs under rather than take it on trust.
"""
from __future__ import annotations

from wirelab import netns

NETSTAT = "/proc/thread-self/net/netstat"
TIMER_LIST = "/proc/timer_list"


class CounterError(LookupError):
    """A counter or group is missing from the text, or the text is malformed."""


def parse_netstat(text: str) -> dict[str, dict[str, int]]:
    """{group: {counter: value}} from netstat/snmp-style text."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) % 2:
        raise CounterError("netstat text has an odd number of lines (header without values)")
    out: dict[str, dict[str, int]] = {}
    for header, values in zip(lines[0::2], lines[1::2]):
        hname, *names = header.split()
        vname, *nums = values.split()
        if hname != vname or len(names) != len(nums):
            raise CounterError(f"netstat header {hname!r} does not match its values line {vname!r}")
        out[hname.rstrip(":")] = {n: int(v) for n, v in zip(names, nums)}
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


def parse_jiffies(text: str) -> int:
    """The ``jiffies:`` value of /proc/timer_list text."""
    for line in text.splitlines():
        if line.startswith("jiffies:"):
            return int(line.split()[1])
    raise CounterError("no 'jiffies:' line in timer_list")


def read_jiffies() -> int:
    """The kernel's jiffies counter now (ticks since boot, offset)."""
    with open(TIMER_LIST) as f:
        for line in f:  # it follows CPU 0's timers: stop there, not at EOF
            if line.startswith("jiffies:"):
                return parse_jiffies(line)
    raise CounterError(f"no 'jiffies:' line in {TIMER_LIST}")
