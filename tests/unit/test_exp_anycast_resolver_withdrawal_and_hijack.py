"""[35] anycast_resolver_withdrawal_and_hijack: glibc's resolver timing (id 28's model), the
predictions per event, and the anycast_dns topology it runs on."""
from __future__ import annotations

import ipaddress

import pytest

from support import lab_facts
from wirelab.errors import BadInput
from wirelab.models.resolver import glibc_lookup
from wirelab.peers import frr
from wirelab.run import catalog
from wirelab.testbed import services


@pytest.fixture
def exp():
    return catalog.load("anycast_resolver_withdrawal_and_hijack")


def test_glibc_waits_as_res_send_computes_it(exp):
    lookup = glibc_lookup
    assert exp.module.glibc_lookup is glibc_lookup                       # the model, wirelab.models.resolver
    assert lookup(["silent", "ok"], 5, 2) == (5.0, "ok")                 # 5 << 0
    assert lookup(["silent"], 5, 2) == (10.0, "failed")                  # 2 attempts x 5 s
    assert lookup(["silent", "silent"], 5, 2) == (20.0, "failed")        # (5 + (5 << 1) / 2) x 2
    assert lookup(["silent", "silent", "ok"], 5, 2) == (8.0, "ok")       # 5 + 10 // 3
    assert lookup(["silent", "silent", "silent"], 5, 1) == (14.0, "failed")   # 5 + 3 + 20 // 3
    assert lookup(["silent", "ok"], 1, 2) == (1.0, "ok")                 # options timeout:1
    assert lookup(["icmp", "ok"], 5, 2) == (0.0, "ok")                   # an ICMP error: next at once
    assert lookup(["icmp"], 5, 2) == (0.0, "failed")
    assert lookup(["wrong", "ok"], 5, 2) == (0.0, "wrong")               # an answer ends the lookup
    with pytest.raises(ValueError, match="each one of ok, wrong, icmp, silent"):
        lookup(["refused"], 5, 2)


def _predicted(exp, quick=True):
    return {g["event"]: exp.predict(g, lab_facts(exp, g)) for g in exp.grid({}, quick=quick)}


def test_each_event_predicts_what_the_clients_see(exp):
    p = _predicted(exp)
    assert set(p) == {"unreachable", "blackhole", "hijack"}
    assert (p["unreachable"]["two_lookup_s"], p["unreachable"]["two_ok_pct"]) == (0.0, 100.0)
    assert (p["unreachable"]["one_lookup_s"], p["unreachable"]["one_ok_pct"]) == (0.0, 0.0)
    assert (p["blackhole"]["two_lookup_s"], p["blackhole"]["two_ok_pct"]) == (5.0, 100.0)
    assert (p["blackhole"]["one_lookup_s"], p["blackhole"]["one_ok_pct"]) == (10.0, 0.0)
    assert p["hijack"]["wrong_pct"] == 100.0 and p["hijack"]["two_ok_pct"] == p["hijack"]["one_ok_pct"] == 0.0
    for event, q in p.items():
        assert q["after_ok_pct"] == 100.0
        assert q["wrong_pct"] == (100.0 if event == "hijack" else 0.0)
    assert _predicted(exp, quick=False).keys() == p.keys()


def test_convergence_is_predicted_from_the_configured_advertisement_interval(exp):
    for q in _predicted(exp).values():
        assert q["mrai_s"] == q["converge_s"] == q["recovery_s"] == 0.0
    decl = exp.module.AnycastDns().nodeInfo("site-a")["frr"]
    assert "advertisement-interval 0" in frr.configs("site-a", decl)["bgpd"]


def test_an_event_too_short_to_time_a_lookup_is_refused(exp):
    g = exp.grid({}, quick=True)[0] | {"event_s": 25.0, "timeout_s": 10}
    with pytest.raises(BadInput, match="a lookup may take 20 s"):
        exp.predict(g, lab_facts(exp, g))


def test_the_topology_is_lab_internal_and_declares_what_it_runs():
    m = catalog.load_topology_module("anycast_dns")
    doc = m.__doc__ or ""
    assert doc.startswith("anycast_dns:") and "::" in doc and "Try:" in doc and "mn --custom" in doc
    assert m.topos["anycast_dns"] is m.TOPOLOGY
    topo = m.TOPOLOGY()
    lab_nets = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "192.0.2.0/24", "203.0.113.0/24")]
    for _, _, info in topo.links(withInfo=True):
        for side in ("params1", "params2"):
            assert any(ipaddress.ip_interface(info[side]["ip"]).ip in n for n in lab_nets)
    for n in topo.nodes():
        services.declared(topo, n)
    announced = {r: topo.nodeInfo(r)["frr"]["networks"] for r in ("site-a", "site-b", "hijack")}
    assert announced == {"site-a": ["10.53.0.0/24"], "site-b": ["10.53.0.0/24"], "hijack": []}
    assert topo.nodeInfo("c2")["nameservers"] == [m.ANYCAST, m.SECONDARY]
    for node in ("ns-a", "ns-b", "ns2", "ns-h"):
        answer = m.WRONG if node == "ns-h" else m.RIGHT
        assert topo.nodeInfo(node)["dnsmasq"]["args"] == [f"--host-record={m.NAME},{answer}"]
