"""home_nat: a home network behind a NAT gateway, the lab of "why can the web answer me
but not reach me?": private addresses, a gateway that rewrites them to its one public
address, the mappings it keeps (conntrack), and an internet with no route back in.

::

      lan1 192.168.1.10 --+
                          +-- s1 -- gw --------- isp --+-- s2 --+-- web 198.51.100.80
      lan2 192.168.1.11 --+      .1    203.0.113.2   .1          |   (nginx, port 80)
                            192.168.1.0/24   |   203.0.113.0/30  +-- dns 198.51.100.53
                                             NAT (MASQUERADE)         (dnsmasq: example.lab)
                                                   198.51.100.0/24, isp .1

    lan1, lan2: default via gw; gw: default via isp; web, dns: default via isp.
    isp knows 203.0.113.0/30 and 198.51.100.0/24 only: nothing routes to 192.168.1.0/24.

Try: ``lan1 curl -s http://web/``, then ``gw conntrack -L`` (lan1's private source and
port, and the gateway's public address and port); ``web tail -n2 $NGINX_DIR/access.log``
(the server saw only 203.0.113.2); ``web ping -c1 -W1 lan1`` fails (no route);
``lan1 dig +short www.example.lab``; ``gw iptables -t nat -L -n -v``.

Run it: ``sudo wirelab up home_nat``.  Stock ``mn --custom topologies/home_nat.py --topo
home_nat`` builds the nodes, switches, links and addresses, but no routes, no NAT and no
servers (Mininet's hosts ignore those options).
"""
import sys

from mininet.topo import Topo

from wirelab.spec import Param

PARAMS = [
    Param("isp_delay_ms", default=0, min=0, max=10_000,
          help="one-way delay on the gateway's uplink, each direction, ms"),
]
LAN, WAN, NET = "192.168.1", "203.0.113", "198.51.100"


class HomeNat(Topo):
    def build(self, isp_delay_ms: float = 0.0):
        dns = [f"{NET}.53"]
        for name in ("lan1", "lan2"):
            self.addHost(name, routes=[("default", f"{LAN}.1")], nameservers=dns)
        self.addHost("gw", router=True, routes=[("default", f"{WAN}.1")],
                     nat={"outside": "isp"})
        self.addHost("isp", router=True)
        self.addHost("web", routes=[("default", f"{NET}.1")], nameservers=dns,
                     web={"listen": f"{NET}.80", "index": "hello from web, 198.51.100.80\n"})
        self.addHost("dns", routes=[("default", f"{NET}.1")], dnsmasq={
            "listen": f"{NET}.53",
            "args": ["--local=/example.lab/", f"--host-record=www.example.lab,{NET}.80",
                     f"--host-record=web.example.lab,{NET}.80",
                     f"--host-record=dns.example.lab,{NET}.53"]})
        s1, s2 = self.addSwitch("s1"), self.addSwitch("s2")
        self.addLink("lan1", s1, params1={"ip": f"{LAN}.10/24"})
        self.addLink("lan2", s1, params1={"ip": f"{LAN}.11/24"})
        self.addLink("gw", s1, params1={"ip": f"{LAN}.1/24"})
        shaping = {"delay_ms": isp_delay_ms} if isp_delay_ms else {}
        self.addLink("gw", "isp", params1={"ip": f"{WAN}.2/30", **shaping},
                     params2={"ip": f"{WAN}.1/30", **shaping})
        self.addLink("isp", s2, params1={"ip": f"{NET}.1/24"})
        self.addLink("web", s2, params1={"ip": f"{NET}.80/24"})
        self.addLink("dns", s2, params1={"ip": f"{NET}.53/24"})


TOPOLOGY = HomeNat
topos = {"home_nat": HomeNat}

if __name__ == "__main__":
    from wirelab.cli import topology_main
    sys.exit(topology_main(__file__, sys.argv[1:]))
