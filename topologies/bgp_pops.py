"""bgp_pops: a small backbone of points of presence (PoPs) running BGP in FRR, the ground
for routing incidents: each PoP originates its own /24 with a host in it, the PoPs
share them over a full iBGP mesh (AS 65000), and one PoP (atl) also has an eBGP
transit peer that brings "the internet" (198.51.100.0/24, AS 64999).

::

         h-sjc          h-ord               every PoP: LAN 10.<i>.0.0/24, router .1,
           |              |                 host .10; pops in AS 65000, a full mesh
          sjc ---------- ord                of backbone links 10.254.<8i+j>.0/30
           |  \\        /  |                 (i < j; i's end .1, j's end .2), one
           |    \\    /    |                 iBGP session per link, next-hop-self
           |      \\/      |
           |      /\\      |                 transit (AS 64999) -- atl: eBGP over
          atl ---------- ewr                10.253.0.0/30, transit's LAN
           |  \\           |                 198.51.100.0/24 with h-inet (.10)
         h-atl transit   h-ewr
                 |
               h-inet

    PoP names in order: sjc, atl, ord, ewr, lax, iad, sea, mia (pops = 3 to 8).

Try: ``sjc vtysh -c 'show ip bgp summary'``, ``ord vtysh -c 'show ip bgp'``, ``h-sjc
traceroute -n h-ewr``, ``link sjc ewr down`` and watch the route move after the hold
time (9 s here) in ``sjc ip route``, ``h-ord ping -c2 h-inet`` (via atl's transit).

Run it: ``sudo wirelab up bgp_pops`` (``--set pops=3``).  Stock ``mn --custom
topologies/bgp_pops.py --topo bgp_pops`` builds the nodes, links and addresses, but runs
no FRR and so routes nothing between PoPs.
"""
import sys

from mininet.topo import Topo

from wirelab.spec import Param

NAMES = ("sjc", "atl", "ord", "ewr", "lax", "iad", "sea", "mia")
PARAMS = [
    Param("pops", default=4, min=3, max=len(NAMES), type=int, help="PoPs in the backbone"),
    Param("backbone_ms", default=0, min=0, max=10_000,
          help="one-way delay on every backbone link, each direction, ms"),
]
BACKBONE_AS, TRANSIT_AS = 65000, 64999


def link_net(i: int, j: int) -> str:
    return f"10.254.{8 * i + j}"


class BgpPops(Topo):
    def build(self, pops: int = 4, backbone_ms: float = 0.0):
        pops = int(pops)
        names = NAMES[:pops]
        neighbors: dict[str, list] = {n: [] for n in names}
        for i in range(pops):
            for j in range(i + 1, pops):
                net = link_net(i, j)
                neighbors[names[i]].append({"address": f"{net}.2", "asn": BACKBONE_AS,
                                            "next_hop_self": True})
                neighbors[names[j]].append({"address": f"{net}.1", "asn": BACKBONE_AS,
                                            "next_hop_self": True})
        neighbors["atl"].append({"address": "10.253.0.2", "asn": TRANSIT_AS})
        for i, name in enumerate(names, start=1):
            self.addHost(name, router=True, frr={
                "asn": BACKBONE_AS, "router_id": f"10.255.255.{i}",
                "neighbors": neighbors[name], "networks": [f"10.{i}.0.0/24"]})
            self.addHost(f"h-{name}", routes=[("default", f"10.{i}.0.1")])
            self.addLink(name, f"h-{name}", params1={"ip": f"10.{i}.0.1/24"},
                         params2={"ip": f"10.{i}.0.10/24"})
        shaping = {"delay_ms": backbone_ms} if backbone_ms else {}
        for i in range(pops):
            for j in range(i + 1, pops):
                net = link_net(i, j)
                self.addLink(names[i], names[j], params1={"ip": f"{net}.1/30", **shaping},
                             params2={"ip": f"{net}.2/30", **shaping})
        self.addHost("transit", router=True, frr={
            "asn": TRANSIT_AS, "router_id": "10.255.255.100",
            "neighbors": [{"address": "10.253.0.1", "asn": BACKBONE_AS}],
            "networks": ["198.51.100.0/24"]})
        self.addHost("h-inet", routes=[("default", "198.51.100.1")])
        self.addLink("atl", "transit", params1={"ip": "10.253.0.1/30"},
                     params2={"ip": "10.253.0.2/30"})
        self.addLink("transit", "h-inet", params1={"ip": "198.51.100.1/24"},
                     params2={"ip": "198.51.100.10/24"})


TOPOLOGY = BgpPops
topos = {"bgp_pops": BgpPops}

if __name__ == "__main__":
    from wirelab.cli import topology_main
    sys.exit(topology_main(__file__, sys.argv[1:]))
