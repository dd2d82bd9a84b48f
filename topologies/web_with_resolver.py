"""A client, a web server one RTT away and a caching resolver behind its own
link, with an authoritative server behind the resolver.

::

    h1 10.0.1.2 --- 10.0.1.1 [r1] 10.0.5.1 ===== 10.0.5.2 [r2] 10.0.2.1 --- 10.0.2.2 h2
     client               |        rtt_ms/2 each way,             web server
                          |        on r1's and r2's egress
                          | 10.0.3.1   r1 egress: rdns_ms/2
                          |
                          | 10.0.3.2   d1 egress: rdns_ms/2 (UDP replies only)
                         d1  caching resolver
                          | 10.0.4.1   d1 egress: auth_rtt_ms/2 (UDP queries only)
                          |
                          | 10.0.4.2   d2 egress: auth_rtt_ms/2 (UDP replies only)
                         d2  authoritative server

The client-server delay sits on the two routers' egresses, never on an end
host's own egress (TCP small queues would add to it); the client's access
link is unshaped, so a DNS exchange h1 <-> d1 sees only the resolver link's
delay: RTT(h1, h2) = rtt_ms, RTT(h1, d1) = rdns_ms, RTT(d1, d2) =
auth_rtt_ms.  With ``resolver=False`` d1 and d2 are left out.  The resolver link's other half and the authoritative link sit
on d1's and d2's egress: they carry only UDP DNS, which has no small-queue
accounting, so that is harmless there.
"""
from mininet.topo import Topo


class WebWithResolver(Topo):
    def build(self, rtt_ms: float = 0.0, rdns_ms: float = 0.0, auth_rtt_ms: float = 0.0,
              resolver: bool = True):
        h1 = self.addHost("h1", routes=[("default", "10.0.1.1")])
        r1 = self.addHost("r1", router=True, routes=[("10.0.2.0/24", "10.0.5.2")])
        r2 = self.addHost("r2", router=True, routes=[("default", "10.0.5.1")])
        h2 = self.addHost("h2", routes=[("default", "10.0.2.1")])
        half, dhalf, ahalf = rtt_ms / 2.0, rdns_ms / 2.0, auth_rtt_ms / 2.0
        self.addLink(h1, r1, params1={"ip": "10.0.1.2/24"}, params2={"ip": "10.0.1.1/24"})
        self.addLink(r1, r2, params1={"ip": "10.0.5.1/24", "delay_ms": half},
                     params2={"ip": "10.0.5.2/24", "delay_ms": half})
        self.addLink(r2, h2, params1={"ip": "10.0.2.1/24"}, params2={"ip": "10.0.2.2/24"})
        if not resolver:
            return      # names come from the client's hosts file: no DNS servers
        d1 = self.addHost("d1", routes=[("default", "10.0.3.1")])
        d2 = self.addHost("d2", routes=[("default", "10.0.4.1")])
        self.addLink(r1, d1, params1={"ip": "10.0.3.1/24", "delay_ms": dhalf},
                     params2={"ip": "10.0.3.2/24", "delay_ms": dhalf})
        self.addLink(d1, d2, params1={"ip": "10.0.4.1/24", "delay_ms": ahalf},
                     params2={"ip": "10.0.4.2/24", "delay_ms": ahalf})


TOPOLOGY = WebWithResolver
