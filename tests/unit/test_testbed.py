"""The testbed without root: topology parameters, the prompt's parsing (link values, node
names as addresses), service declarations, and the FRR and BIND configurations the
course topologies generate (BIND's own checkers run on them)."""
from __future__ import annotations

import ipaddress
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from wirelab.errors import BadInput
from wirelab.peers import bind, frr
from wirelab.run import catalog
from wirelab.testbed import console, services, session

TOPOLOGIES = ("router_chain", "home_nat", "vpc", "dns_hierarchy", "bgp_pops")


def module(name):
    return catalog.load_topology_module(name)


# --- parameters ------------------------------------------------------------------------

def test_parameters_are_checked_against_the_topology():
    m = module("router_chain")
    assert session.parse_params(m, {}) == {"n": 3, "delay_ms": 0.0}
    assert session.parse_params(m, {"n": "50"})["n"] == 50
    with pytest.raises(BadInput, match="1 to 50"):
        session.parse_params(m, {"n": "51"})
    with pytest.raises(BadInput, match="whole number"):
        session.parse_params(m, {"n": "2.5"})
    with pytest.raises(BadInput, match="unknown parameter hops.*allowed: n"):
        session.parse_params(m, {"hops": "3"})
    with pytest.raises(BadInput, match="one value"):
        session.parse_params(m, {"n": ["3", "4"]})


def test_a_topology_without_params_gets_them_from_build():
    params = {p.name: p for p in session.topology_params(module("web_with_resolver"))}
    assert set(params) == {"rtt_ms", "rdns_ms", "auth_rtt_ms", "resolver"}
    assert session.parse_params(module("web_with_resolver"), {"resolver": "False"})["resolver"] is False


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_course_topologies_say_what_they_teach_and_run_by_themselves(name):
    m = module(name)
    doc = m.__doc__ or ""
    assert doc.startswith(f"{name}:") and "::" in doc and "Try:" in doc
    assert "mn --custom" in doc                      # what stock Mininet can build of it
    assert m.topos[name] is m.TOPOLOGY
    assert 'if __name__ == "__main__":' in open(m.__file__).read()


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_every_address_is_lab_internal_and_services_are_known(name):
    topo = module(name).TOPOLOGY()
    private_or_doc = [ipaddress.ip_network(n) for n in
                      ("10.0.0.0/8", "192.168.0.0/16", "192.0.2.0/24", "198.51.100.0/24",
                       "203.0.113.0/24")]
    for a, b, info in topo.links(withInfo=True):
        for side in ("params1", "params2"):
            ip = info.get(side, {}).get("ip")
            if ip:
                addr = ipaddress.ip_interface(ip).ip
                assert any(addr in n for n in private_or_doc), (name, a, b, ip)
    for n in topo.nodes():
        if not topo.isSwitch(n):
            services.declared(topo, n)               # raises on an unknown option


def test_node_names_are_fixed_as_handouts_name_them():
    names = {n: set(module(n).TOPOLOGY().nodes()) for n in TOPOLOGIES}
    assert {"h1", "h2", "r1", "r2", "r3"} == names["router_chain"]
    assert {"lan1", "lan2", "gw", "isp", "web", "dns"} <= names["home_nat"]
    assert {"root", "tld", "auth", "resolver", "client"} <= names["dns_hierarchy"]
    assert {"sjc", "atl", "ord", "ewr", "transit"} <= names["bgp_pops"]


def test_router_chain_routes_summarise_the_left_side():
    rc = module("router_chain")
    assert rc.left_blocks(1) == [] and rc.left_blocks(2) == ["10.0.0.0/24"]
    assert rc.left_blocks(4) == ["10.0.0.0/23", "10.0.2.0/24"]      # links 0-2
    assert rc.left_blocks(6) == ["10.0.0.0/22", "10.0.4.0/24"]      # links 0-4
    covered = {str(ip) for b in rc.left_blocks(50) for ip in ipaddress.ip_network(b).subnets(
        new_prefix=24)}
    assert covered == {f"10.0.{k}.0/24" for k in range(49)}
    topo = rc.TOPOLOGY(n=50)
    assert max(len(topo.nodeInfo(f"r{i}")["routes"]) for i in range(1, 51)) <= 7


def test_unknown_service_options_are_refused():
    topo = SimpleNamespace(nodeInfo=lambda name: {"ip": "10.0.0.1/24", "dhcp": True})
    with pytest.raises(BadInput, match="unknown options dhcp"):
        services.declared(topo, "h1")


# --- the prompt's parsing ----------------------------------------------------------------

@pytest.mark.parametrize("key, raw, value", [
    ("delay", "80ms", 80.0), ("delay", "0.5s", 500.0), ("delay", "250us", 0.25),
    ("delay", "40", 40.0), ("loss", "1%", 1.0), ("loss", "0.5", 0.5),
    ("rate", "10mbit", 10.0), ("rate", "512kbit", 0.512), ("rate", "1gbit", 1000.0),
    ("rate", "none", None), ("queue", "100", 100)])
def test_link_values_take_units(key, raw, value):
    assert console.parse_link_value(key, raw) == pytest.approx(value) if value is not None \
        else console.parse_link_value(key, raw) is None


@pytest.mark.parametrize("key, raw", [("delay", "80 furlongs"), ("delay", "-5ms"),
                                      ("rate", "10"), ("loss", "lots")])
def test_bad_link_values_name_the_units(key, raw):
    with pytest.raises(console.Failed, match=key):
        console.parse_link_value(key, raw)


def test_node_names_become_addresses_only_as_whole_words():
    c = console.Console.__new__(console.Console)
    c.addrs = {"h1": "10.0.0.1", "h2": "10.0.5.2", "root": "10.53.3.2"}
    c._word = console.re.compile(r"(?<!\S)(root|h1|h2)(?!\S)")
    assert c.substitute("ping -c1 h2") == "ping -c1 10.0.5.2"
    assert c.substitute("ls /root; echo h22 xh2 h2") == "ls /root; echo h22 xh2 10.0.5.2"
    assert c.substitute("curl http://h2/") == "curl http://h2/"   # a name: /etc/hosts has it


# --- generated configurations ------------------------------------------------------------

def test_frr_configs_from_a_pop_declaration():
    topo = module("bgp_pops").TOPOLOGY(pops=4)
    texts = frr.configs("atl", topo.nodeInfo("atl")["frr"])
    bgp = texts["bgpd"]
    assert "router bgp 65000" in bgp and "network 10.2.0.0/24" in bgp
    assert bgp.count("remote-as 65000") == 3 and "remote-as 64999" in bgp
    assert bgp.count("next-hop-self") == 3                     # iBGP only
    assert "timers bgp 3 9" in bgp and "ospfd" not in texts
    with pytest.raises(BadInput, match="unknown keys"):
        frr.configs("x", {"asn": 1, "vrf": "red"})


@pytest.mark.skipif(not shutil.which("named-checkzone"), reason="bind9-utils is not installed")
def test_dns_hierarchy_zones_pass_binds_own_checks(tmp_path):
    dh = module("dns_hierarchy")
    for name, zones in dh.ZONES.items():
        d = tmp_path / name
        d.mkdir()
        conf = bind.configure(d, name, dh.ADDR[name], zones=zones)
        bind.check(d, conf, zones)
    d = tmp_path / "resolver"
    d.mkdir()
    conf = bind.configure(d, "resolver", dh.ADDR["resolver"], zones={}, recursive=True,
                          root_hints=bind.root_hints({"root.lab": dh.ADDR["root"]}))
    bind.check(d, conf, {})
    text = conf.read_text()
    assert "recursion yes" in text and "qname-minimization off" in text
    assert "root.lab.\t3600\tIN\tA\t10.53.3.2" in (d / "root.hints").read_text()
    # Only the lab's addresses anywhere in what the servers are told.
    everything = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    for addr in set(re.findall(r"\b\d+\.\d+\.\d+\.\d+\b", everything)):
        assert addr.startswith("10.53."), addr


@pytest.mark.skipif(not shutil.which("named-checkzone"), reason="bind9-utils is not installed")
def test_a_bad_zone_fails_the_check_with_binds_words(tmp_path):
    zones = {"x.lab.": ["@ NS ns.x.lab.", "ns A 10.9.0.300"]}
    conf = bind.configure(tmp_path, "a", "10.9.0.1", zones=zones)
    with pytest.raises(Exception, match="named-checkzone"):
        bind.check(tmp_path, conf, zones)
    with pytest.raises(BadInput, match="no NS record"):
        bind.configure(tmp_path, "a", "10.9.0.1", zones={"y.lab.": ["www A 10.9.0.1"]})
    with pytest.raises(BadInput, match="root hints"):
        bind.configure(tmp_path, "a", "10.9.0.1", zones={}, recursive=True)


def test_up_parses_its_options():
    from wirelab.cli import build_parser
    args = build_parser().parse_args(["up", "router_chain", "--set", "n=5", "--script", "s.txt",
                                      "--kernel", "uml"])
    assert (args.topology, args.set, args.script, args.kernel) == \
        ("router_chain", ["n=5"], "s.txt", "uml")


@pytest.mark.parametrize("argv", [
    ["up", "router_chain", "--script", "/tmp/handout.txt", "--set", "n=1"],
    ["up", "router_chain", "--script=/tmp/handout.txt"],
    ["up", "router_chain"],
])
def test_the_guest_gets_its_own_copy_of_a_script(argv):
    """A script straight in the host's /tmp is invisible to the UML guest (its /tmp is a
    fresh tmpfs): the guest is handed a copy in a folder of its own, once."""
    copy = session.script_file("h1 ping -c1 h2\n")
    try:
        assert copy.parent.parent == Path("/tmp")
        assert copy.parent.name.startswith("wirelab-up-") and copy.read_text() == "h1 ping -c1 h2\n"
        out = session.with_script(argv, copy)
        assert out[-2:] == ["--script", str(copy)]
        assert "/tmp/handout.txt" not in out and "--script=/tmp/handout.txt" not in out
        assert out.count("--script") == 1 and out[:2] == ["up", "router_chain"]
    finally:
        shutil.rmtree(copy.parent)
