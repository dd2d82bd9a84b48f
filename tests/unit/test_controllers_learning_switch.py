"""The learning switch's logic, with no switch: packet-ins in, flow changes out."""
from __future__ import annotations

import struct

import pytest

from wirelab.controllers.flows import ETH_IPV4, FlowMod, Packet, PacketOut, match_of, parse
from wirelab.controllers.learning_switch import COOKIE, PRIORITY, LearningSwitch, is_multicast

A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"


def pkt(src, dst, port, dpid=1) -> Packet:
    return Packet(dpid=dpid, in_port=port, eth_src=src, eth_dst=dst, eth_type=ETH_IPV4)


def test_connect_clears_old_flows_and_sends_misses_to_the_controller():
    d = LearningSwitch().connected(7)
    assert d.flows == {7: [FlowMod("delete", cookie=COOKIE),
                           FlowMod("add", priority=0, cookie=COOKIE, actions=(("output", "controller"),))]}
    assert d.packet_outs == {}


def test_unknown_destination_floods_and_learns_the_source():
    ls = LearningSwitch()
    ls.connected(1)
    d = ls.packet_in(pkt(A, B, 1))
    assert d.flows == {}
    assert d.packet_outs == {1: [PacketOut(1, (("output", "flood"),))]}
    assert ls.tables[1] == {A: 1}


def test_known_destination_gets_a_flow_and_the_packet_goes_on():
    ls = LearningSwitch(idle_timeout_s=30)
    ls.packet_in(pkt(A, B, 1))
    d = ls.packet_in(pkt(B, A, 2))
    mod = FlowMod("add", priority=PRIORITY, cookie=COOKIE, idle_timeout_s=30,
                  match=match_of(in_port=2, eth_src=B, eth_dst=A), actions=(("output", 1),))
    assert d.flows == {1: [mod]}
    assert d.packet_outs == {1: [PacketOut(2, (("output", 1),))]}


def test_tables_are_per_switch_and_reset_on_reconnect():
    ls = LearningSwitch()
    ls.packet_in(pkt(A, B, 1, dpid=1))
    assert ls.packet_in(pkt(B, A, 2, dpid=2)).packet_outs[2][0].actions == (("output", "flood"),)
    ls.connected(1)
    assert ls.tables[1] == {}


def test_broadcast_is_flooded_and_never_learned():
    ls = LearningSwitch()
    d = ls.packet_in(pkt(A, "ff:ff:ff:ff:ff:ff", 1))
    assert d.packet_outs[1][0].actions == (("output", "flood"),)
    ls.packet_in(pkt("01:00:5e:00:00:01", A, 3))
    assert "01:00:5e:00:00:01" not in ls.tables[1]
    assert is_multicast("33:33:00:00:00:01") and not is_multicast(A)


def test_destination_behind_the_incoming_port_is_not_sent_back():
    ls = LearningSwitch()
    ls.packet_in(pkt(A, C, 1))
    d = ls.packet_in(pkt(C, A, 1))
    assert d.flows == {} and d.packet_outs == {}


def test_a_host_that_moves_is_learned_at_its_new_port():
    ls = LearningSwitch()
    ls.packet_in(pkt(A, B, 1))
    ls.packet_in(pkt(A, B, 3))
    assert ls.tables[1][A] == 3
    assert ls.packet_in(pkt(B, A, 2)).flows[1][0].actions == (("output", 3),)


def test_parse_reads_the_headers_the_logic_uses():
    eth = bytes.fromhex("02000000000b" "02000000000a" "0800")
    ip = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 100])
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    p = parse(eth + ip + tcp, dpid=5, in_port=3)
    assert (p.dpid, p.in_port, p.eth_src, p.eth_type) == (5, 3, A, ETH_IPV4)
    assert (p.ipv4_src, p.ipv4_dst, p.ip_proto, p.l4_src, p.l4_dst, p.tcp_flags) == \
        ("10.0.0.1", "10.0.0.100", 6, 40000, 80, 0x02)
    with pytest.raises(ValueError, match="shorter than an Ethernet header"):
        parse(b"\x00" * 10, 1, 1)


def test_flowmod_refuses_an_unknown_command():
    with pytest.raises(ValueError, match="allowed add, delete"):
        FlowMod("modify")


def walk(ls: LearningSwitch, n: int, src: str, dst: str, flows: set) -> int:
    """A frame from SRC crossing a line of N switches (port 1 towards A's end, port 2
    towards the other) as OVS would forward it: by an installed flow, or through a
    packet-in.  FLOWS: the (dpid, in_port, src, dst) flows installed so far.  Returns
    the packet-ins it took."""
    trips = 0
    dpids = range(1, n + 1) if src == A else range(n, 0, -1)
    in_port = 1 if src == A else 2
    for dpid in dpids:
        if (dpid, in_port, src, dst) in flows:
            continue
        trips += 1
        d = ls.packet_in(Packet(dpid=dpid, in_port=in_port, eth_src=src, eth_dst=dst, eth_type=ETH_IPV4))
        for mod in d.flows.get(dpid, []):
            f = mod.fields
            flows.add((dpid, f["in_port"], f["eth_src"], f["eth_dst"]))
        assert d.packet_outs[dpid], "every packet-in is sent on"
    return trips


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_reactive_setup_costs_2n_then_n_then_nothing_on_a_line_of_n_switches(n):
    """The model of [41]: cold tables, an exchange (request A -> B, reply B -> A) costs
    2N packet-ins (the request is flooded at every switch, the reply installs a flow at
    every switch), the second N (the request's flows), later ones none; once the flows
    have idled out, with the tables still warm, 2N again."""
    ls = LearningSwitch(idle_timeout_s=1)
    for dpid in range(1, n + 1):
        ls.connected(dpid)
    flows: set = set()
    exchange = [walk(ls, n, A, B, flows) + walk(ls, n, B, A, flows) for _ in range(4)]
    assert exchange == [2 * n, n, 0, 0]
    flows.clear()                                    # every flow idled out
    assert walk(ls, n, A, B, flows) + walk(ls, n, B, A, flows) == 2 * n
    status = ls.request({"op": "status"})[1]
    assert status["packet_ins"] == {str(d): {"0x0800": 5} for d in range(1, n + 1)}
    assert status["learned"] == {str(d): 2 for d in range(1, n + 1)}


def test_forget_resets_every_switch_and_status_counts_stay():
    ls = LearningSwitch()
    ls.connected(1)
    ls.connected(2)
    ls.packet_in(pkt(A, B, 1))
    d, reply = ls.request({"op": "forget"})
    assert reply == {"switches": 2}
    assert d.flows == {1: LearningSwitch().connected(1).flows[1], 2: LearningSwitch().connected(2).flows[2]}
    assert ls.tables == {1: {}, 2: {}}
    assert ls.request({"op": "status"})[1]["packet_ins"] == {"1": {"0x0800": 1}}
    with pytest.raises(ValueError, match="allowed status, forget"):
        ls.request({"op": "isolate"})
