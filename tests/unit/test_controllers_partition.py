"""The partition injector's logic, with no switch: requests in, drop flows out."""
from __future__ import annotations

import pytest

from wirelab.controllers.flows import ETH_ARP, ETH_IPV4, FlowMod, match_of
from wirelab.controllers.partition import COOKIE, PRIORITY, Partition

H1, H2, H3 = "10.0.0.1", "10.0.0.2", "10.0.0.3"


def switches(*dpids) -> Partition:
    p = Partition()
    for d in dpids:
        p.connected(d)
    return p


def drop(src, dst, eth_type=ETH_IPV4) -> FlowMod:
    m = match_of(eth_type=ETH_IPV4, ipv4_src=src, ipv4_dst=dst) if eth_type == ETH_IPV4 else \
        match_of(eth_type=ETH_ARP, arp_spa=src, arp_tpa=dst)
    return FlowMod("add", match=m, priority=PRIORITY, cookie=COOKIE)


def test_isolate_drops_ip_and_arp_both_ways_on_every_switch():
    p = switches(1, 2)
    d, reply = p.request({"op": "isolate", "groups": [[H1], [H2, H3]]})
    want = [FlowMod("delete", cookie=COOKIE)] + [
        drop(s, t, e) for s, t in [(H1, H2), (H1, H3), (H2, H1), (H3, H1)] for e in (ETH_IPV4, ETH_ARP)]
    assert d.flows == {1: want, 2: want}
    assert reply == {"groups": [[H1], [H2, H3]], "one_way": False, "switches": [1, 2],
                     "drop_flows_per_switch": 8}


def test_one_way_drops_only_what_the_first_group_sends():
    d = switches(1).isolate([[H1], [H2]], one_way=True)
    assert d.flows[1][1:] == [drop(H1, H2), drop(H1, H2, ETH_ARP)]


def test_heal_deletes_the_drops_by_cookie_only():
    p = switches(1, 2)
    p.isolate([[H1], [H2]])
    d = p.heal()
    assert d.flows == {1: [FlowMod("delete", cookie=COOKIE)], 2: [FlowMod("delete", cookie=COOKIE)]}
    assert p.drop_flows() == []


def test_a_switch_that_connects_late_gets_the_partition_in_force():
    p = switches(1)
    p.isolate([[H1], [H2]])
    d = p.connected(9)
    assert d.flows[9][1:] == [drop(H1, H2), drop(H1, H2, ETH_ARP), drop(H2, H1), drop(H2, H1, ETH_ARP)]
    p.disconnected(9)
    assert 9 not in p.heal().flows


def test_a_new_isolate_replaces_the_old_one():
    p = switches(1)
    p.isolate([[H1], [H2]])
    d = p.isolate([[H1], [H3]])
    assert d.flows[1][0] == FlowMod("delete", cookie=COOKIE)
    assert all(H2 not in str(m.match) for m in d.flows[1])


def test_prefixes_become_masked_matches():
    d = switches(1).isolate([["10.0.1.0/24"], [H1]])
    assert d.flows[1][1].fields["ipv4_src"] == ("10.0.1.0", "255.255.255.0")
    assert d.flows[1][1].fields["ipv4_dst"] == H1


@pytest.mark.parametrize("groups, fragment", [
    ([[H1]], "at least two groups"),
    ("h1,h2", "at least two groups"),
    ([[H1], []], "non-empty list"),
    ([[H1], ["h2"]], "'h2'"),
    ([[H1], [H1]], "more than one group"),
    ([["10.0.0.0/24"], [H2]], "more than one group"),
    ([["10.0.0.1/24"], [H2]], "host bits"),
])
def test_bad_groups_are_refused_and_nothing_changes(groups, fragment):
    p = switches(1)
    p.isolate([[H1], [H2]])
    with pytest.raises(ValueError, match=fragment):
        p.request({"op": "isolate", "groups": groups})
    assert p.groups == [[H1], [H2]]


def test_unknown_op_and_status():
    p = switches(3)
    with pytest.raises(ValueError, match="allowed isolate, heal, status"):
        p.request({"op": "split"})
    d, reply = p.request({"op": "status"})
    assert d.flows == {} and reply["switches"] == [3] and reply["groups"] == []
