"""Open vSwitch for a lab's switches: a private ovsdb-server and
ovs-vswitchd inside the lab's switch namespace.

Everything OVS keeps (database, sockets, pid and log files) goes to the lab's
workdir, so a lab never touches the host's /etc/openvswitch or /run.  By default
the bridges use the kernel datapath and run in fail-mode standalone: a learning
switch with no controller.  A lab may ask otherwise with :class:`OvsOptions` (an
``ovs_options`` attribute; wirelab.lab.openflow does): an OpenFlow controller
(OpenFlow 1.3, out-of-band, fail-mode secure) and the userspace datapath.

The userspace datapath (``datapath_type=netdev``) is how OpenFlow labs run on this
project's machines: the host kernel has no openvswitch module, and inside UML OVS
3.1's kernel datapath loses every upcall (see :func:`usable_in_auto`), which an
OpenFlow controller lives on.  ovs-vswitchd then switches in user space, reading and
writing the same veths through packet sockets in the switch namespace, with the
host's kernel and no module at all.  It is slow (every frame crosses user space) and
cannot take the hosts' TCP segmentation and checksum offloads, so transmit offloads
are turned off on every veth of a switch, both ends, inside the lab's namespaces;
it is for labs where no timing is judged.
"""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from wirelab import settings
from wirelab.errors import LabError
from wirelab.lab import netns
from wirelab.lab.shaping import apply as apply_shaping
from wirelab.lab.wait import poll

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
DATAPATHS = ("system", "netdev")
FAIL_MODES = ("standalone", "secure")


@dataclass(frozen=True)
class OvsOptions:
    """How a lab's bridges run.  DATAPATH: ``system`` (the kernel's) or ``netdev``
    (userspace).  CONTROLLER: an OpenFlow target (``tcp:127.0.0.1:6653``, inside the
    switch namespace) or None.  BEFORE_BRIDGES: called with the switch node once
    ovs-vswitchd runs and before any bridge exists (a lab starts its controller there,
    so the bridges find it listening at once instead of after a reconnect backoff)."""
    datapath: str = "system"
    fail_mode: str = "standalone"
    controller: str | None = None
    protocols: str | None = None
    before_bridges: Callable | None = None
    inactivity_probe_ms: int | None = None      # None: OVS's default, 5000 (its floor is 5 s)

    def __post_init__(self) -> None:
        if self.datapath not in DATAPATHS:
            raise ValueError(f"datapath {self.datapath!r}: allowed {', '.join(DATAPATHS)}")
        if self.fail_mode not in FAIL_MODES:
            raise ValueError(f"fail_mode {self.fail_mode!r}: allowed {', '.join(FAIL_MODES)}")


def tools() -> tuple[bool, str]:
    """Whether the OVS daemons and tools are installed."""
    for tool in ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovsdb-tool", "ovs-ofctl"):
        if shutil.which(tool) is None:
            return False, f"{tool} is not installed (Debian package openvswitch-switch)"
    return True, "Open vSwitch tools installed"


@lru_cache(maxsize=1)
def kernel_datapath() -> tuple[bool, str]:
    """Whether this kernel has the OVS datapath and the OVS daemons exist."""
    ok, why = tools()
    return datapath_family() if ok else (ok, why)


def datapath_family() -> tuple[bool, str]:
    """Ask generic netlink for the ovs_datapath family, in a throw-away namespace
    (this autoloads the openvswitch module where the kernel can)."""
    from pyroute2.netlink.generic import GenericNetlinkSocket
    with netns.throwaway():
        gs = GenericNetlinkSocket()
    try:
        gs.discovery("ovs_datapath")
        return True, "generic netlink family ovs_datapath present"
    except Exception as e:  # pyroute2 raises several kinds for an absent family
        return False, f"no ovs_datapath netlink family ({e})"
    finally:
        gs.close()


def usable_in_auto() -> tuple[bool, str]:
    """Whether ``switch="auto"`` should pick OVS on this kernel.

    Not inside User-Mode Linux: there OVS 3.1's per-CPU upcall dispatch loses
    every upcall on the 6.1 UML kernel (``ovs-dpctl show``: lookups missed 39,
    lost 39 for 39 packets; no flow is ever installed), so frames never cross
    the switch.  Labs there use the Linux bridge; ``switch="ovs"`` still
    forces OVS for anyone investigating it."""
    if settings.inside_guest():
        return False, "OVS upcalls are lost on the UML kernel (per-CPU dispatch)"
    return True, "kernel datapath available"


def rundir(lab) -> Path:
    """Where a lab's OVS keeps its database, sockets and logs."""
    return lab.workdir / "ovs"


def _env(d: Path) -> dict[str, str]:
    return {"OVS_RUNDIR": str(d), "OVS_DBDIR": str(d), "OVS_LOGDIR": str(d),
            "OVS_SYSCONFDIR": str(d), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def vsctl(lab, sw_node, *args: str, timeout_s: float = 30):
    """Run ovs-vsctl against the lab's own database; the completed process."""
    d = rundir(lab)
    return sw_node.run(["ovs-vsctl", f"--db=unix:{d / 'db.sock'}", f"--timeout={timeout_s:g}", *args],
                       env=_env(d), timeout_s=timeout_s + 5)


def ofctl(lab, sw_node, bridge: str, *args: str, protocols: str = "OpenFlow13"):
    """Run ovs-ofctl COMMAND against BRIDGE of the lab (through its management socket,
    so it talks to this lab's ovs-vswitchd only)."""
    d = rundir(lab)
    cmd, rest = args[0], args[1:]
    return sw_node.run(["ovs-ofctl", "-O", protocols, cmd, f"unix:{d / (bridge + '.mgmt')}", *rest],
                       env=_env(d))


def _offloads_off(ports) -> None:
    """Turn transmit checksum offload (and with it TSO/GSO) off on both ends of every
    switch port: the userspace datapath forwards what it reads from a packet socket as
    is, so a frame must leave its sender whole, with its checksum computed."""
    for intf in ports:
        for end in (intf, intf.peer):
            if end is not None:
                end.node.run(["ethtool", "-K", end.name, "tx", "off"], timeout_s=20)


def start_switches(lab, sw_node, switches: list[str], options: OvsOptions | None = None) -> None:
    """Start OVS in SW_NODE and make every switch a bridge with its ports.  OPTIONS:
    the lab's ``ovs_options`` if it has them, else a standalone kernel-datapath switch."""
    opts = options or getattr(lab, "ovs_options", None) or OvsOptions()
    d = rundir(lab)
    d.mkdir()
    env = _env(d)
    db, sock = d / "conf.db", d / "db.sock"
    sw_node.run(["ovsdb-tool", "create", str(db), SCHEMA], env=env)
    sw_node.popen(["ovsdb-server", f"--remote=punix:{sock}", f"--unixctl={d}/ovsdb.ctl",
                   "--no-chdir", f"--log-file={d}/ovsdb.log", "-vconsole:off", str(db)],
                  env=env, stderr=subprocess.DEVNULL)   # "opened log file", before -vconsole:off
    poll(sock.exists, 20, "ovsdb-server's socket")
    vsctl_argv = ["ovs-vsctl", f"--db=unix:{sock}", "--timeout=30"]
    sw_node.run([*vsctl_argv, "--no-wait", "init", "--", "set", "Open_vSwitch", ".",
                 "other_config:n-handler-threads=1", "other_config:n-revalidator-threads=1"],
                env=env)
    sw_node.popen(["ovs-vswitchd", f"unix:{sock}", f"--unixctl={d}/vswitchd.ctl", "--no-chdir",
                   f"--log-file={d}/vswitchd.log", "-vconsole:off"], env=env,
                  stderr=subprocess.DEVNULL)
    ports = [i for i in sw_node.intfs.values() if i.switch]
    if opts.datapath == "netdev":
        _offloads_off(ports)
    if opts.before_bridges is not None:
        opts.before_bridges(sw_node)
    # One ovs-vsctl for every bridge and port; without --no-wait it returns
    # once ovs-vswitchd has applied it (the datapath ports exist).
    argv = list(vsctl_argv)
    for s in switches:
        argv += ["--", "add-br", s, "--", "set", "bridge", s, f"fail-mode={opts.fail_mode}",
                 f"datapath_type={opts.datapath}"]
        if opts.protocols:
            argv += ["--", "set", "bridge", s, f"protocols={opts.protocols}"]
        if opts.controller:
            # Out of band: the controller is reached over the switch namespace's
            # loopback, never through the bridge, so OVS adds no hidden in-band flows.
            argv += ["--", "set", "bridge", s, "other-config:disable-in-band=true",
                     "--", "set-controller", s, opts.controller,
                     "--", "set", "controller", s, "connection-mode=out-of-band", "max_backoff=1000"]
            if opts.inactivity_probe_ms is not None:
                argv += [f"inactivity_probe={opts.inactivity_probe_ms}"]
        argv += [w for i in ports if i.switch == s for w in ("--", "add-port", s, i.name)]
    res = sw_node.run(argv, env=env, check=False, timeout_s=60)
    if res.returncode != 0:
        raise LabError(f"ovs-vsctl could not build the switches: {res.stderr.strip()[-300:]}")
    for s in switches:
        idx = sw_node.ipr.link_lookup(ifname=s)
        if idx:
            sw_node.ipr.link("set", index=idx[0], state="up")
    # Shaping on switch ports goes on after OVS has taken them over.
    for intf in ports:
        if intf.shaping.active:
            apply_shaping(sw_node.ipr, intf.index, intf.shaping, replace=True)
