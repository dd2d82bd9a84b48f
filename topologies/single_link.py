"""Two hosts joined by one shaped link.

::

    h1 (10.0.0.1) ---[ delay_ms, loss_pct, bw_mbps ]--- h2 (10.0.0.2)

The shaping applies on both ends, so the round-trip time is 2 x delay_ms.
"""
from mininet.topo import Topo


class SingleLink(Topo):
    def build(self, delay_ms: float = 0.0, jitter_ms: float = 0.0, loss_pct: float = 0.0,
              bw_mbps: float | None = None, queue_pkts: int | None = None):
        h1 = self.addHost("h1")
        h2 = self.addHost("h2")
        self.addLink(h1, h2, delay_ms=delay_ms, jitter_ms=jitter_ms, loss_pct=loss_pct,
                     bw_mbps=bw_mbps, queue_pkts=queue_pkts,
                     params1={"ip": "10.0.0.1/24"}, params2={"ip": "10.0.0.2/24"})


TOPOLOGY = SingleLink
