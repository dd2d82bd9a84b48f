"""Packet filter rules inside a lab node (iptables), and faults made of them: drop one
chosen packet, drop everything from a peer.

Rules live in the node's own namespace, so they vanish with it and never touch the
host's.  Which iptables: Debian's default is iptables-nft, but the UML 6.1 kernel
refuses to create nf_tables tables ("TABLE_ADD failed (Operation not supported)") while
its x_tables work, so the backend is probed once per kernel, by adding a rule in a
throw-away namespace, and the legacy one used where nft cannot.
"""
from __future__ import annotations

import shutil
import subprocess
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


def drop_nth(node, n: int, *match: str, chain: str = "FORWARD") -> None:
    """Drop exactly one packet in NODE: the N-th (0 = the first) that MATCH selects, as a
    one-shot fault (the statistic match's counter counts matching packets only)."""
    if n < 0:
        raise ValueError(f"n = {n}: the first packet is 0")
    rule(node, chain, *match, "-m", "statistic", "--mode", "nth", "--every", "1000000000",
         "--packet", str(n), "-j", "DROP")


def counters(node, chain: str = "FORWARD", table: str = "filter") -> list[tuple[int, str]]:
    """(packets, rule) of every rule in CHAIN of NODE, as iptables counts them."""
    out = node.run([iptables(), "-w", "-t", table, "-L", chain, "-v", "-x", "-n"]).stdout
    rows = []
    for line in out.splitlines()[2:]:
        fields = line.split()
        if fields and fields[0].isdigit():
            rows.append((int(fields[0]), " ".join(fields[2:])))
    return rows

