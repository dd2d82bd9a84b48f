"""A learning switch, as pure logic (OpenFlow 1.3; the os-ken app is
learning_switch_app.py).

Every frame no flow matches goes to the controller (the table-miss flow).  The
controller learns which port each source MAC address sits behind, per switch; a frame
to a MAC it knows gets a flow (in port, source and destination MAC -> that port) and is
sent on, a frame to one it does not know is flooded.  The source is in the match so a
new host behind a port is still seen once by the controller and learned.

Control requests: ``status`` (packet-ins so far, per switch and EtherType, and the MACs
learned per switch) and ``forget`` (every switch back to its table-miss flow and an
empty table, as if it had just connected: the next frame of every flow is a packet-in
again).
"""
from __future__ import annotations

from wirelab.controllers.flows import Decision, FlowMod, Packet, PacketOut, match_of

#: cookie of this app's flows (ovs-ofctl dump-flows shows it)
COOKIE = 0x15
#: priority of learned flows; the partition injector's drops sit above it
PRIORITY = 10
#: packet-ins ``status`` lists (dpid, in port, source, destination, EtherType)
RECENT = 64


def is_multicast(mac: str) -> bool:
    """Group bit of the first octet: broadcast and multicast are never learned."""
    return bool(int(mac.split(":")[0], 16) & 1)


class LearningSwitch:
    """MAC tables of every switch and the flows they imply."""

    def __init__(self, idle_timeout_s: int = 60):
        self.idle_timeout_s = idle_timeout_s
        self.tables: dict[int, dict[str, int]] = {}
        self.packet_ins: dict[int, dict[int, int]] = {}     # dpid -> EtherType -> count
        self.recent: list[list] = []                         # the last RECENT packet-ins

    def connected(self, dpid: int) -> Decision:
        """A switch (re)connected: forget what was learned there, send every frame
        no flow matches to the controller."""
        self.tables[dpid] = {}
        d = Decision()
        d.add_flow(dpid, FlowMod("delete", cookie=COOKIE))
        d.add_flow(dpid, FlowMod("add", priority=0, cookie=COOKIE,
                                 actions=(("output", "controller"),)))
        return d

    def packet_in(self, pkt: Packet) -> Decision:
        seen = self.packet_ins.setdefault(pkt.dpid, {})
        seen[pkt.eth_type] = seen.get(pkt.eth_type, 0) + 1
        self.recent = [*self.recent[-(RECENT - 1):], [pkt.dpid, pkt.in_port, pkt.eth_src, pkt.eth_dst,
                                                       f"0x{pkt.eth_type:04x}"]]
        table = self.tables.setdefault(pkt.dpid, {})
        if not is_multicast(pkt.eth_src):
            table[pkt.eth_src] = pkt.in_port
        d = Decision()
        out = None if is_multicast(pkt.eth_dst) else table.get(pkt.eth_dst)
        if out is None:
            d.send(pkt.dpid, PacketOut(pkt.in_port, (("output", "flood"),)))
        elif out == pkt.in_port:
            pass  # the destination is behind the port it came from: nothing to forward
        else:
            actions = (("output", out),)
            d.add_flow(pkt.dpid, FlowMod(
                "add", priority=PRIORITY, cookie=COOKIE, idle_timeout_s=self.idle_timeout_s,
                match=match_of(in_port=pkt.in_port, eth_src=pkt.eth_src, eth_dst=pkt.eth_dst),
                actions=actions))
            d.send(pkt.dpid, PacketOut(pkt.in_port, actions))
        return d

    def request(self, req: dict) -> tuple[Decision, dict]:
        op = req.get("op")
        if op == "status":
            return Decision(), {
                "packet_ins": {str(dpid): {f"0x{t:04x}": n for t, n in sorted(by_type.items())}
                               for dpid, by_type in sorted(self.packet_ins.items())},
                "learned": {str(dpid): len(t) for dpid, t in sorted(self.tables.items())},
                "recent": self.recent}
        if op == "forget":
            d = Decision()
            for dpid in sorted(self.tables):
                d.extend(self.connected(dpid))
            return d, {"switches": len(self.tables)}
        raise ValueError(f"op {op!r}: allowed status, forget")
