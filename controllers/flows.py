"""What a controller decides, as plain data: the flow changes and packet-outs an
app's logic returns, and the facts of a packet-in it decides on.

The logic modules (learning_switch, partition, load_balancer) import only this
module, never os-ken, so they are tested with no switch and no os-ken; ofadapter.py
is the one place that turns these into OpenFlow 1.3 messages.

Match fields use OpenFlow 1.3's OXM names as Ryu and os-ken spell them (``in_port``,
``eth_dst``, ``eth_type``, ``ipv4_src``, ``ip_proto``, ``tcp_dst``, ``arp_tpa``...).
Actions are tuples:

- ``("output", PORT)``: PORT a port number or one of ``"flood"``, ``"controller"``,
  ``"normal"`` (the switch's own L2 forwarding), ``"in_port"``;
- ``("set_field", FIELD, VALUE)``: rewrite a header field (OXM name).

An empty action list drops.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
IPPROTO_TCP = 6
IPPROTO_UDP = 17
BROADCAST = "ff:ff:ff:ff:ff:ff"

Action = tuple[Any, ...]


def match_of(**fields: Any) -> tuple[tuple[str, Any], ...]:
    """A match as a sorted tuple of (OXM field, value): hashable and order-free."""
    return tuple(sorted(fields.items()))


@dataclass(frozen=True)
class FlowMod:
    """Add a flow, or delete the flows a match and cookie select (``command="delete"``:
    every flow whose cookie equals COOKIE and whose match includes MATCH, any priority)."""
    command: str                          # "add" or "delete"
    match: tuple[tuple[str, Any], ...] = ()
    priority: int = 0
    actions: tuple[Action, ...] = ()
    cookie: int = 0
    idle_timeout_s: int = 0
    hard_timeout_s: int = 0

    def __post_init__(self) -> None:
        if self.command not in ("add", "delete"):
            raise ValueError(f"FlowMod command {self.command!r}: allowed add, delete")

    @property
    def fields(self) -> dict[str, Any]:
        return dict(self.match)


@dataclass(frozen=True)
class PacketOut:
    """Send a packet out of the switch: the one that came in (DATA empty: the adapter
    resends the packet-in's own bytes or buffer) or one the logic built (DATA)."""
    in_port: int | str
    actions: tuple[Action, ...]
    data: bytes = b""


@dataclass(frozen=True)
class Packet:
    """The facts of a packet-in the logic decides on (headers up to layer 4)."""
    dpid: int
    in_port: int
    eth_src: str
    eth_dst: str
    eth_type: int
    ipv4_src: str | None = None
    ipv4_dst: str | None = None
    ip_proto: int | None = None
    l4_src: int | None = None
    l4_dst: int | None = None
    tcp_flags: int | None = None
    arp_op: int | None = None
    arp_spa: str | None = None
    arp_tpa: str | None = None
    arp_sha: str | None = None


@dataclass
class Decision:
    """What to do about one event: flow changes per datapath id, then packet-outs."""
    flows: dict[int, list[FlowMod]] = field(default_factory=dict)
    packet_outs: dict[int, list[PacketOut]] = field(default_factory=dict)

    def add_flow(self, dpid: int, mod: FlowMod) -> None:
        self.flows.setdefault(dpid, []).append(mod)

    def send(self, dpid: int, out: PacketOut) -> None:
        self.packet_outs.setdefault(dpid, []).append(out)

    def extend(self, other: Decision) -> None:
        for dpid, mods in other.flows.items():
            self.flows.setdefault(dpid, []).extend(mods)
        for dpid, outs in other.packet_outs.items():
            self.packet_outs.setdefault(dpid, []).extend(outs)


# --- bytes <-> facts -------------------------------------------------------------------

def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def mac_bytes(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def ip_text(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def ip_bytes(text: str) -> bytes:
    parts = [int(p) for p in text.split(".")]
    if len(parts) != 4 or not all(0 <= p <= 255 for p in parts):
        raise ValueError(f"not an IPv4 address: {text!r}")
    return bytes(parts)


def parse(data: bytes, dpid: int, in_port: int) -> Packet:
    """The header facts of an Ethernet frame (no VLAN tags: labs use none).  A frame
    cut short yields the facts it has."""
    if len(data) < 14:
        raise ValueError(f"frame of {len(data)} bytes is shorter than an Ethernet header")
    eth_type = struct.unpack_from("!H", data, 12)[0]
    facts: dict[str, Any] = {"dpid": dpid, "in_port": in_port, "eth_dst": mac_text(data[0:6]),
                             "eth_src": mac_text(data[6:12]), "eth_type": eth_type}
    body = data[14:]
    if eth_type == ETH_ARP and len(body) >= 28:
        facts.update(arp_op=struct.unpack_from("!H", body, 6)[0], arp_sha=mac_text(body[8:14]),
                     arp_spa=ip_text(body[14:18]), arp_tpa=ip_text(body[24:28]))
    elif eth_type == ETH_IPV4 and len(body) >= 20:
        ihl = (body[0] & 0x0F) * 4
        proto = body[9]
        facts.update(ipv4_src=ip_text(body[12:16]), ipv4_dst=ip_text(body[16:20]), ip_proto=proto)
        l4 = body[ihl:]
        if proto in (IPPROTO_TCP, IPPROTO_UDP) and len(l4) >= 4:
            facts.update(l4_src=struct.unpack_from("!H", l4, 0)[0],
                         l4_dst=struct.unpack_from("!H", l4, 2)[0])
            if proto == IPPROTO_TCP and len(l4) >= 14:
                facts["tcp_flags"] = l4[13]
    return Packet(**facts)


def arp_reply(*, sender_mac: str, sender_ip: str, target_mac: str, target_ip: str) -> bytes:
    """An Ethernet frame carrying the ARP reply 'SENDER_IP is at SENDER_MAC' to TARGET."""
    eth = mac_bytes(target_mac) + mac_bytes(sender_mac) + struct.pack("!H", ETH_ARP)
    arp = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 2) + mac_bytes(sender_mac) + ip_bytes(sender_ip) \
        + mac_bytes(target_mac) + ip_bytes(target_ip)
    return eth + arp
