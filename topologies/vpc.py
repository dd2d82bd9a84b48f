"""vpc: a cloud VPC in miniature, the lab of "public subnet, private subnet, NAT gateway
and security groups": 10.0.0.0/16 with a public subnet (a web server with an elastic
IP), a private one (an app server that reaches the internet through a NAT gateway and
cannot be reached from it) and a database subnet that only the private subnet may reach
and that reaches nothing.

::

    ext 198.51.100.10 --- inet --- vrouter ------------ s1: public subnet 10.0.1.0/24
      (the internet)   .1 | 192.0.2.0/30 | .2  10.0.1.1    |-- web   10.0.1.10 (nginx)
                          |              |                 |       elastic IP 203.0.113.10
                 203.0.113.0/24          1:1 NAT           |-- natgw 10.0.1.5
                 routed to vrouter       (the internet        |    elastic IP 203.0.113.5
                                          gateway)           +--- app 10.0.2.10  (10.0.2.0/24)
                                                             +--- db  10.0.3.10  (10.0.3.0/24)

    vrouter: web <-> 203.0.113.10 and natgw <-> 203.0.113.5, one to one (an IGW);
             10.0.2.0/24 and 10.0.3.0/24 via natgw
    natgw:   MASQUERADE for the private subnet out of its public side; security groups
             as iptables FORWARD rules: replies pass, app -> db passes, anything else
             to db is dropped, db starts nothing.
    db runs nginx on port 80 as a stand-in database.

Try: ``ext curl -s http://203.0.113.10/`` (web, by its elastic IP), ``app curl -s
http://ext/`` and ``ext tail -n1 $NGINX_DIR/access.log`` (it saw 203.0.113.5),
``app curl -s http://db/`` against ``web curl -s -m2 http://db/`` (dropped),
``db curl -s -m2 http://ext/`` (dropped), ``natgw iptables -L FORWARD -n -v``,
``ext ping -c1 -W1 app`` (no route).

Run it: ``sudo wirelab up vpc``.  Stock ``mn --custom topologies/vpc.py --topo vpc``
builds the nodes, switch, links and addresses, but no routes, NAT, rules or servers.
"""
import sys

from mininet.topo import Topo

PARAMS: list = []
ELASTIC = {"web": ("10.0.1.10", "203.0.113.10"), "natgw": ("10.0.1.5", "203.0.113.5")}


def _one_to_one() -> list:
    """The internet gateway's rules: each elastic IP to its instance and back."""
    rules = []
    for private, public in ELASTIC.values():
        rules += [["PREROUTING", "-d", public, "-j", "DNAT", "--to-destination", private],
                  ["POSTROUTING", "-s", private, "-j", "SNAT", "--to-source", public]]
    return [["-t", "nat", *r] for r in rules]


SECURITY_GROUPS = [
    ["FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
    ["FORWARD", "-s", "10.0.2.0/24", "-d", "10.0.3.0/24", "-j", "ACCEPT"],
    ["FORWARD", "-d", "10.0.3.0/24", "-j", "DROP"],
    ["FORWARD", "-s", "10.0.3.0/24", "-j", "DROP"],
]


class Vpc(Topo):
    def build(self):
        self.addHost("ext", routes=[("default", "198.51.100.1")],
                     web={"listen": "198.51.100.10", "index": "hello from the internet\n"})
        self.addHost("inet", router=True, routes=[("203.0.113.0/24", "192.0.2.2")])
        self.addHost("vrouter", router=True, firewall=_one_to_one(),
                     routes=[("default", "192.0.2.1"), ("10.0.2.0/24", "10.0.1.5"),
                             ("10.0.3.0/24", "10.0.1.5")])
        self.addHost("web", routes=[("default", "10.0.1.1")],
                     web={"listen": "10.0.1.10", "index": "hello from web (public subnet)\n"})
        self.addHost("natgw", router=True, routes=[("default", "10.0.1.1")],
                     nat={"outside": "s1", "source": "10.0.2.0/24"}, firewall=SECURITY_GROUPS)
        self.addHost("app", routes=[("default", "10.0.2.1")])
        self.addHost("db", routes=[("default", "10.0.3.1")],
                     web={"listen": "10.0.3.10", "index": "db: the data (private)\n"})
        s1 = self.addSwitch("s1")
        self.addLink("vrouter", s1, params1={"ip": "10.0.1.1/24"})
        self.addLink("vrouter", "inet", params1={"ip": "192.0.2.2/30"},
                     params2={"ip": "192.0.2.1/30"})
        self.addLink("ext", "inet", params1={"ip": "198.51.100.10/24"},
                     params2={"ip": "198.51.100.1/24"})
        self.addLink("web", s1, params1={"ip": "10.0.1.10/24"})
        self.addLink("natgw", s1, params1={"ip": "10.0.1.5/24"})
        self.addLink("natgw", "app", params1={"ip": "10.0.2.1/24"}, params2={"ip": "10.0.2.10/24"})
        self.addLink("natgw", "db", params1={"ip": "10.0.3.1/24"}, params2={"ip": "10.0.3.10/24"})


TOPOLOGY = Vpc
topos = {"vpc": Vpc}

if __name__ == "__main__":
    from wirelab.cli import topology_main
    sys.exit(topology_main(__file__, sys.argv[1:]))
