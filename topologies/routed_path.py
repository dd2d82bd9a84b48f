"""A client and a server on two subnets, joined by one router that adds the
path's delay and loss.

::

    h1 10.0.1.2 ---- 10.0.1.1 [r1] 10.0.2.1 ---- 10.0.2.2 h2
      client           netem on r1's egress           server
                  r1-eth0: rtt_ms/2 toward h1
                  r1-eth1: rtt_ms/2 toward h2

The delay sits on the router, not on either end host's own egress, so what a
host queues locally (TCP small queues) never adds to it.  RTT = rtt_ms.
"""
from mininet.topo import Topo


class RoutedPath(Topo):
    def build(self, rtt_ms: float = 0.0, jitter_ms: float = 0.0, loss_pct: float = 0.0,
              bw_mbps: float | None = None, queue_pkts: int | None = None):
        h1 = self.addHost("h1", routes=[("default", "10.0.1.1")])
        h2 = self.addHost("h2", routes=[("default", "10.0.2.1")])
        r1 = self.addHost("r1", router=True)
        half = rtt_ms / 2.0
        # Loss and rate only toward the server (the data direction of most
        # experiments); delay split evenly over both directions.
        self.addLink(h1, r1, params1={"ip": "10.0.1.2/24"},
                     params2={"ip": "10.0.1.1/24", "delay_ms": half, "jitter_ms": jitter_ms})
        self.addLink(r1, h2, params1={"ip": "10.0.2.1/24", "delay_ms": half,
                                      "jitter_ms": jitter_ms, "loss_pct": loss_pct,
                                      "bw_mbps": bw_mbps, "queue_pkts": queue_pkts},
                     params2={"ip": "10.0.2.2/24"})


TOPOLOGY = RoutedPath
