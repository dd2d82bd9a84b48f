"""What a testbed topology declares beyond links and routes, started inside its nodes.

A topology declares a node's services as options of ``addHost`` (Mininet keeps unknown
options in ``nodeInfo``; stock ``mn --custom`` builds the same nodes and links and
ignores them):

=============  ==================================================================
``nat``        ``{"outside": NODE, "source": CIDR}``: MASQUERADE (of SOURCE only, if
               given) out of the interface toward NODE (a node or a switch)
``firewall``   ``[[chain, match...], ...]``: iptables rules in order (the filter
               table, or ``["-t", "nat", chain, ...]``)
``frr``        FRR routing (see :mod:`wirelab.peers.frr`)
``bind``       ``{"listen": ip, "zones": {origin: [records]}, "recursive": bool,
               "root": {name: ip}}``: BIND 9 (see :mod:`wirelab.peers.bind`)
``dnsmasq``    ``{"listen": ip, "args": [...]}``: a dnsmasq (a client-side cache)
``web``        ``{"listen": ip, "index": text}``: nginx on port 80
``nameservers``  the node's resolv.conf (default: none)
=============  ==================================================================

Every node gets its own /etc/hosts (every node's name and its first address, so
``curl http://web/`` works), resolv.conf and nsswitch.conf, bound over the system's for
the commands run in it (the system's files are never written), and a bin directory
first on PATH with wrappers: ``iptables`` for the backend this kernel supports, ``vtysh``
for the router's own FRR.  Services start in dependency order: routing first, then
filters and NAT, then servers.
"""
from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from wirelab.errors import BadInput, EnvironmentProblem
from wirelab.lab import firewall
from wirelab.peers import bind, dns, frr, web

KNOWN = {"nat", "firewall", "frr", "bind", "dnsmasq", "web", "nameservers"}
#: nodeInfo keys the lab itself reads (addresses, routes, roles)
LAB_KEYS = {"ip", "routes", "router", "cls", "inNamespace", "mac", "defaultRoute"}


@dataclass
class NodeEnv:
    """How commands run in one node: its files, its PATH, its services' directories."""
    binds: list[tuple[str, str]] = field(default_factory=list)
    bin_dir: Path | None = None
    services: dict[str, Path] = field(default_factory=dict)   # e.g. "named" -> its dir

    def environ(self) -> dict[str, str]:
        """The environment of a command run in the node: PATH with its wrappers first,
        and each service's directory as NAME_DIR (NGINX_DIR, NAMED_DIR, FRR_DIR)."""
        env = dict(os.environ)
        env.update({f"{name.upper()}_DIR": str(path) for name, path in self.services.items()})
        if self.bin_dir is not None:
            env["PATH"] = f"{self.bin_dir}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        return env


def declared(topo, name: str) -> dict:
    info = topo.nodeInfo(name)
    unknown = set(info) - KNOWN - LAB_KEYS
    if unknown:
        raise BadInput(f"node {name}: unknown options {', '.join(sorted(unknown))}; "
                       f"allowed: {', '.join(sorted(KNOWN | LAB_KEYS))}")
    return {k: v for k, v in info.items() if k in KNOWN}


def _wrapper(path: Path, argv: list[str]) -> None:
    """An executable PATH that runs ARGV (its program by absolute path: the wrapper is
    itself first on PATH) with the caller's arguments."""
    program = shutil.which(argv[0], path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if program is None:
        raise EnvironmentProblem(f"{argv[0]} is not installed")
    words = [program, *argv[1:]]
    path.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in words) + ' "$@"\n')
    path.chmod(0o755)


def _node_files(lab, name: str, hosts: dict[str, str], nameservers: list[str]) -> NodeEnv:
    files = dns.client_files(lab.workdir, name, nameservers, hosts=hosts)
    bin_dir = Path(lab.workdir) / f"bin-{name}"
    bin_dir.mkdir()
    return NodeEnv(binds=files.binds(), bin_dir=bin_dir)


def start(lab, progress=None) -> dict[str, NodeEnv]:
    """Start every declared service of LAB's topology; return each node's NodeEnv."""
    topo = lab.topo
    say = progress or (lambda text: None)
    names = [n for n in topo.nodes() if not topo.isSwitch(n)]
    decls = {n: declared(topo, n) for n in names}
    hosts = {}
    for n in names:
        try:
            hosts[n] = lab[n].ip()
        except Exception:   # noqa: BLE001 - a node without an address has no hosts entry
            continue
    envs = {n: _node_files(lab, n, hosts, list(decls[n].get("nameservers", []))) for n in names}
    needs_iptables = any("nat" in d or "firewall" in d for d in decls.values())
    if needs_iptables:
        ipt = firewall.iptables()
        for env in envs.values():
            assert env.bin_dir is not None
            _wrapper(env.bin_dir / "iptables", [ipt])
    for n, d in decls.items():                       # routing first
        if "frr" in d:
            say(f"FRR on {n}")
            fdir = frr.start(lab, n, d["frr"])
            envs[n].services["frr"] = fdir
            bin_dir = envs[n].bin_dir
            assert bin_dir is not None
            _wrapper(bin_dir / "vtysh", frr.vtysh_argv(fdir))
    for n, d in decls.items():                       # then filters and NAT
        for r in d.get("firewall", []):
            table, r = (r[1], r[2:]) if r[:1] == ["-t"] else ("filter", r)
            firewall.rule(lab[n], *r, table=table)
        if "nat" in d:
            out = lab[n].egress(d["nat"]["outside"])
            source = ["-s", d["nat"]["source"]] if d["nat"].get("source") else []
            firewall.rule(lab[n], "POSTROUTING", *source, "-o", out.name, "-j", "MASQUERADE",
                          table="nat")
    for n, d in decls.items():                       # then servers
        if "web" in d:
            say(f"nginx on {n}")
            root = Path(lab.workdir) / f"www-{n}"
            root.mkdir()
            (root / "index.html").write_text(d["web"].get("index", f"hello from {n}\n"))
            _proc, prefix = web.start_http(lab, n, d["web"]["listen"], root)
            envs[n].services["nginx"] = prefix
        if "bind" in d:
            b = d["bind"]
            say(f"BIND on {n}")
            envs[n].services["named"] = bind.start(
                lab, n, b["listen"], zones=b.get("zones"), recursive=b.get("recursive", False),
                root_hints=bind.root_hints(b["root"]) if b.get("root") else None)
        if "dnsmasq" in d:
            say(f"dnsmasq on {n}")
            dns.start_dnsmasq(lab, n, d["dnsmasq"]["listen"], name=f"{n}-dnsmasq",
                              args=list(d["dnsmasq"].get("args", [])))
    return envs
