"""routed_path with a deep netem queue in both directions, for bulk transfers.

::

    h1 10.0.1.2 ---- 10.0.1.1 [r1] 10.0.2.1 ---- 10.0.2.2 h2
      client          netem on r1's egresses           server
                  r1-eth0: rtt_ms/2, limit queue_pkts   (data toward h1)
                  r1-eth1: rtt_ms/2, limit queue_pkts   (ACKs toward h2)

Why not ``routed_path``: netem holds every packet for its whole delay, so its
``limit`` (1000 packets by default) is the number of packets that may be in
flight through it at once.  A slow-start round is one burst of up to cwnd
segments, all inside netem for rtt_ms/2; in routed_path the data direction
(r1 -> h1) keeps the default 1000 and a 10 MiB transfer's 8th round (1280
segments) would be dropped at the router, not by anything TCP does.  Here
both directions get ``queue_pkts`` (default 100000: more than the segments of
any transfer the experiments make, so netem never drops).  No rate limit:
the path's only property is its delay.  RTT = rtt_ms.
"""
from mininet.topo import Topo

DEEP_QUEUE_PKTS = 100_000


class RoutedPathDeep(Topo):
    def build(self, rtt_ms: float = 0.0, queue_pkts: int = DEEP_QUEUE_PKTS):
        h1 = self.addHost("h1", routes=[("default", "10.0.1.1")])
        h2 = self.addHost("h2", routes=[("default", "10.0.2.1")])
        r1 = self.addHost("r1", router=True)
        half = rtt_ms / 2.0
        self.addLink(h1, r1, params1={"ip": "10.0.1.2/24"},
                     params2={"ip": "10.0.1.1/24", "delay_ms": half, "queue_pkts": queue_pkts})
        self.addLink(r1, h2, params1={"ip": "10.0.2.1/24", "delay_ms": half,
                                      "queue_pkts": queue_pkts},
                     params2={"ip": "10.0.2.2/24"})


TOPOLOGY = RoutedPathDeep
