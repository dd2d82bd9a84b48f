"""DNS in a lab: dnsmasq as authoritative server or caching resolver, and
client programs that resolve through the lab's resolver.

A lab host is a network namespace only: its processes see the machine's own
``/etc/resolv.conf`` and ``/etc/hosts``.  ``ip netns exec`` solves this by
entering a private *mount* namespace and bind-mounting
``/etc/netns/NAME/resolv.conf`` over ``/etc/resolv.conf``; that needs files
under the host's ``/etc``.  :func:`run_with_resolver` does the same thing
without touching ``/etc``: the child process (between fork and exec, so no
extra process start) enters the host's network namespace and a fresh mount
namespace, makes every mount private there (nothing propagates back to the
machine), and bind-mounts a resolv.conf, hosts and nsswitch.conf from the
lab's private workdir over the system's.  The system's files are never
written and the binds vanish with the process.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wirelab import netns
from wirelab.errors import LabError
from wirelab.wait import poll

CLONE_NEWNS = 0x00020000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

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


def _mount(src: str | None, dst: str, flags: int) -> None:
    ret = _libc.mount(src.encode() if src else None, dst.encode(), None, flags, None)
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} on {dst}: {os.strerror(err)}")


def preexec_with_files(ns: str, files: ClientResolver):
    """A ``preexec_fn``: enter network namespace NS, then a private mount
    namespace in which FILES are bound over the system's."""
    enter = netns.preexec_enter(ns)
    binds = files.binds()

    def _pre() -> None:
        enter()
        if _libc.unshare(CLONE_NEWNS) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare(CLONE_NEWNS): {os.strerror(err)}")
        # Private first: a bind made in a shared peer group would appear in
        # the machine's own mount namespace.
        _mount(None, "/", MS_REC | MS_PRIVATE)
        for src, dst in binds:
            _mount(src, dst, MS_BIND)
    return _pre


def run_with_resolver(node, files: ClientResolver, argv: list[str], timeout_s: float = 60,
                      check: bool = True) -> subprocess.CompletedProcess:
    """Run ARGV to completion in NODE's network namespace, resolving names
    through FILES (see the module docstring); capture its output."""
    if isinstance(argv, str):
        raise TypeError("argv must be a list of words, not a shell string")
    try:
        res = subprocess.run(argv, preexec_fn=preexec_with_files(node.ns, files),
                             capture_output=True, text=True, timeout=timeout_s,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{' '.join(argv)} in {node.name} did not finish in {timeout_s} s") from e
    except subprocess.SubprocessError as e:
        raise LabError(f"cannot start {argv[0]} in {node.name} with a private resolver: {e}") from e
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(argv)} in {node.name} exited {res.returncode}: "
                       f"{res.stderr.strip()[-500:]}")
    return res


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
QTYPES = {"A": 1, "TXT": 16, "AAAA": 28}
CLASS_IN, CLASS_CH = 1, 3


class DnsError(LabError):
    """A lab DNS server did not answer, or answered something unparsable."""


def build_query(name: str, qtype: str = "A", qclass: int = CLASS_IN,
                qid: int | None = None) -> tuple[int, bytes]:
    """A recursive query for NAME (RFC 1035 4.1): (its id, the bytes)."""
    qid = random.randrange(1 << 16) if qid is None else qid
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD set, one question
    labels = b"".join(bytes([len(part)]) + part.encode("ascii")
                      for part in name.rstrip(".").split("."))
    return qid, header + labels + b"\x00" + struct.pack("!HH", QTYPES[qtype], qclass)


def _skip_name(msg: bytes, i: int) -> int:
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:     # a compression pointer ends the name
            return i + 2
        i += 1 + n


def question(msg: bytes) -> tuple[str, bool] | None:
    """(the first question's name, is-a-reply) of a DNS message, or None
    if it is not one this lab sends (no compression in a question)."""
    if len(msg) < 13:
        return None
    flags, qd = struct.unpack("!HH", msg[2:6])
    if qd < 1:
        return None
    labels, i = [], 12
    while i < len(msg) and msg[i]:
        n = msg[i]
        if n & 0xC0 or i + 1 + n > len(msg):
            return None
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    return ".".join(labels).lower(), bool(flags & 0x8000)


def parse_response(msg: bytes, qid: int) -> dict:
    """{"rcode": int, "answers": [(type, rdata bytes, ttl s)]} of a reply to QID."""
    if len(msg) < 12:
        raise DnsError(f"short DNS reply ({len(msg)} bytes)")
    rid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    if rid != qid or not flags & 0x8000:
        raise DnsError(f"not a reply to query {qid}: id {rid}, flags {flags:#06x}")
    i = 12
    for _ in range(qd):
        i = _skip_name(msg, i) + 4
    answers = []
    for _ in range(an):
        i = _skip_name(msg, i)
        rtype, _cls, ttl, rdlen = struct.unpack("!HHIH", msg[i:i + 10])
        i += 10
        answers.append((rtype, msg[i:i + rdlen], ttl))
        i += rdlen
    return {"rcode": flags & 0x000F, "answers": answers}


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
        except socket.timeout as e:
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
