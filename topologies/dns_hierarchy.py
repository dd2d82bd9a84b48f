"""dns_hierarchy: the DNS as a hierarchy you can watch: a root, a TLD (``lab.``), an
authoritative server (``example.lab.``), a recursive resolver whose only root is the
lab's own, and a client with a cache in front, each behind its own delay.  The lab of
"what happens when I type a name?": the first lookup walks root -> TLD -> auth (each
server's query log shows it, with times), the second is answered from a cache.

::

                         root 10.53.3.2  (BIND: ".", root_ms)
                           |
    client 10.53.1.2 --- r1 --- tld 10.53.4.2  (BIND: "lab.", tld_ms)
    (dnsmasq cache        |  \\
     on 127.0.0.1,        |   auth 10.53.5.2  (BIND: "example.lab.", auth_ms)
     client_ms)          resolver 10.53.2.2  (BIND, recursive; resolver_ms)

    each node on its own link to r1 (10.53.k.0/24, r1 = .1), the delay on both
    directions of that link: a query from the resolver to the TLD takes
    2 x (resolver_ms + tld_ms) for the round trip.
    Names: www.example.lab and ns.example.lab = 10.53.5.2, tld.lab, root.lab.

Try: ``client dig www.example.lab`` (then again: answered from a cache), ``client dig
+trace www.example.lab`` is refused (no real root); ``resolver dig @root.lab . NS``;
``root tail $NAMED_DIR/query.log``; ``auth cat $NAMED_DIR/example.lab.zone``; ``link r1
tld delay=200ms`` and look again at a fresh name (``client dig ns.example.lab``).
The recursive server asks each server for the full name (qname minimisation off) and
validates nothing (DNSSEC off: the lab has no signed root).

Run it: ``sudo wirelab up dns_hierarchy``.  Stock ``mn --custom topologies/dns_hierarchy.py
--topo dns_hierarchy`` builds the nodes, links and addresses, but no routes and no DNS
servers (Mininet's hosts ignore those options).
"""
import sys

from mininet.topo import Topo

from wirelab.spec import Param

PARAMS = [
    Param("client_ms", default=1, min=0, max=10_000, help="one-way delay of the client's link, ms"),
    Param("resolver_ms", default=1, min=0, max=10_000, help="one-way delay of the resolver's link, ms"),
    Param("root_ms", default=10, min=0, max=10_000, help="one-way delay of the root's link, ms"),
    Param("tld_ms", default=20, min=0, max=10_000, help="one-way delay of the TLD's link, ms"),
    Param("auth_ms", default=30, min=0, max=10_000, help="one-way delay of the auth's link, ms"),
]
ADDR = {"client": "10.53.1.2", "resolver": "10.53.2.2", "root": "10.53.3.2",
        "tld": "10.53.4.2", "auth": "10.53.5.2"}
ZONES = {
    "root": {".": [". NS root.lab.", f"root.lab. A {ADDR['root']}",
                   "lab. NS tld.lab.", f"tld.lab. A {ADDR['tld']}"]},
    "tld": {"lab.": ["@ NS tld.lab.", f"tld A {ADDR['tld']}", f"root A {ADDR['root']}",
                     "example NS ns.example.lab.", f"ns.example A {ADDR['auth']}"]},
    "auth": {"example.lab.": ["@ NS ns.example.lab.", f"ns A {ADDR['auth']}",
                              f"www A {ADDR['auth']}"]},
}


class DnsHierarchy(Topo):
    def build(self, client_ms: float = 1.0, resolver_ms: float = 1.0, root_ms: float = 10.0,
              tld_ms: float = 20.0, auth_ms: float = 30.0):
        delays = {"client": client_ms, "resolver": resolver_ms, "root": root_ms,
                  "tld": tld_ms, "auth": auth_ms}
        r1 = self.addHost("r1", router=True)
        for k, (name, addr) in enumerate(ADDR.items(), start=1):
            gw = f"10.53.{k}.1"
            if name == "client":
                opts = {"nameservers": ["127.0.0.1"], "dnsmasq": {
                    "listen": "127.0.0.1", "args": [f"--server={ADDR['resolver']}",
                                                    "--cache-size=1000"]}}
            elif name == "resolver":
                opts = {"bind": {"listen": addr, "recursive": True,
                                 "root": {"root.lab": ADDR["root"]}}}
            else:
                opts = {"bind": {"listen": addr, "zones": ZONES[name]}}
            self.addHost(name, routes=[("default", gw)], **opts)
            shaping = {"delay_ms": delays[name]} if delays[name] else {}
            self.addLink(name, r1, params1={"ip": f"{addr}/24", **shaping},
                         params2={"ip": f"{gw}/24", **shaping})


TOPOLOGY = DnsHierarchy
topos = {"dns_hierarchy": DnsHierarchy}

if __name__ == "__main__":
    from wirelab.cli import topology_main
    sys.exit(topology_main(__file__, sys.argv[1:]))
