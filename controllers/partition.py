"""A partition injector, as pure logic (the os-ken app is partition_app.py): on
request, drop every IPv4 packet and ARP frame between groups of hosts, on every switch,
until healed.  Forwarding otherwise is the learning switch's.

Groups are lists of IPv4 addresses or prefixes (``"10.0.0.1"``, ``"10.0.1.0/24"``).
``isolate([[a], [b, c]])`` cuts a off from b and c both ways; with ``one_way=True``
only what the first group sends to the others is dropped (the others' packets still
reach it: a one-way partition).  A new isolate replaces the previous one; ``heal``
removes it.  The drops sit above the learning switch's flows, so established flows
are cut too.

Requests (JSON over the app's control socket; the F8 fault timeline sends them)::

    {"op": "isolate", "groups": [["10.0.0.1"], ["10.0.0.2"]], "one_way": false}
    {"op": "heal"}
    {"op": "status"}
"""
from __future__ import annotations

import ipaddress
from typing import Any

from wirelab.controllers.flows import ETH_ARP, ETH_IPV4, Decision, FlowMod, match_of

COOKIE = 0x5A
PRIORITY = 1000


def _field_value(member: str) -> Any:
    """An OXM value for an address (``"10.0.0.1"``) or a prefix (``("10.0.1.0",
    "255.255.255.0")``, os-ken's masked form)."""
    net = ipaddress.ip_network(member, strict=True)
    if net.prefixlen == 32:
        return str(net.network_address)
    return (str(net.network_address), str(net.netmask))


class Partition:
    """The partition in force and the drop flows it takes on each switch."""

    def __init__(self) -> None:
        self.dpids: set[int] = set()
        self.groups: list[list[str]] = []
        self.one_way = False

    @staticmethod
    def validate(groups: Any) -> list[list[str]]:
        """GROUPS as lists of normalized addresses/prefixes; ValueError naming what is
        wrong (fewer than two groups, an empty one, a bad address, a host in two)."""
        if not isinstance(groups, list) or len(groups) < 2:
            raise ValueError(f"groups {groups!r}: need a list of at least two groups")
        out: list[list[str]] = []
        seen: list[ipaddress.IPv4Network] = []
        for g in groups:
            if not isinstance(g, list) or not g:
                raise ValueError(f"group {g!r}: need a non-empty list of IPv4 addresses or prefixes")
            members = []
            for m in g:
                try:
                    net = ipaddress.IPv4Network(str(m), strict=True)
                except ValueError as e:
                    raise ValueError(f"group member {m!r}: {e}") from e
                if any(net.overlaps(s) for s in seen):
                    raise ValueError(f"group member {m!r} is in more than one group")
                seen.append(net)
                members.append(str(net) if net.prefixlen < 32 else str(net.network_address))
            out.append(members)
        return out

    def drop_flows(self) -> list[FlowMod]:
        """The drops for the partition in force (the same on every switch)."""
        mods = []
        pairs = [(0, j) for j in range(1, len(self.groups))] if self.one_way else \
            [(i, j) for i in range(len(self.groups)) for j in range(len(self.groups)) if i != j]
        for i, j in pairs:
            for src in self.groups[i]:
                for dst in self.groups[j]:
                    s, t = _field_value(src), _field_value(dst)
                    for m in (match_of(eth_type=ETH_IPV4, ipv4_src=s, ipv4_dst=t),
                              match_of(eth_type=ETH_ARP, arp_spa=s, arp_tpa=t)):
                        mods.append(FlowMod("add", match=m, priority=PRIORITY, cookie=COOKIE))
        return mods

    def connected(self, dpid: int) -> Decision:
        """A switch (re)connected: it gets the partition in force."""
        self.dpids.add(dpid)
        d = Decision()
        d.add_flow(dpid, FlowMod("delete", cookie=COOKIE))
        for mod in self.drop_flows():
            d.add_flow(dpid, mod)
        return d

    def disconnected(self, dpid: int) -> None:
        self.dpids.discard(dpid)

    def isolate(self, groups: Any, one_way: bool = False) -> Decision:
        self.groups, self.one_way = self.validate(groups), bool(one_way)
        d = Decision()
        for dpid in sorted(self.dpids):
            d.extend(self.connected(dpid))
        return d

    def heal(self) -> Decision:
        self.groups, self.one_way = [], False
        d = Decision()
        for dpid in sorted(self.dpids):
            d.add_flow(dpid, FlowMod("delete", cookie=COOKIE))
        return d

    def status(self) -> dict:
        return {"groups": self.groups, "one_way": self.one_way, "switches": sorted(self.dpids),
                "drop_flows_per_switch": len(self.drop_flows())}

    def request(self, req: dict) -> tuple[Decision, dict]:
        """Handle one control request: the flow changes and the reply."""
        op = req.get("op")
        if op == "isolate":
            d = self.isolate(req.get("groups"), req.get("one_way", False))
        elif op == "heal":
            d = self.heal()
        elif op == "status":
            d = Decision()
        else:
            raise ValueError(f"op {op!r}: allowed isolate, heal, status")
        return d, self.status()
