"""A lab's nodes and their interfaces: a host, router or the switch namespace is a
named network namespace with a netlink socket into it; processes, sockets and sysctls
are made inside it."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from wirelab.errors import GlobalSysctlError, LabError
from wirelab.lab import mounts, netns
from wirelab.lab.ledger import UndoStack, proc_starttime
from wirelab.lab.mounts import Binds
from wirelab.lab.shaping import Shaping
from wirelab.lab.sysctl import read_root, sysctl_path, write_root
from wirelab.lab.wait import poll


class LabOwner(Protocol):
    """What a node needs of its lab: the undo stack its steps register on."""
    undo: UndoStack


@dataclass
class Intf:
    name: str
    node: Node
    index: int
    ip: str | None = None
    shaping: Shaping = field(default_factory=Shaping)
    peer: Intf | None = None
    switch: str | None = None   # the switch this port belongs to, if any


class Node:
    """A host, router or the switch namespace of a lab."""

    def __init__(self, lab: LabOwner, name: str, ns: str, role: str):
        self.lab, self.name, self.ns, self.role = lab, name, ns, role
        self.intfs: dict[str, Intf] = {}
        self._iprs: dict[threading.Thread, Any] = {}
        _ = self.ipr                                    # this thread's, made now
        self.sysctls: dict[str, str] = {}

    @property
    def ipr(self) -> Any:
        """A netlink socket in this node's namespace, one per thread: pyroute2's IPRoute
        runs an event loop per thread and, used from another thread, would open its socket
        there, in that thread's namespace (a fault timeline changes links from its own)."""
        # Keyed by the thread itself, never its ident: a new thread may get a finished one's
        # ident, and that thread's socket, used from the new thread, would act on the new
        # thread's namespace (the host's) instead of this node's.
        me = threading.current_thread()
        ipr = self._iprs.get(me)
        if ipr is None:
            for gone in [t for t in list(self._iprs) if not t.is_alive()]:
                with contextlib.suppress(Exception):
                    self._iprs.pop(gone).close()
            with netns.entered(self.ns):
                from pyroute2.iproute.linux import IPRoute  # 0.6 s in UML, vs 1.6 s for all of pyroute2
                ipr = self._iprs[me] = IPRoute()
        return ipr

    def close_netlink(self) -> None:
        """Close every thread's netlink socket of this node."""
        for ipr in list(self._iprs.values()):
            ipr.close()
        self._iprs.clear()

    def __repr__(self) -> str:
        return f"<{self.role} {self.name} in {self.ns}>"

    # -- addressing -------------------------------------------------------
    def ip(self) -> str:
        """The first interface address of this node (without prefix)."""
        for intf in self.intfs.values():
            if intf.ip:
                return intf.ip.split("/")[0]
        raise LabError(f"{self.name} has no address")

    def intf(self, name: str | None = None) -> Intf:
        if name is None:
            return next(iter(self.intfs.values()))
        return self.intfs[name]

    def mac(self, name: str | None = None) -> str:
        """The hardware address of interface NAME (default: the first)."""
        return self.ipr.get_links(self.intf(name).index)[0].get_attr("IFLA_ADDRESS")

    def know(self, peer: Node) -> None:
        """A permanent neighbour entry for PEER's address on this node's first interface:
        no ARP between the two (the lab's namespace goes with the lab)."""
        self.ipr.neigh("replace", dst=peer.ip(), lladdr=peer.mac(), ifindex=self.intf().index,
                       state=0x80)    # NUD_PERMANENT

    # -- sysctls ----------------------------------------------------------
    def sysctl(self, name: str, value=None) -> str:
        """Read, or set and read back, sysctl NAME in this node's namespace.

        Only per-namespace (``net.*``) sysctls are allowed: a global one would
        change the host.  The root namespace's value is compared before and
        after, so a ``net.*`` knob that turns out to be global is refused and
        restored rather than silently changed.
        """
        if not name.startswith("net.") or ".." in name or "/" in name:
            raise GlobalSysctlError(
                f"sysctl {name!r} is global to the kernel, not per network namespace; "
                "a lab may set only net.* sysctls")
        path = sysctl_path(name)
        with netns.entered(self.ns):
            if not path.exists():
                raise GlobalSysctlError(
                    f"sysctl {name!r} does not exist in a lab namespace (it is global, "
                    "or this kernel lacks it)")
            if value is None:
                return path.read_text().strip()
        host_before = read_root(name)
        text = " ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
        with netns.entered(self.ns):
            try:
                path.write_text(text)
            except OSError as e:
                raise LabError(f"cannot set {name}={text!r} in {self.name}: {e}") from e
            got = path.read_text().strip()
        if host_before is not None and read_root(name) != host_before:
            write_root(name, host_before)
            raise GlobalSysctlError(f"sysctl {name!r} is global (setting it in a lab "
                                    "namespace changed the host); restored and refused")
        self.sysctls[name] = got
        return got

    # -- processes and sockets ---------------------------------------------
    def popen(self, argv: list[str], *, binds: Binds | None = None,
              **kwargs) -> subprocess.Popen:
        """Start ARGV in this node (with BINDS, lab files bound over the system's:
        see wirelab.lab.mounts); it is stopped (TERM, KILL, reap) when the lab
        closes, and listed in the ledger while it runs."""
        if isinstance(argv, str):
            raise TypeError("argv must be a list of words, not a shell string")
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        try:
            proc = subprocess.Popen(argv, preexec_fn=mounts.preexec(self.ns, binds),
                                    start_new_session=True, **kwargs)
        except FileNotFoundError as e:
            raise LabError(f"cannot start {argv[0]} in {self.name}: not installed") from e
        item = {"kind": "process", "pid": proc.pid, "starttime": proc_starttime(proc.pid),
                "argv0": argv[0], "node": self.name}
        self.lab.undo.push(f"stop {argv[0]} in {self.name}",
                           lambda: _stop(proc), item)
        return proc

    def run(self, argv: list[str], timeout_s: float = 60, check: bool = True, *,
            binds: Binds | None = None, **kwargs) -> subprocess.CompletedProcess:
        """Run ARGV to completion in this node (with BINDS bound over the system's
        files) and capture its output."""
        if isinstance(argv, str):
            raise TypeError("argv must be a list of words, not a shell string")
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        try:
            res = subprocess.run(argv, preexec_fn=mounts.preexec(self.ns, binds),
                                 capture_output=True, text=True, timeout=timeout_s, **kwargs)
        except subprocess.TimeoutExpired as e:
            raise LabError(f"{' '.join(argv)} in {self.name} did not finish in {timeout_s} s") from e
        except FileNotFoundError as e:
            raise LabError(f"cannot run {argv[0]} in {self.name}: not installed") from e
        except subprocess.SubprocessError as e:
            raise LabError(f"cannot start {argv[0]} in {self.name}: {e}") from e
        if check and res.returncode != 0:
            raise LabError(f"{' '.join(argv)} in {self.name} exited {res.returncode}: "
                           f"{res.stderr.strip()[-500:]}")
        return res

    def socket(self, family=socket.AF_INET, type=socket.SOCK_STREAM, proto=0) -> socket.socket:
        """A socket that lives in this node's namespace (made in-process)."""
        with netns.entered(self.ns):
            return socket.socket(family, type, proto)

    def listening(self, port: int, proto: str = "tcp") -> bool:
        """Whether something listens on PORT in this node (read from
        /proc/thread-self/net/tcp, no process start)."""
        with netns.entered(self.ns):
            for table in (f"/proc/thread-self/net/{proto}", f"/proc/thread-self/net/{proto}6"):
                try:
                    lines = Path(table).read_text().splitlines()[1:]
                except OSError:
                    continue
                for line in lines:
                    f = line.split()
                    if int(f[1].rsplit(":", 1)[1], 16) == port and (proto != "tcp" or f[3] == "0A"):
                        return True
        return False

    def wait_listening(self, port: int, timeout_s: float = 20.0, proto: str = "tcp") -> None:
        """Poll until PORT listens in this node, or raise TimeoutError."""
        poll(lambda: self.listening(port, proto), timeout_s,
             f"{proto} port {port} to listen in {self.name}")

    # -- routes -------------------------------------------------------------
    def route_with_metrics(self, dst: str, via: str, metrics: dict) -> dict:
        """Replace this node's route to DST (via VIA) with one carrying METRICS (RTAX_*
        names as pyroute2 spells them, e.g. initcwnd) and read it back: {metric: value}
        as the kernel stored it.  The route is deleted with the lab."""
        self.ipr.route("replace", dst=dst, gateway=via, metrics=metrics)
        self.lab.undo.push(f"delete the route to {dst} in {self.name}",
                           lambda: self.ipr.route("del", dst=dst, gateway=via))
        prefix, plen = dst.split("/")
        for route in self.ipr.get_routes(dst=prefix, dst_len=int(plen)):
            got = route.get_attr("RTA_METRICS")
            if got is not None:
                return {name: got.get_attr(f"RTAX_{name.upper()}") for name in metrics}
        raise LabError(f"no route to {dst} with metrics in {self.name} after setting it")

    def egress(self, toward: str) -> Intf:
        """This node's interface whose link leads to node (or switch) TOWARD."""
        for intf in self.intfs.values():
            if intf.peer is not None and toward in (intf.peer.node.name, intf.peer.switch):
                return intf
        raise LabError(f"{self.name} has no link to {toward}")


def _stop(proc: subprocess.Popen, grace_s: float = 2.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
