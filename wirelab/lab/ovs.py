"""Open vSwitch for a lab's switches: a private ovsdb-server and
ovs-vswitchd inside the lab's switch namespace, using the kernel datapath.

Everything OVS keeps (database, sockets, pid and log files) goes to the lab's
workdir, so a lab never touches the host's /etc/openvswitch or /run.  The
bridges run in fail-mode standalone: a learning switch with no controller
(controllers/ holds OpenFlow apps for labs that want one).
"""
from __future__ import annotations

import shutil
from functools import lru_cache

from wirelab import settings
from wirelab.errors import LabError
from wirelab.lab import netns
from wirelab.lab.shaping import apply as apply_shaping
from wirelab.lab.wait import poll

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


@lru_cache(maxsize=1)
def kernel_datapath() -> tuple[bool, str]:
    """Whether this kernel has the OVS datapath and the OVS daemons exist."""
    for tool in ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovsdb-tool"):
        if shutil.which(tool) is None:
            return False, f"{tool} is not installed (Debian package openvswitch-switch)"
    return datapath_family()


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


def start_switches(lab, sw_node, switches: list[str]) -> None:
    """Start OVS in SW_NODE and make every switch a bridge with its ports."""
    d = lab.workdir / "ovs"
    d.mkdir()
    env = {"OVS_RUNDIR": str(d), "OVS_DBDIR": str(d), "OVS_LOGDIR": str(d),
           "OVS_SYSCONFDIR": str(d), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    db, sock = d / "conf.db", d / "db.sock"
    sw_node.run(["ovsdb-tool", "create", str(db), SCHEMA], env=env)
    sw_node.popen(["ovsdb-server", f"--remote=punix:{sock}", f"--unixctl={d}/ovsdb.ctl",
                   "--no-chdir", f"--log-file={d}/ovsdb.log", "-vconsole:off", str(db)],
                  env=env)
    poll(sock.exists, 20, "ovsdb-server's socket")
    vsctl = ["ovs-vsctl", f"--db=unix:{sock}", "--timeout=30"]
    sw_node.run([*vsctl, "--no-wait", "init", "--", "set", "Open_vSwitch", ".",
                 "other_config:n-handler-threads=1", "other_config:n-revalidator-threads=1"],
                env=env)
    sw_node.popen(["ovs-vswitchd", f"unix:{sock}", f"--unixctl={d}/vswitchd.ctl", "--no-chdir",
                   f"--log-file={d}/vswitchd.log", "-vconsole:off"], env=env)
    # One ovs-vsctl for every bridge and port; without --no-wait it returns
    # once ovs-vswitchd has applied it (the datapath ports exist).
    argv = list(vsctl)
    ports = [i for i in sw_node.intfs.values() if i.switch]
    for s in switches:
        argv += ["--", "add-br", s, "--", "set", "bridge", s, "fail-mode=standalone"]
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
