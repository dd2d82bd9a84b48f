"""Two hosts at the ends of a line of N switches (an OpenFlow lab's switches).

::

    h1 -- s1 -- s2 -- ... -- sN -- h2

h1 = 10.0.0.1, h2 = 10.0.0.2 (one /24).  On every switch port 1 faces h1's end and
port 2 faces h2's (links are added in that order), so a frame crossing the line
meets every switch once.  No shaping: what differs between the first packet of a
flow and the next is the controller, not the links.
"""
from mininet.topo import Topo

MAX_SWITCHES = 8


class SwitchLine(Topo):
    def build(self, switches: int = 2):
        if not 1 <= int(switches) <= MAX_SWITCHES:
            raise ValueError(f"switches={switches}: allowed 1 to {MAX_SWITCHES}")
        h1 = self.addHost("h1")
        chain = [self.addSwitch(f"s{i}") for i in range(1, int(switches) + 1)]
        h2 = self.addHost("h2")
        self.addLink(h1, chain[0], params1={"ip": "10.0.0.1/24"})
        for a, b in zip(chain, chain[1:], strict=False):
            self.addLink(a, b)
        self.addLink(h2, chain[-1], params1={"ip": "10.0.0.2/24"})


TOPOLOGY = SwitchLine
