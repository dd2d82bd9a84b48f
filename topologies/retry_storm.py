"""retry_storm: clients reach a service through one device of bounded capacity (the
"NAT device" of AWS's December 2021 outage), and two monitors watch the service, one
through that device and one over a path of its own.
::

    c1 .. cN ---+                                      10.0.1.0/24: clients .11 .., mon .100
    mon --------+-- s1 -- r1 ==[ tbf device_mbps ]==> srv        r1 .1; r1-srv 10.0.2.0/24
                                                       |        (r1 .1, srv .2)
                                                      oob       oob-srv 10.0.3.0/24 (oob .1, srv .2)

The device r1 forwards and shapes what goes to the service (a tbf of device_mbps with a
queue of queue_pkts frames); the answers come back unshaped.

Try: ``sudo wirelab up retry_storm``, then ``c1 ping -c2 srv``, ``oob ping -c2 10.0.3.2``,
``link r1 srv rate=1mbit``.
"""
import sys

from mininet.topo import Topo

from wirelab.spec import Param

PARAMS = [
    Param("clients_count", default=4, min=1, max=16, type=int, help="client hosts"),
    Param("device_mbps", default=8.0, min=0.1, max=1000.0,
          help="the device's capacity toward the service, Mbit/s"),
    Param("device_queue_pkts", default=50, min=2, max=10_000, type=int, help="the device's queue, frames"),
]


class RetryStorm(Topo):
    def build(self, clients_count: int = 4, device_mbps: float = 8.0, device_queue_pkts: int = 50):
        s1 = self.addSwitch("s1")
        # the service's out-of-band address too, so its name (first address: 10.0.3.2)
        # answers from the clients' side; the oob host's own link stays the only other path
        self.addHost("r1", router=True, routes=[("10.0.3.0/24", "10.0.2.2")])
        self.addLink("r1", s1, params1={"ip": "10.0.1.1/24"})
        for i in range(1, int(clients_count) + 1):
            self.addHost(f"c{i}", routes=[("default", "10.0.1.1")])
            self.addLink(f"c{i}", s1, params1={"ip": f"10.0.1.{10 + i}/24"})
        self.addHost("mon", routes=[("default", "10.0.1.1")])
        self.addLink("mon", s1, params1={"ip": "10.0.1.100/24"})
        self.addHost("srv", routes=[("default", "10.0.2.1")])
        self.addLink("r1", "srv", params1={"ip": "10.0.2.1/24", "bw_mbps": float(device_mbps),
                                           "queue_pkts": int(device_queue_pkts)},
                     params2={"ip": "10.0.2.2/24"})
        self.addHost("oob")
        self.addLink("oob", "srv", params1={"ip": "10.0.3.1/24"}, params2={"ip": "10.0.3.2/24"})


TOPOLOGY = RetryStorm
topos = {"retry_storm": RetryStorm}

if __name__ == "__main__":
    from wirelab.cli import topology_main
    sys.exit(topology_main(__file__, sys.argv[1:]))
