"""An L4 load balancer, as pure logic (the os-ken app is load_balancer_app.py): a
virtual IP and TCP port spread over N backends, per connection.

The switch forwards everything itself (table-miss: OFPP_NORMAL, its own L2
learning); only two things reach the controller: ARP requests for the virtual IP,
answered with the virtual MAC, and the first packet of each TCP connection to
VIP:PORT.  For that connection the controller picks a backend and installs two
flows on the switch where it arrived:

- client -> VIP:PORT: set_field eth_dst, ipv4_dst, tcp_dst to the backend's, then NORMAL;
- backend -> client: set_field eth_src, ipv4_src, tcp_src back to the VIP's, then NORMAL;

and sends the packet on with the first flow's actions.  The client sees only the
VIP; the backend sees the client's own address.  Only a SYN opens a connection: any other
packet of one the balancer has not placed (the last ACK or FIN of a connection whose
flows were just removed, say) is dropped and counted as a stray, never given a backend;
a packet of a connection it has placed (the switch's cache can send a second one before
the flows take over) gets the same backend again.  Because the reverse flow sits on the
client's edge switch, the backend may be anywhere in the L2 domain.

Policies (per connection = per client address and source port):

- ``hash`` (default): backend index = CRC-32 of ``"CLIENT_IP:CLIENT_PORT"`` mod N, so a
  retransmitted SYN that reaches the controller twice gets the same backend, and
  anyone can predict the spread from the connections' source ports (:func:`pick_hash`);
- ``round_robin``: backends in turn, in order of first packets; a connection seen
  again keeps its backend.
"""
from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass
from typing import Any

from wirelab.controllers.flows import (
    ETH_ARP,
    ETH_IPV4,
    IPPROTO_TCP,
    Decision,
    FlowMod,
    Packet,
    PacketOut,
    arp_reply,
    mac_bytes,
    match_of,
)

COOKIE = 0x1B
PUNT_PRIORITY = 100
FLOW_PRIORITY = 200
POLICIES = ("hash", "round_robin")
ARP_REQUEST = 1
TCP_SYN, TCP_ACK = 0x02, 0x10


@dataclass(frozen=True)
class Backend:
    ip: str
    mac: str
    port: int


def pick_hash(client_ip: str, client_port: int, n: int) -> int:
    """The backend index the hash policy gives connection CLIENT_IP:CLIENT_PORT."""
    return zlib.crc32(f"{client_ip}:{client_port}".encode()) % n


class LoadBalancer:
    def __init__(self, vip: str, port: int, backends: list[Backend], *,
                 vmac: str = "02:00:00:00:00:fe", policy: str = "hash", idle_timeout_s: int = 30):
        ipaddress.IPv4Address(vip)
        mac_bytes(vmac)
        if not 1 <= int(port) <= 65535:
            raise ValueError(f"port {port}: allowed 1-65535")
        if not backends:
            raise ValueError("a load balancer needs at least one backend")
        if policy not in POLICIES:
            raise ValueError(f"policy {policy!r}: allowed {', '.join(POLICIES)}")
        for b in backends:
            ipaddress.IPv4Address(b.ip)
            mac_bytes(b.mac)
        self.vip, self.port, self.vmac = vip, int(port), vmac
        self.backends = list(backends)
        self.policy, self.idle_timeout_s = policy, idle_timeout_s
        self.assigned: dict[tuple[str, int], int] = {}   # connection -> backend index
        self._next = 0
        self.switches: set[int] = set()
        self.strays = 0

    @classmethod
    def from_config(cls, conf: dict[str, Any]) -> LoadBalancer:
        """From the app's JSON config: vip, port, backends [{ip, mac, port}], and
        optionally vmac, policy, idle_timeout_s."""
        try:
            backends = [Backend(b["ip"], b["mac"], int(b.get("port", conf["port"])))
                        for b in conf["backends"]]
            extra = {k: conf[k] for k in ("vmac", "policy", "idle_timeout_s") if k in conf}
            return cls(conf["vip"], int(conf["port"]), backends, **extra)
        except KeyError as e:
            raise ValueError(f"load balancer config lacks {e}") from e

    def choose(self, client_ip: str, client_port: int) -> int:
        key = (client_ip, client_port)
        if key in self.assigned:
            return self.assigned[key]
        if self.policy == "hash":
            i = pick_hash(client_ip, client_port, len(self.backends))
        else:
            i = self._next
            self._next = (self._next + 1) % len(self.backends)
        self.assigned[key] = i
        return i

    def spread(self) -> list[int]:
        """Connections given to each backend so far, in backend order."""
        counts = [0] * len(self.backends)
        for i in self.assigned.values():
            counts[i] += 1
        return counts

    def connected(self, dpid: int) -> Decision:
        self.switches.add(dpid)
        d = Decision()
        d.add_flow(dpid, FlowMod("delete", cookie=COOKIE))
        d.add_flow(dpid, FlowMod("add", priority=0, cookie=COOKIE, actions=(("output", "normal"),)))
        to_controller = (("output", "controller"),)
        d.add_flow(dpid, FlowMod("add", priority=PUNT_PRIORITY, cookie=COOKIE, actions=to_controller,
                                 match=match_of(eth_type=ETH_ARP, arp_tpa=self.vip)))
        d.add_flow(dpid, FlowMod("add", priority=PUNT_PRIORITY, cookie=COOKIE, actions=to_controller,
                                 match=match_of(eth_type=ETH_IPV4, ip_proto=IPPROTO_TCP,
                                                ipv4_dst=self.vip, tcp_dst=self.port)))
        return d

    def packet_in(self, pkt: Packet) -> Decision:
        d = Decision()
        if pkt.eth_type == ETH_ARP and pkt.arp_tpa == self.vip:
            if pkt.arp_op == ARP_REQUEST and pkt.arp_spa and pkt.arp_sha:
                frame = arp_reply(sender_mac=self.vmac, sender_ip=self.vip,
                                  target_mac=pkt.arp_sha, target_ip=pkt.arp_spa)
                d.send(pkt.dpid, PacketOut("controller", (("output", pkt.in_port),), frame))
            return d
        if (pkt.eth_type == ETH_IPV4 and pkt.ip_proto == IPPROTO_TCP and pkt.ipv4_dst == self.vip
                and pkt.l4_dst == self.port and pkt.ipv4_src and pkt.l4_src is not None):
            flags = pkt.tcp_flags or 0
            opens = bool(flags & TCP_SYN) and not flags & TCP_ACK
            if (pkt.ipv4_src, pkt.l4_src) not in self.assigned and not opens:
                self.strays += 1
                return d            # not a connection it placed: dropped, no backend spent
            b = self.backends[self.choose(pkt.ipv4_src, pkt.l4_src)]
            forward = (("set_field", "eth_dst", b.mac), ("set_field", "ipv4_dst", b.ip),
                       ("set_field", "tcp_dst", b.port), ("output", "normal"))
            back = (("set_field", "eth_src", self.vmac), ("set_field", "ipv4_src", self.vip),
                    ("set_field", "tcp_src", self.port), ("output", "normal"))
            common = {"priority": FLOW_PRIORITY, "cookie": COOKIE, "idle_timeout_s": self.idle_timeout_s}
            d.add_flow(pkt.dpid, FlowMod("add", actions=forward, **common, match=match_of(
                eth_type=ETH_IPV4, ip_proto=IPPROTO_TCP, ipv4_src=pkt.ipv4_src, tcp_src=pkt.l4_src,
                ipv4_dst=self.vip, tcp_dst=self.port)))
            d.add_flow(pkt.dpid, FlowMod("add", actions=back, **common, match=match_of(
                eth_type=ETH_IPV4, ip_proto=IPPROTO_TCP, ipv4_src=b.ip, tcp_src=b.port,
                ipv4_dst=pkt.ipv4_src, tcp_dst=pkt.l4_src)))
            d.send(pkt.dpid, PacketOut(pkt.in_port, forward))
            return d
        # Nothing else is punted; should a stray frame come, the switch forwards it.
        d.send(pkt.dpid, PacketOut(pkt.in_port, (("output", "normal"),)))
        return d

    def request(self, req: dict) -> tuple[Decision, dict]:
        """``status``: the policy, the spread and every connection's backend; ``reset``:
        forget every connection (their flows deleted, round robin back to the first
        backend), as if the switches had just connected."""
        if req.get("op") == "reset":
            self.assigned.clear()
            self._next, self.strays = 0, 0
            d = Decision()
            for dpid in sorted(self.switches):
                d.extend(self.connected(dpid))
            return d, {"switches": len(self.switches)}
        if req.get("op") != "status":
            raise ValueError(f"op {req.get('op')!r}: allowed status, reset")
        return Decision(), {"policy": self.policy, "spread": self.spread(), "strays": self.strays,
                            "backends": [b.ip for b in self.backends],
                            "connections": [[ip, port, i] for (ip, port), i in self.assigned.items()]}
