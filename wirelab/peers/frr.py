"""FRR routers inside lab nodes: zebra with bgpd and/or ospfd, per router, from a
declaration in the topology.

A router's declaration (the ``frr`` option of ``addHost``)::

    {"asn": 65000, "router_id": "10.255.0.1",
     "neighbors": [{"address": "10.1.0.2", "asn": 65101, "next_hop_self": True}],
     "networks": ["10.11.0.0/24"],            # originated in BGP
     "ospf": {"networks": ["10.0.0.0/8"]}}     # optional: OSPF area 0 on these

Each router gets its own directory (configs, pid files, the vty sockets, logs) under
the lab's workdir; the daemons run in the foreground in the router's namespace under
the lab's undo stack, as FRR's own user (vtysh access is checked against the frrvty
group).  Every configuration is checked by the daemon itself (``-C``, a dry run, which exits 0
even when it rejects a line: its messages are read) before anything starts; a bad
one stops the build with FRR's message.  ``vtysh`` reaches a
router through its socket directory (:func:`vtysh_argv`).
"""
from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import re
import subprocess
from pathlib import Path

from wirelab.errors import BadInput, EnvironmentProblem, LabError
from wirelab.lab.wait import poll

DAEMON_DIR = Path("/usr/lib/frr")
USER = "frr"
#: Seconds: keepalive and hold timers for a lab (defaults 60/180 would keep a broken
#: session "up" for three minutes after `link ... down`); connect retry of 1 s.
KEEPALIVE_S, HOLD_S, CONNECT_RETRY_S = 3, 9, 1


def available() -> tuple[bool, str]:
    missing = [d for d in ("zebra", "bgpd", "ospfd") if not (DAEMON_DIR / d).exists()]
    if missing:
        return False, f"FRR is not installed ({', '.join(missing)} missing under {DAEMON_DIR})"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return False, f"FRR's user {USER!r} does not exist"
    return True, f"FRR in {DAEMON_DIR}"


def _check_decl(node: str, decl: dict) -> None:
    unknown = set(decl) - {"asn", "router_id", "neighbors", "networks", "ospf"}
    if unknown:
        raise BadInput(f"frr on {node}: unknown keys {', '.join(sorted(unknown))}")
    if "asn" in decl and not 1 <= int(decl["asn"]) <= 4294967295:
        raise BadInput(f"frr on {node}: asn {decl['asn']} is outside 1-4294967295")
    for value in [decl.get("router_id"), *(n["address"] for n in decl.get("neighbors", []))]:
        if value is not None:
            ipaddress.IPv4Address(value)


def configs(node: str, decl: dict) -> dict[str, str]:
    """{daemon: configuration text} for router NODE's declaration."""
    _check_decl(node, decl)
    out = {"zebra": f"hostname {node}\nlog timestamp precision 3\n"}
    if "asn" in decl:
        lines = [f"hostname {node}", f"router bgp {decl['asn']}"]
        if decl.get("router_id"):
            lines.append(f" bgp router-id {decl['router_id']}")
        lines += [" no bgp ebgp-requires-policy", " no bgp network import-check",
                  f" timers bgp {KEEPALIVE_S} {HOLD_S}"]
        for nb in decl.get("neighbors", []):
            a = nb["address"]
            lines += [f" neighbor {a} remote-as {nb['asn']}",
                      f" neighbor {a} timers connect {CONNECT_RETRY_S}",
                      f" neighbor {a} advertisement-interval 0"]
        lines.append(" address-family ipv4 unicast")
        lines += [f"  network {ipaddress.IPv4Network(n)}" for n in decl.get("networks", [])]
        lines += [f"  neighbor {nb['address']} next-hop-self" for nb in decl.get("neighbors", [])
                  if nb.get("next_hop_self")]
        lines.append(" exit-address-family")
        out["bgpd"] = "\n".join(lines) + "\n"
    if "ospf" in decl:
        ospf = decl["ospf"]
        lines = [f"hostname {node}", "router ospf"]
        if decl.get("router_id"):
            lines.append(f" ospf router-id {decl['router_id']}")
        lines += [f" network {ipaddress.IPv4Network(n)} area 0" for n in ospf.get("networks", [])]
        lines += [" timers throttle spf 0 50 500"]
        out["ospfd"] = "\n".join(lines) + "\n"
    return out


def vtysh_argv(directory: Path) -> list[str]:
    """vtysh for the router whose FRR runs in DIRECTORY."""
    return ["vtysh", "--vty_socket", str(directory)]


def vty(node, directory: Path, *lines: str, timeout_s: float = 20.0) -> str:
    """Run LINES (``configure terminal``, ``show ip bgp`` ...) in NODE's vtysh, one ``-c``
    each; its output.  LabError when vtysh fails or answers an error (a line with ``%``)."""
    argv = vtysh_argv(directory) + [w for ln in lines for w in ("-c", ln)]
    res = node.run(argv, check=False, timeout_s=timeout_s)
    if res.returncode or "%" in res.stdout:
        raise LabError(f"vtysh {lines} on {node.name}: {(res.stdout + res.stderr).strip()[-300:]}")
    return res.stdout


def start(lab, node: str, decl: dict, timeout_s: float = 30.0) -> Path:
    """Check and start FRR in NODE as DECL says; return its directory (for vtysh)."""
    ok, why = available()
    if not ok:
        raise EnvironmentProblem(f"router {node} needs FRR: {why}; run `sudo make setup`")
    texts = configs(node, decl)
    d = Path(lab.workdir) / f"frr-{node}"
    d.mkdir()
    user, group = pwd.getpwnam(USER), grp.getgrnam(USER)
    # The workdir is root's: let FRR's user through to its own directory, no further.
    os.chmod(lab.workdir, 0o711)
    os.chown(d, user.pw_uid, group.gr_gid)
    os.chmod(d, 0o770)
    n = lab[node]
    for daemon, text in texts.items():
        conf = d / f"{daemon}.conf"
        conf.write_text(text)
        os.chown(conf, user.pw_uid, group.gr_gid)
        res = subprocess.run([str(DAEMON_DIR / daemon), "-C", "-f", str(conf)],
                             capture_output=True, text=True, timeout=timeout_s,
                             stdin=subprocess.DEVNULL)
        # A dry run exits 0 even when it rejects lines ("No such command on config line 3").
        said = (res.stdout + res.stderr).strip()
        if res.returncode != 0 or re.search(r"on config line \d+", said):
            raise LabError(f"FRR {daemon} on {node} refused its configuration:\n{text}"
                           f"{said[-800:]}")
    for daemon in ("zebra", *(x for x in ("ospfd", "bgpd") if x in texts)):
        argv = [str(DAEMON_DIR / daemon), "-f", str(d / f"{daemon}.conf"),
                "-i", str(d / f"{daemon}.pid"), "-z", str(d / "zserv.api"),
                "--vty_socket", str(d), "--log", f"file:{d / daemon}.log"]
        with open(d / f"{daemon}.stderr", "wb") as err_file:
            proc = n.popen(argv, stdout=subprocess.DEVNULL, stderr=err_file)
        sock = d / f"{daemon}.vty"

        def ready(p: subprocess.Popen = proc, s: Path = sock) -> bool:
            return p.poll() is not None or s.exists()
        try:
            poll(ready, timeout_s, f"FRR {daemon} to open its vty socket in {node}")
        except TimeoutError as e:
            raise LabError(str(e)) from e
        if proc.poll() is not None:
            err = (d / f"{daemon}.stderr").read_text(errors="replace")
            log = Path(f"{d / daemon}.log")
            tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
            raise LabError(f"FRR {daemon} on {node} exited {proc.returncode}: "
                           f"{(err + tail).strip()[-800:]}")
    return d
