"""N senders and N receivers on either side of one shaped bottleneck.

::

    h1 --+                                         +-- h(N+1)
    h2 --+-- s1 ==[ bottleneck: bw_mbps,  ]== s2 --+-- h(N+2)
    ...  |         delay_ms, loss_pct,             |   ...
    hN --+         queue_pkts (s1 egress)          +-- h(2N)

All hosts share 10.0.0.0/24 (h_i = 10.0.0.i).  The bottleneck's shaping is on
s1's egress toward s2 (the data direction), with ``delay_ms`` on both ends so
the base RTT is 2 x delay_ms.  Access links are unshaped.
"""
from mininet.topo import Topo


class Dumbbell(Topo):
    def build(self, pairs: int = 1, delay_ms: float = 0.0, loss_pct: float = 0.0,
              bw_mbps: float | None = None, queue_pkts: int | None = None):
        s1 = self.addSwitch("s1")
        s2 = self.addSwitch("s2")
        self.addLink(s1, s2, params1={"delay_ms": delay_ms, "loss_pct": loss_pct,
                                      "bw_mbps": bw_mbps, "queue_pkts": queue_pkts},
                     params2={"delay_ms": delay_ms})
        for i in range(1, 2 * pairs + 1):
            h = self.addHost(f"h{i}")
            self.addLink(h, s1 if i <= pairs else s2, params1={"ip": f"10.0.0.{i}/24"})


TOPOLOGY = Dumbbell
