"""memcached_reflection: an attacker, an open memcached reflector and a web server on an
ISP's router, which does no source-address validation (no BCP 38); a victim behind its
edge router on an access link of access_mbps.
::

    atk  10.0.1.2 --+  (tbf 1 Mbit/s)
    mc   10.0.2.2 --+-- isp -- 10.0.4.0/24 -- edge ==[ tbf access_mbps ]==> vic 10.0.5.2
    web  10.0.3.2 --+  (mc: tbf reflector_mbps)

The attacker's and the reflector's own links are capped (tbf, a queue deep enough to pace a
whole response without a drop) so a flood here never exceeds reflector_mbps (at most 100
Mbit/s): every spoofed packet and every reflected one stays in these namespaces.  The
access link is the victim's bottleneck, as GitHub's transit links were.

Try: ``sudo wirelab up memcached_reflection``, then ``vic ping -c2 web``,
``link edge vic rate=5mbit``.
"""
import sys

from mininet.topo import Topo

from wirelab.spec import Param

PARAMS = [
    Param("access_mbps", default=20.0, min=1.0, max=100.0, help="the victim's access link, Mbit/s"),
    Param("access_queue_pkts", default=100, min=2, max=10_000, type=int,
          help="the access link's queue at the edge, frames"),
    Param("reflector_mbps", default=50.0, min=1.0, max=100.0,
          help="the cap on the reflector's own link, Mbit/s (a flood never exceeds it)"),
]
ATTACKER_MBPS = 1.0
#: The caps' queue: deep enough for a whole 10-key response of 1 MiB values (7,533 datagrams).
#: memcached sizes its UDP send buffer to twice net.core.wmem_max (a binary search): with a
#: 4 MiB wmem_max it hands the kernel 8 MiB at a time, which a shallow queue would drop at
#: the cap itself; with this one the cap paces the reflector and drops nothing.
CAP_QUEUE_PKTS = 12_000


class MemcachedReflection(Topo):
    def build(self, access_mbps: float = 20.0, access_queue_pkts: int = 100,
              reflector_mbps: float = 50.0):
        isp = self.addHost("isp", router=True, routes=[("10.0.5.0/24", "10.0.4.2")])
        for i, (name, mbps) in enumerate((("atk", ATTACKER_MBPS), ("mc", float(reflector_mbps)),
                                          ("web", None)), start=1):
            self.addHost(name, routes=[("default", f"10.0.{i}.1")])
            self.addLink(name, isp, params1={"ip": f"10.0.{i}.2/24", "bw_mbps": mbps,
                                             "queue_pkts": CAP_QUEUE_PKTS if mbps else None},
                         params2={"ip": f"10.0.{i}.1/24"})
        self.addHost("edge", router=True, routes=[("default", "10.0.4.1")])
        self.addLink(isp, "edge", params1={"ip": "10.0.4.1/24"}, params2={"ip": "10.0.4.2/24"})
        self.addHost("vic", routes=[("default", "10.0.5.1")])
        self.addLink("edge", "vic", params1={"ip": "10.0.5.1/24", "bw_mbps": float(access_mbps),
                                             "queue_pkts": int(access_queue_pkts)},
                     params2={"ip": "10.0.5.2/24"})


TOPOLOGY = MemcachedReflection
topos = {"memcached_reflection": MemcachedReflection}

if __name__ == "__main__":
    from wirelab.cli import topology_main
    sys.exit(topology_main(__file__, sys.argv[1:]))
