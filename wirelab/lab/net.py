"""The lab: a Mininet topology built into named network namespaces.

``Lab(topo)`` reads a Mininet ``Topo`` (nodes, links and their parameters) and
builds it with in-process netlink: one named namespace per host and router
(``<tag>-h1``, so ``ip netns exec wl3fa2-h1 bash`` works while it runs), one
namespace holding every switch, veth pairs created directly between
namespaces, qdiscs, addresses and routes over pyroute2.  Nothing is created in
the host's root namespace and nothing there is changed: this is why the lab
does not call ``Mininet()``, whose constructor raises host limits and sysctls
(``fixLimits``) and puts switch ports in the root namespace, and which spends
a process start per host per command (2.4 s per host inside UML).

Every step registers its undo on one :class:`~wirelab.lab.ledger.UndoStack`,
unwound in reverse on exit, error or Ctrl-C; the run's ledger names what
exists so ``wirelab clean`` can finish after a SIGKILL.
"""
from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import shutil
import tempfile
import time
from pathlib import Path

from wirelab import settings
from wirelab.errors import BadInput, EnvironmentProblem, LabError
from wirelab.lab import netns
from wirelab.lab.cgroup import Caps, Confinement
from wirelab.lab.ledger import Ledger, UndoStack, new_tag, proc_starttime, stop_process
from wirelab.lab.node import Intf, Node
from wirelab.lab.shaping import Shaping
from wirelab.lab.shaping import apply as apply_shaping
from wirelab.lab.sysctl import BASELINE, QUIET_IPV6, read_global, sysctl_path, write_root

#: the SYSCTLS key of sysctls that are one value for the whole kernel
KERNEL_WIDE = "kernel"
log = logging.getLogger(__name__)


#: the cgroups this process is in for the labs it has up (an enclosing lab's holds a nested one)
_confined: list[Confinement] = []


def _unconfine(c: Confinement) -> None:
    _confined.remove(c)
    c.exit()


class Lab:
    """A running topology.  Use as a context manager::

        with Lab(RoutedPath(rtt_ms=50)) as lab:
            h1, h2 = lab["h1"], lab["h2"]
            ...

    SYSCTLS maps node names (or ``"*"`` for every host and router) to
    ``{sysctl: value}``; values are set in that namespace and read back into
    ``lab.effective_sysctls()``.  The key ``"kernel"`` holds sysctls that are one value
    for the whole kernel (``net.core.rmem_max``): a lab sets them only where it owns the
    kernel, inside the UML guest, and puts them back when it closes; elsewhere a value
    other than the kernel's is refused (a lab never changes the host).
    """

    def __init__(self, topo, *, sysctls: dict[str, dict] | None = None,
                 tag: str | None = None, use_ledger: bool = True, switch: str = "auto",
                 caps: Caps | None = None):
        if switch not in ("auto", "bridge", "ovs"):
            raise BadInput(f"switch={switch!r}: allowed auto, bridge, ovs")
        self.caps = caps or Caps()
        self.confinement: Confinement | None = None
        self.switch = switch
        self.switch_kind: str | None = None
        self.topo = topo
        self.tag = tag or new_tag()
        self.extra_sysctls = sysctls or {}
        self.kernel_sysctls: dict[str, str] = {}
        self.use_ledger = use_ledger
        self.nodes: dict[str, Node] = {}
        self.ledger: Ledger | None = None
        self.undo = UndoStack()
        self.build_s = 0.0
        self._workdir: Path | None = None

    # -- context manager ---------------------------------------------------
    def __enter__(self) -> Lab:
        if self.use_ledger:
            self.ledger = Ledger(self.tag)
            self.undo.ledger = self.ledger
        try:
            t0 = time.perf_counter()
            self._build()
            self.build_s = time.perf_counter() - t0
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> list[str]:
        failures = self.undo.unwind()
        if self.ledger is not None:
            if failures:
                log.warning("lab %s: %d cleanup steps failed; the ledger is kept for "
                            "`wirelab clean`", self.tag, len(failures))
            else:
                self.ledger.close()
            self.ledger = None
        return failures

    def __getitem__(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise KeyError(f"no node {name!r} in this lab; nodes: {', '.join(self.nodes)}") from None

    def hosts(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.role != "switch"]

    @property
    def workdir(self) -> Path:
        """A private scratch directory for this lab (configs, keys, sockets),
        removed with the lab."""
        if self._workdir is None:
            d = Path(tempfile.mkdtemp(prefix=f"wirelab-{self.tag}-"))
            self.undo.push(f"remove {d}", lambda: shutil.rmtree(d, ignore_errors=True),
                           {"kind": "dir", "path": str(d)})
            self._workdir = d
        return self._workdir

    # -- building ------------------------------------------------------------
    def _new_ns(self, name: str) -> str:
        ns = f"{self.tag}-{name}"
        if len(ns) > 64:
            raise BadInput(f"node name {name!r} is too long")
        netns.create(ns)
        item = {"kind": "netns", "name": ns, "inode": netns.inode(ns)}

        def _remove(ns=ns, inode=item["inode"]):
            for pid in netns.pids_in(inode):  # anything left running in it
                stop_process(pid, proc_starttime(pid))
            netns.remove(ns)
        self.undo.push(f"remove namespace {ns}", _remove, item)
        return ns

    def _add_node(self, name: str, role: str) -> Node:
        ns = self._new_ns(name)
        node = Node(self, name, ns, role)
        self.undo.push(f"close netlink socket of {name}", node.close_netlink)
        lo = node.ipr.link_lookup(ifname="lo")[0]
        node.ipr.link("set", index=lo, state="up")
        self.nodes[name] = node
        return node

    def _kernel_sysctls(self) -> None:
        for name, value in self.extra_sysctls.get(KERNEL_WIDE, {}).items():
            old = read_global(name)
            if old.split() == str(value).split():
                continue
            if not settings.inside_guest():
                raise EnvironmentProblem(
                    f"{name} is one value for the whole kernel ({old} here, {value} asked): only "
                    "a lab inside User-Mode Linux may change it; run with --kernel uml")
            write_root(name, str(value))
            self.undo.push(f"put {name} back to {old}", functools.partial(write_root, name, old))
            self.kernel_sysctls[name] = read_global(name)

    def _confine(self) -> None:
        """Move this process into the lab's own cgroup (memory and task caps), unless an
        enclosing lab of this process already holds it in one."""
        if _confined:
            self.confinement = _confined[-1]
            return
        c = Confinement(self.tag, self.caps)
        c.enter()
        if c.dirs:
            _confined.append(c)
            self.undo.push(f"leave and remove {c.name}", functools.partial(_unconfine, c),
                           {"kind": "cgroup", "paths": [str(d) for d in dict.fromkeys(c.dirs.values())]})
        self.confinement = c

    def _build(self) -> None:
        self._confine()
        self._kernel_sysctls()
        topo = self.topo
        switches = [n for n in topo.nodes() if topo.isSwitch(n)]
        sw_node = self._add_node("sw", "switch") if switches else None
        if sw_node is not None:
            # The bridges' own interfaces would send IPv6 router solicitations and MLD
            # into the lab (and, under a controller, to it as packet-ins).
            with netns.entered(sw_node.ns):
                quiet = {k: v for k, v in QUIET_IPV6.items() if sysctl_path(k).exists()}
            for key, value in quiet.items():
                sw_node.sysctl(key, value)
        self.switch_kind = self._switch_kind() if switches else None
        for name in topo.nodes():
            if topo.isSwitch(name):
                assert sw_node is not None
                self.nodes[name] = sw_node
                if self.switch_kind == "ovs":
                    continue  # bridges are made in one ovs-vsctl call once ports exist
                sw_node.ipr.link("add", ifname=name, kind="bridge")
                idx = sw_node.ipr.link_lookup(ifname=name)[0]
                # Forward at once: no STP listening delay, no MAC ageing games.
                sw_node.ipr.link("set", index=idx, state="up")
                self.nodes[name] = sw_node
                continue
            info = topo.nodeInfo(name)
            node = self._add_node(name, "router" if info.get("router") else "host")
            # Linux's defaults, not the host's tuning; no IPv6 chatter.  (A sysctl
            # this kernel lacks is left out: no IPv6 loaded, an older release.)
            with netns.entered(node.ns):
                wanted = {k: v for k, v in {**BASELINE, **QUIET_IPV6}.items()
                          if sysctl_path(k).exists()}
            if info.get("router"):
                wanted["net.ipv4.ip_forward"] = "1"
            wanted.update(self.extra_sysctls.get("*", {}))
            wanted.update(self.extra_sysctls.get(name, {}))
            for key, value in wanted.items():
                node.sysctl(key, value)
        for n1, n2, info in topo.links(sort=True, withInfo=True):
            self._add_link(n1, n2, info)
        if self.switch_kind == "ovs":
            from wirelab.lab.ovs import start_switches
            start_switches(self, sw_node, switches)
        self._auto_address()
        for name in topo.nodes():
            if not topo.isSwitch(name):
                self._add_routes(self.nodes[name], topo.nodeInfo(name).get("routes", []))

    def _switch_kind(self) -> str:
        """Open vSwitch with the kernel datapath where this kernel has it (UML,
        a full VM); a Linux bridge otherwise.  Never OVS's userspace datapath:
        it needs tx offload off on every host and reaches ~1 Gbit/s with heavy
        retransmits, which would sit in a timing path."""
        if self.switch == "bridge":
            return "bridge"
        from wirelab.lab.ovs import kernel_datapath, usable_in_auto
        ok, why = kernel_datapath()
        if self.switch == "ovs":
            if not ok:
                raise LabError(f"switch=ovs: {why}")
            return "ovs"
        return "ovs" if ok and usable_in_auto()[0] else "bridge"

    def _owner(self, name: str) -> Node:
        return self.nodes[name]

    def _add_link(self, n1: str, n2: str, info: dict) -> None:
        a, b = self._owner(n1), self._owner(n2)
        if1, if2 = f"{n1}-eth{info['port1']}", f"{n2}-eth{info['port2']}"
        common = {k: v for k, v in info.items() if k not in ("params1", "params2", "node1",
                                                             "node2", "port1", "port2")}
        p1 = {**common, **info.get("params1", {})}
        p2 = {**common, **info.get("params2", {})}
        s1 = Shaping.from_params(p1, f"link {n1}-{n2} at {n1}")
        s2 = Shaping.from_params(p2, f"link {n1}-{n2} at {n2}")
        with open(netns.ns_path(b.ns)) as nsf:
            a.ipr.link("add", ifname=if1, kind="veth",
                       peer={"ifname": if2, "net_ns_fd": nsf.fileno()})
        intfs = []
        for node, ifname, params, shaping, topo_name in ((a, if1, p1, s1, n1), (b, if2, p2, s2, n2)):
            idx = node.ipr.link_lookup(ifname=ifname)[0]
            intf = Intf(ifname, node, idx, params.get("ip"), shaping)
            if self.topo.isSwitch(topo_name):
                intf.switch = topo_name
                if self.switch_kind == "bridge":
                    bridge = node.ipr.link_lookup(ifname=topo_name)[0]
                    node.ipr.link("set", index=idx, master=bridge)
            elif intf.ip:
                iface = ipaddress.ip_interface(intf.ip)
                node.ipr.addr("add", index=idx, address=str(iface.ip),
                              prefixlen=iface.network.prefixlen)
            node.ipr.link("set", index=idx, state="up")
            if shaping.active:
                apply_shaping(node.ipr, idx, shaping)
            node.intfs[ifname] = intf
            intfs.append(intf)
        intfs[0].peer, intfs[1].peer = intfs[1], intfs[0]

    def _auto_address(self) -> None:
        """Mininet's rule for hosts the topology left unaddressed: the host's
        ``ip`` option, else the next address of 10.0.0.0/8 in host order,
        on its first interface."""
        base = ipaddress.ip_network("10.0.0.0/8")
        for i, name in enumerate(self.topo.hosts(sort=True), start=1):
            node = self.nodes[name]
            if not node.intfs or any(intf.ip for intf in node.intfs.values()):
                continue
            intf = next(iter(node.intfs.values()))
            intf.ip = self.topo.nodeInfo(name).get("ip") or f"{base[i]}/{base.prefixlen}"
            iface = ipaddress.ip_interface(intf.ip)
            node.ipr.addr("add", index=intf.index, address=str(iface.ip),
                          prefixlen=iface.network.prefixlen)

    def _add_routes(self, node: Node, routes) -> None:
        for dst, via in routes:
            dst = "0.0.0.0/0" if dst == "default" else dst
            node.ipr.route("add", dst=dst, gateway=via)

    # -- changing a running lab ----------------------------------------------
    def link_ends(self, a: str, b: str) -> list[tuple[Node, str]]:
        """[(node, ifname) at A's end, (node, ifname) at B's end] of the link between A and B
        (a switch's end is the switch namespace's port).  BadInput naming the nodes if none."""
        for n1, n2, info in self.topo.links(sort=True, withInfo=True):
            if {n1, n2} == {a, b}:
                ends = [(self.nodes[n1], f"{n1}-eth{info['port1']}"),
                        (self.nodes[n2], f"{n2}-eth{info['port2']}")]
                return ends if n1 == a else ends[::-1]
        for x in (a, b):
            if x not in self.nodes:
                raise BadInput(f"unknown node {x!r}; nodes: {', '.join(sorted(self.nodes))}")
        raise BadInput(f"no link between {a} and {b}")

    def set_link(self, a: str, b: str, up: bool) -> int:
        """Take the link between A and B down (both ends), or bring it up; coming up, the
        topology's static routes of A and B that the kernel dropped with it are installed
        again (a router keeps its configured routes).  Returns how many were."""
        for node, ifname in self.link_ends(a, b):
            node.ipr.link("set", index=node.ipr.link_lookup(ifname=ifname)[0], state="up" if up else "down")
        again = 0
        for name in (a, b) if up else ():
            if self.nodes[name].role == "switch":
                continue
            for dst, via in self.topo.nodeInfo(name).get("routes", []):
                try:
                    self.nodes[name].ipr.route("replace", dst="0.0.0.0/0" if dst == "default" else dst,
                                               gateway=via)
                    again += 1
                except Exception:   # noqa: BLE001 - its gateway is behind a link still down
                    continue
        return again

    def shape(self, node: str, ifname: str, **params) -> Shaping:
        """Replace the shaping on one interface's egress (e.g. a new delay)."""
        n = self[node]
        intf = n.intfs[ifname]
        shaping = Shaping.from_params(params, f"{node}:{ifname}")
        apply_shaping(n.ipr, intf.index, shaping, replace=True, run=n.run)
        intf.shaping = shaping
        return shaping

    def shape_toward(self, node: str, toward: str, **params) -> Shaping:
        """Replace the shaping on NODE's egress toward node TOWARD."""
        return self.shape(node, self[node].egress(toward).name, **params)

    @contextlib.contextmanager
    def shaped(self, changes: dict[tuple[str, str], dict]):
        """Within the block, CHANGES {(node, toward): shaping params} are in force on
        those egresses; afterwards each gets back the shaping it had."""
        before = {key: self[key[0]].egress(key[1]).shaping for key in changes}
        try:
            for (node, toward), params in changes.items():
                self.shape_toward(node, toward, **params)
            yield self
        finally:
            for (node, toward), shaping in before.items():
                intf = self[node].egress(toward)
                apply_shaping(self[node].ipr, intf.index, shaping, replace=True)
                intf.shaping = shaping

    def effective_sysctls(self) -> dict[str, dict[str, str]]:
        out = {n.name: dict(n.sysctls) for n in self.hosts()}
        return out | ({KERNEL_WIDE: dict(self.kernel_sysctls)} if self.kernel_sysctls else {})

    def available_memory_bytes(self) -> int:
        """Memory the lab may still use: the kernel's MemAvailable, or less when the lab's
        cgroup cap leaves less (size N from this, never from the machine's total)."""
        with open("/proc/meminfo") as f:
            avail = next(int(ln.split()[1]) for ln in f if ln.startswith("MemAvailable:")) * 1024
        capped = self.confinement.available_bytes() if self.confinement else None
        return avail if capped is None else min(avail, capped)

    def resources(self) -> dict:
        """What holds the lab (its cgroup and caps, or why none) and its peaks so far."""
        c = self.confinement
        return {"confinement": c.status if c else "not built", **(c.peaks() if c else {})}

    def describe(self) -> dict:
        """Nodes, interfaces, addresses and shaping, for the run manifest."""
        out = {}
        for node in {id(n): n for n in self.nodes.values()}.values():
            out[node.name] = {"role": node.role, "namespace": node.ns,
                              **({"switch_kind": self.switch_kind} if node.role == "switch" else {}),
                              "intfs": {
                i.name: {"ip": i.ip, **{k: v for k, v in i.shaping.as_dict().items() if v}}
                for i in node.intfs.values()}}
        return out
