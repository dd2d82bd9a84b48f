"""router_chain: two hosts joined by a chain of n routers with static routes, the lab of
"what is a hop?": traceroute shows every router, a TTL runs out on the way, a link taken
down in the middle cuts the path, and a delay added anywhere adds to every round trip.

::

    h1 --- r1 --- r2 --- ... --- rn --- h2
       link 0  link 1        link n-1  link n

    link k is 10.0.k.0/24: its left end is 10.0.k.1, its right end 10.0.k.2
    h1 = 10.0.0.1 (default via r1), h2 = 10.0.n.2 (default via rn)
    ri: towards h2 by its default route, towards h1 by one summary route per CIDR block

Try: ``h1 traceroute -n h2``, ``link r2 r3 down`` then ``h1 ping -c1 -W1 h2``,
``link r1 r2 delay=40ms`` then ``h1 ping -c3 h2`` (80 ms more per round trip),
``sysctl r2 net.ipv4.ip_forward=0``, ``r2 ip route``.

Run it: ``sudo wirelab up router_chain --set n=5`` or ``sudo .venv/bin/python
topologies/router_chain.py n=5``.  Stock ``mn --custom topologies/router_chain.py --topo
router_chain,5`` builds the same nodes, links and addresses but not the routers: Mininet's
hosts ignore the ``router`` and ``routes`` options, so nothing forwards.
"""
import ipaddress
import sys

from mininet.topo import Topo

from wirelab.spec import Param

PARAMS = [
    Param("n", default=3, min=1, max=50, type=int, help="routers in the chain"),
    Param("delay_ms", default=0, min=0, max=10_000,
          help="one-way delay added on every link, each direction, ms"),
]


def left_blocks(i: int) -> list[str]:
    """The CIDR blocks covering links 0 .. i-2 (what lies to the left of router i's left
    neighbour's link): 10.0.0.0 - 10.0.(i-2).255."""
    if i < 2:
        return []
    first, last = ipaddress.IPv4Address("10.0.0.0"), ipaddress.IPv4Address(f"10.0.{i - 2}.255")
    return [str(net) for net in ipaddress.summarize_address_range(first, last)]


class RouterChain(Topo):
    def build(self, n: int = 3, delay_ms: float = 0.0):
        n = int(n)
        names = ["h1"] + [f"r{i}" for i in range(1, n + 1)] + ["h2"]
        self.addHost("h1", routes=[("default", "10.0.0.2")])
        for i in range(1, n + 1):
            routes = [(block, f"10.0.{i - 1}.1") for block in left_blocks(i)]
            if i < n:
                routes.append(("default", f"10.0.{i}.2"))
            self.addHost(f"r{i}", router=True, routes=routes)
        self.addHost("h2", routes=[("default", f"10.0.{n}.1")])
        shaping = {"delay_ms": delay_ms} if delay_ms else {}
        for k in range(n + 1):
            self.addLink(names[k], names[k + 1],
                         params1={"ip": f"10.0.{k}.1/24", **shaping},
                         params2={"ip": f"10.0.{k}.2/24", **shaping})


TOPOLOGY = RouterChain
topos = {"router_chain": RouterChain}

if __name__ == "__main__":
    from wirelab.cli import topology_main
    sys.exit(topology_main(__file__, sys.argv[1:]))
