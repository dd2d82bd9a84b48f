"""A client, a web server one RTT away and a caching resolver behind its own
link, with an authoritative server behind the resolver.

::

    h1 10.0.1.2 --- 10.0.1.1 [r1] 10.0.5.1 ===== 10.0.5.2 [r2] 10.0.2.1 --- 10.0.2.2 h2
     client               |        rtt_ms/2 each way,             web server
                          |        on r1's and r2's egress
                          | 10.0.3.1   r1 egress: rdns_ms (queries)
                          |
                          | 10.0.3.2
                         d1  caching resolver
                          | 10.0.4.1
                          |
                          | 10.0.4.2   d2 egress: auth_rtt_ms (replies)
                         d2  authoritative server

Every delay sits where no measured process sends: on the routers' egresses
(TCP small queues would add to a delay on a sender's own egress) and, for
the resolver's own upstream, on the authoritative server's (it is part of
the network as far as a measurement is concerned).  A packet tap records an
outgoing packet after the egress qdisc, so a delay on d1's own egress would
look like d1's processing.  A round trip is all that matters for the
predictions, so each of the DNS links carries its whole RTT in one
direction.  The client's access link is unshaped, so a DNS exchange h1 <->
d1 sees only the resolver link's delay: RTT(h1, h2) = rtt_ms, RTT(h1, d1) =
rdns_ms, RTT(d1, d2) = auth_rtt_ms.  With ``resolver=False`` d1 and d2 are
left out.
"""
from mininet.topo import Topo


class WebWithResolver(Topo):
    def build(self, rtt_ms: float = 0.0, rdns_ms: float = 0.0, auth_rtt_ms: float = 0.0,
              resolver: bool = True):
        h1 = self.addHost("h1", routes=[("default", "10.0.1.1")])
        r1 = self.addHost("r1", router=True, routes=[("10.0.2.0/24", "10.0.5.2")])
        r2 = self.addHost("r2", router=True, routes=[("default", "10.0.5.1")])
        h2 = self.addHost("h2", routes=[("default", "10.0.2.1")])
        half = rtt_ms / 2.0
        self.addLink(h1, r1, params1={"ip": "10.0.1.2/24"}, params2={"ip": "10.0.1.1/24"})
        self.addLink(r1, r2, params1={"ip": "10.0.5.1/24", "delay_ms": half},
                     params2={"ip": "10.0.5.2/24", "delay_ms": half})
        self.addLink(r2, h2, params1={"ip": "10.0.2.1/24"}, params2={"ip": "10.0.2.2/24"})
        if not resolver:
            return      # names come from the client's hosts file: no DNS servers
        d1 = self.addHost("d1", routes=[("default", "10.0.3.1")])
        d2 = self.addHost("d2", routes=[("default", "10.0.4.1")])
        self.addLink(r1, d1, params1={"ip": "10.0.3.1/24", "delay_ms": rdns_ms},
                     params2={"ip": "10.0.3.2/24"})
        self.addLink(d1, d2, params1={"ip": "10.0.4.1/24"},
                     params2={"ip": "10.0.4.2/24", "delay_ms": auth_rtt_ms})


TOPOLOGY = WebWithResolver
