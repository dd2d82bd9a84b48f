"""Real probes of what the running kernel and machine can do.

Each kernel probe *tries* the feature in a throw-away network namespace
(add the qdisc, open the generic-netlink family, set the congestion control
on a socket) instead of guessing from file names; the namespace vanishes
with the probe.  Tool probes run ``TOOL --version``.
"""
from __future__ import annotations

import platform
import re
import shutil
import socket
import subprocess

from wirelab import settings
from wirelab.lab import netns
from wirelab.lab.ovs import datapath_family

QDISCS = ("netem", "htb", "tbf", "fq", "fq_codel")
CONGESTION = ("reno", "cubic", "bbr")
TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)

#: tool -> (argv printing its version, regex picking the version out)
TOOLS = {
    "mn": (["mn", "--version"], r"(\d+\.\d+\S*)"),
    "mnexec": (["mnexec", "-v"], r"(\d+\.\d+\S*)"),
    "ovs-vswitchd": (["ovs-vswitchd", "--version"], r"(\d+\.\d+\.\d+)"),
    "iperf3": (["iperf3", "--version"], r"iperf (\S+)"),
    "named": (["named", "-v"], r"BIND (\S+)"),
    "dnsmasq": (["dnsmasq", "--version"], r"version (\S+)"),
    "tcpdump": (["tcpdump", "--version"], r"tcpdump version (\S+)"),
    "curl": (["curl", "--version"], r"curl (\S+)"),
    "openssl": (["openssl", "version"], r"OpenSSL (\S+)"),
    "nginx": (["nginx", "-v"], r"nginx/(\S+)"),
    "memcached": (["memcached", "-V"], r"memcached (\S+)"),
    "iptables": (["iptables", "--version"], r"v(\S+)"),
    "ethtool": (["ethtool", "--version"], r"version (\S+)"),
    "tc": (["tc", "-V"], r"iproute2-([\w.]+)"),
    "linux.uml": (["linux.uml", "--version"], r"(\S+)"),
}


def _try_qdisc(kind: str) -> tuple[bool, str]:
    from pyroute2.iproute.linux import IPRoute
    options: dict[str, dict] = {"htb": {"default": 0x10},
                                "tbf": {"rate": "10mbit", "burst": 15000, "limit": 30000},
                                "netem": {"delay": 1000}}
    kwargs = options.get(kind, {})
    with netns.throwaway():
        ipr = IPRoute()
    try:
        lo = ipr.link_lookup(ifname="lo")[0]
        ipr.link("set", index=lo, state="up")
        ipr.tc("add", kind, lo, handle=0x10000, **kwargs)
        return True, "qdisc added in a throw-away namespace"
    except Exception as e:  # NetlinkError(2) = no such qdisc in this kernel
        return False, f"adding the qdisc failed: {e}"
    finally:
        ipr.close()


def _try_congestion(name: str) -> tuple[bool, str]:
    with netns.throwaway():
        s = socket.socket()
    try:
        s.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, name.encode())
        return True, "set on a socket"
    except OSError as e:
        return False, f"TCP_CONGESTION={name} refused: {e.strerror}"
    finally:
        s.close()


def _try_netns() -> tuple[bool, str]:
    try:
        with netns.throwaway():
            pass
        return True, "unshare(CLONE_NEWNET) works"
    except OSError as e:
        return False, str(e)


def kernel_features() -> dict[str, dict]:
    """{feature: {"ok": bool, "detail": str}} for the running kernel."""
    out = {}
    ok, why = _try_netns()
    out["netns"] = {"ok": ok, "detail": why}
    if not ok:
        return out
    for kind in QDISCS:
        ok, why = _try_qdisc(kind)
        out[kind] = {"ok": ok, "detail": why}
    ok, why = datapath_family()
    out["openvswitch"] = {"ok": ok, "detail": why}
    for cc in CONGESTION:
        ok, why = _try_congestion(cc)
        out[f"cc_{cc}"] = {"ok": ok, "detail": why}
    return out


def kernel_info() -> dict:
    return {"release": platform.release(), "machine": platform.machine(),
            "uml": settings.inside_guest(),
            "default_cc": _read("/proc/sys/net/ipv4/tcp_congestion_control"),
            "available_cc": _read("/proc/sys/net/ipv4/tcp_available_congestion_control")}


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def tool_version(name: str) -> str | None:
    argv, pattern = TOOLS[name]
    if shutil.which(argv[0]) is None:
        return None
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return "present (version unknown)"
    m = re.search(pattern, res.stdout + res.stderr)
    return m.group(1) if m else "present (version unknown)"


def tools() -> dict[str, str | None]:
    return {name: tool_version(name) for name in TOOLS}
