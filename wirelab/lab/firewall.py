"""Packet filter rules inside a lab node (iptables), and faults made of them: drop one
chosen packet (the N-th a match selects, or the first carrying a marker), drop
everything for a while.

Rules live in the node's own namespace, so they vanish with it and never touch the
host's.  Which iptables: Debian's default is iptables-nft, but the UML 6.1 kernel
refuses to create nf_tables tables ("TABLE_ADD failed (Operation not supported)") while
its x_tables work, so the backend is probed once per kernel, by adding a rule in a
throw-away namespace, and the legacy one used where nft cannot.
"""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from functools import lru_cache

from wirelab import settings
from wirelab.errors import EnvironmentProblem
from wirelab.lab import netns

BACKENDS = ("iptables-nft", "iptables-legacy")


@lru_cache(maxsize=1)
def iptables() -> str:
    """The iptables command that can add a rule on this kernel (probed once)."""
    tried = []
    # Inside the UML guest (6.1) only the legacy one can work: try it first.
    order = BACKENDS[::-1] if settings.inside_guest() else BACKENDS
    for cmd in order:
        if shutil.which(cmd) is None:
            tried.append(f"{cmd}: not installed")
            continue
        res = subprocess.run([cmd, "-w", "-A", "INPUT", "-j", "ACCEPT"], capture_output=True,
                             text=True, preexec_fn=netns.preexec_fresh, stdin=subprocess.DEVNULL)
        if res.returncode == 0:
            return cmd
        tried.append(f"{cmd}: {res.stderr.strip()[-200:]}")
    raise EnvironmentProblem("no iptables can add a rule on this kernel (" + "; ".join(tried)
                             + "): install Debian's iptables package")


def rule(node, *args: str, table: str = "filter") -> None:
    """Append a rule in NODE (e.g. rule(r1, "FORWARD", "-p", "tcp", "-j", "DROP"))."""
    node.run([iptables(), "-w", "-t", table, "-A", *args])


def delete(node, *args: str, table: str = "filter") -> None:
    """Delete the rule ARGS (as given to :func:`rule`) in NODE."""
    node.run([iptables(), "-w", "-t", table, "-D", *args])


def nth_drop(n: int, *match: str, chain: str = "FORWARD") -> tuple[str, ...]:
    """The rule (for :func:`rule`, :func:`delete`, :func:`armed`) that drops exactly one
    packet: the N-th (0 = the first) that MATCH selects, as a one-shot fault (the
    statistic match's counter counts matching packets only).  Two such rules drop the
    first packet and the first one that passes the other (each counts what reaches it)."""
    if n < 0:
        raise ValueError(f"n = {n}: the first packet is 0")
    return (chain, *match, "-m", "statistic", "--mode", "nth", "--every", "1000000000",
            "--packet", str(n), "-j", "DROP")


def drop_nth(node, n: int, *match: str, chain: str = "FORWARD") -> None:
    """Drop exactly one packet in NODE: the N-th (0 = the first) that MATCH selects."""
    rule(node, *nth_drop(n, *match, chain=chain))


def carrying(marker: bytes, sport: int) -> tuple[str, ...]:
    """A match for the TCP segments from port SPORT whose payload holds MARKER (xt_string:
    only a segment that holds all of it; turn segmentation offload off at the sender, or
    the filter sees one large packet)."""
    return ("-p", "tcp", "--sport", str(sport), "-m", "string", "--algo", "bm",
            "--string", marker.decode())


@contextlib.contextmanager
def armed(node, rules: Iterable[tuple[str, ...]]) -> Iterator[None]:
    """RULES appended in NODE for the with block and deleted after it, also when it
    fails (a one-shot rule armed afresh each time: its counter starts at zero)."""
    added: list[tuple[str, ...]] = []
    try:
        for r in rules:
            rule(node, *r)
            added.append(r)
        yield
    finally:
        for r in reversed(added):
            delete(node, *r)


@contextlib.contextmanager
def outage(node, at_s: float, for_s: float, *match: str, chain: str = "FORWARD") -> Iterator[None]:
    """Drop everything MATCH selects in NODE for FOR_S seconds, starting AT_S seconds into
    the with block (a thread adds the rule, then deletes it); the block's exit waits for
    the outage to end."""
    cut = (chain, *match, "-j", "DROP")

    def run() -> None:
        time.sleep(at_s)
        rule(node, *cut)
        time.sleep(for_s)
        delete(node, *cut)
    thread = threading.Thread(target=run, daemon=True, name="outage")
    thread.start()
    try:
        yield
    finally:
        thread.join(at_s + for_s + 10)


def counters(node, chain: str = "FORWARD", table: str = "filter") -> list[tuple[int, str]]:
    """(packets, rule) of every rule in CHAIN of NODE, as iptables counts them."""
    out = node.run([iptables(), "-w", "-t", table, "-L", chain, "-v", "-x", "-n"]).stdout
    rows = []
    for line in out.splitlines()[2:]:
        fields = line.split()
        if fields and fields[0].isdigit():
            rows.append((int(fields[0]), " ".join(fields[2:])))
    return rows

