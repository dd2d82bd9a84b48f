"""DNS in a lab: dnsmasq as authoritative server or caching resolver, a client's own
resolver files, and a minimal in-process DNS client.

A lab host is a network namespace only: its processes see the machine's own
``/etc/resolv.conf`` and ``/etc/hosts``.  :func:`client_files` writes a host's own
resolv.conf, hosts and nsswitch.conf into the lab's workdir; a program started with
``node.run(argv, binds=files.binds())`` sees them in place of the system's (see
wirelab.lab.mounts), and the system's files are never written.
"""
from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wirelab.errors import LabError
from wirelab.lab.wait import poll
from wirelab.measure.dns_messages import (
    CLASS_CH,
    CLASS_IN,
    QTYPES,
    DnsError,
    build_query,
    parse_response,
    question,
)

__all__ = ["DnsError", "question", "query", "resolve_a", "cache_stats", "client_files",
           "start_dnsmasq"]

#: glibc's name service order inside the client: the hosts file, then DNS
#: through resolv.conf.  Bound over the system's so that no nss module of the
#: machine (systemd-resolved, mDNS) answers instead of the lab's resolver.
NSSWITCH = "hosts: files dns\n"


@dataclass
class ClientResolver:
    """The three files a client process sees as /etc/resolv.conf, /etc/hosts
    and /etc/nsswitch.conf."""
    resolv_conf: Path
    hosts: Path
    nsswitch: Path

    def binds(self) -> list[tuple[str, str]]:
        return [(str(self.resolv_conf), "/etc/resolv.conf"), (str(self.hosts), "/etc/hosts"),
                (str(self.nsswitch), "/etc/nsswitch.conf")]


def client_files(workdir: Path, name: str, nameservers: list[str],
                 hosts: dict[str, str] | None = None, options: str = "") -> ClientResolver:
    """Write a resolv.conf naming NAMESERVERS (lab addresses) and a hosts file
    with HOSTS {name: address} (localhost only when empty) under WORKDIR/NAME."""
    d = Path(workdir) / f"resolver-{name}"
    d.mkdir(parents=True, exist_ok=True)
    rc = "".join(f"nameserver {ns}\n" for ns in nameservers)
    if options:
        rc += f"options {options}\n"
    (d / "resolv.conf").write_text(rc)
    lines = ["127.0.0.1\tlocalhost"] + [f"{addr}\t{host}" for host, addr in (hosts or {}).items()]
    (d / "hosts").write_text("\n".join(lines) + "\n")
    (d / "nsswitch.conf").write_text(NSSWITCH)
    return ClientResolver(d / "resolv.conf", d / "hosts", d / "nsswitch.conf")


def start_dnsmasq(lab, node: str, listen: str, *, name: str, args: list[str],
                  log_queries: bool = False, timeout_s: float = 20.0):
    """dnsmasq in NODE answering on LISTEN:53 only (UDP and TCP), reading no
    file of the machine (-C /dev/null, --no-resolv, --no-hosts), in the
    foreground under the lab's undo stack.  ARGS add its role (records,
    upstreams, cache).  With LOG_QUERIES every query is logged to
    ``<workdir>/dnsmasq-NAME.log`` (a few writes per query: off where the
    answer is timed; :func:`cache_stats` counts hits and misses instead).
    Returns (process, log path or None) once port 53 is bound."""
    work = Path(lab.workdir)
    log = work / f"dnsmasq-{name}.log" if log_queries else None
    argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
            "--no-hosts", f"--listen-address={listen}", "--bind-interfaces", "--port=53",
            "--user=root", "--group=root", f"--pid-file={work / f'dnsmasq-{name}.pid'}",
            *(["--log-queries", f"--log-facility={log}"] if log else []), *args]
    n = lab[node]
    # dnsmasq checks its options at start and exits with a message: wait for
    # port 53 or for its exit, whichever comes first.
    proc = n.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        poll(lambda: proc.poll() is not None or n.listening(53, "udp"), timeout_s,
             f"dnsmasq {name} to bind {listen}:53 in {node}")
    except TimeoutError as e:
        raise LabError(str(e)) from e
    if proc.poll() is not None:
        err = proc.stderr.read().decode(errors="replace").strip()
        raise LabError(f"dnsmasq {name} in {node} exited {proc.returncode}: {err[-300:]}")
    return proc, log


# -- a minimal DNS client, in-process (no process start) ---------------------

def query(node, server: str, name: str, qtype: str = "A", qclass: int = CLASS_IN,
          timeout_s: float = 5.0) -> dict:
    """Ask SERVER (port 53, UDP) from NODE's namespace; the parsed reply."""
    qid, msg = build_query(name, qtype, qclass)
    s = node.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout_s)
        s.connect((server, 53))
        s.send(msg)
        try:
            return parse_response(s.recv(4096), qid)
        except TimeoutError as e:
            raise DnsError(f"no answer from {server} for {name} {qtype} within {timeout_s:g} s") from e
    finally:
        s.close()


def resolve_a(node, server: str, name: str) -> list[str]:
    """The IPv4 addresses SERVER returns for NAME."""
    return [socket.inet_ntoa(rd) for t, rd, _ in query(node, server, name)["answers"]
            if t == QTYPES["A"] and len(rd) == 4]


def cache_stats(node, server: str) -> dict[str, int]:
    """dnsmasq's cache counters (hits, misses, insertions), read as it
    publishes them: CHAOS-class TXT records under ``bind.``."""
    out = {}
    for key in ("hits", "misses", "insertions"):
        reply = query(node, server, f"{key}.bind", "TXT", CLASS_CH)
        txt = [rd[1:1 + rd[0]].decode() for t, rd, _ in reply["answers"] if t == QTYPES["TXT"]]
        if not txt:
            raise DnsError(f"{server} publishes no {key}.bind counter (rcode {reply['rcode']})")
        out[key] = int(txt[0])
    return out


def prime(node, server: str, names: list[str], address: str) -> None:
    """Ask SERVER for each of NAMES (A and AAAA, as glibc does) so that it has them
    cached, checking the A answer is ADDRESS."""
    for name in names:
        if resolve_a(node, server, name) != [address]:
            raise DnsError(f"the lab resolver does not resolve {name} to {address}")
        query(node, server, name, "AAAA")
