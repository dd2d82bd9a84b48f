"""anycast_dns: an anycast DNS resolver in FRR BGP, the ground for resolver outages: two
sites (AS 65053) both announce 10.53.0.0/24 to a transit (AS 64999) and run a resolver at
the same address, 10.53.0.1 (the lab's 1.1.1.1); a secondary resolver lives at 10.54.0.1 in
AS 65054; a third AS (64755, the hijacker) has its own 10.53.0.1 but announces nothing
until told to.  Two clients behind the transit: c1 lists only 10.53.0.1, c2 lists
10.53.0.1 and then 10.54.0.1.  Every resolver (dnsmasq) knows www.example.test:
192.0.2.80, except the hijacker's, which answers 203.0.113.66.

::

      c1 10.0.1.10   c2 10.0.2.10          client links 10.0.<k>.0/24 (transit .1)
             \\       /                      originated by the transit
              transit (AS 64999)            uplinks 10.250.<k>.0/30: transit .1,
        /      |        |        \\           the other AS .2
    site-a   site-b    sec      hijack      site-a, site-b: AS 65053, announce
      |        |        |         |         10.53.0.0/24; sec: AS 65054,
    ns-a     ns-b      ns2      ns-h        10.54.0.0/24; hijack: AS 64755
    10.53.0.1 10.53.0.1 10.54.0.1 10.53.0.1  (LANs: router .254, resolver .1)

Try: ``transit vtysh -c 'show ip bgp 10.53.0.0/24'`` (two paths, one per site), ``c2
getent hosts www.example.test``, ``site-a vtysh -c 'conf t' -c 'router bgp 65053' -c
'address-family ipv4 unicast' -c 'no network 10.53.0.0/24'`` on both sites (the
withdrawal: c1's lookups now fail at once, c2's go to 10.54.0.1), ``hijack vtysh -c 'conf
t' -c 'router bgp 64755' -c 'address-family ipv4 unicast' -c 'network 10.53.0.0/24'``
(now both clients get 203.0.113.66), ``transit ip route add blackhole 10.53.0.0/16``
(withdrawn, lookups to 10.53.0.1 now wait for glibc's 5 s timeout).

Run it: ``sudo wirelab up anycast_dns``.  Stock ``mn --custom topologies/anycast_dns.py
--topo anycast_dns`` builds the nodes, links and addresses, but runs no FRR and no
resolvers, and so routes nothing between the ASes.
"""
import sys

from mininet.topo import Topo

ANYCAST, SECONDARY, NAME = "10.53.0.1", "10.54.0.1", "www.example.test"
RIGHT, WRONG = "192.0.2.80", "203.0.113.66"
TRANSIT_AS = 64999
#: (router, its AS, LAN prefix, announced at start, resolver host, the address it answers)
EDGES = (("site-a", 65053, "10.53.0", True, "ns-a", RIGHT),
         ("site-b", 65053, "10.53.0", True, "ns-b", RIGHT),
         ("sec", 65054, "10.54.0", True, "ns2", RIGHT),
         ("hijack", 64755, "10.53.0", False, "ns-h", WRONG))
CLIENTS = {"c1": [ANYCAST], "c2": [ANYCAST, SECONDARY]}


def uplink(k: int) -> str:
    return f"10.250.{k}"


class AnycastDns(Topo):
    def build(self):
        self.addHost("transit", router=True, frr={
            "asn": TRANSIT_AS, "router_id": "10.255.0.1",
            "neighbors": [{"address": f"{uplink(k)}.2", "asn": asn}
                          for k, (_, asn, *_) in enumerate(EDGES, start=1)],
            "networks": [f"10.0.{k}.0/24" for k in range(1, len(CLIENTS) + 1)]})
        for k, (name, servers) in enumerate(CLIENTS.items(), start=1):
            self.addHost(name, routes=[("default", f"10.0.{k}.1")], nameservers=servers)
            self.addLink("transit", name, params1={"ip": f"10.0.{k}.1/24"},
                         params2={"ip": f"10.0.{k}.10/24"})
        for k, (router, asn, lan, announced, ns, answer) in enumerate(EDGES, start=1):
            self.addHost(router, router=True, frr={
                "asn": asn, "router_id": f"10.255.0.{k + 1}",
                "neighbors": [{"address": f"{uplink(k)}.1", "asn": TRANSIT_AS}],
                "networks": [f"{lan}.0/24"] if announced else []})
            self.addLink("transit", router, params1={"ip": f"{uplink(k)}.1/30"},
                         params2={"ip": f"{uplink(k)}.2/30"})
            self.addHost(ns, routes=[("default", f"{lan}.254")], dnsmasq={
                "listen": f"{lan}.1", "args": [f"--host-record={NAME},{answer}"]})
            self.addLink(router, ns, params1={"ip": f"{lan}.254/24"}, params2={"ip": f"{lan}.1/24"})


TOPOLOGY = AnycastDns
topos = {"anycast_dns": AnycastDns}

if __name__ == "__main__":
    from wirelab.cli import topology_main
    sys.exit(topology_main(__file__, sys.argv[1:]))
