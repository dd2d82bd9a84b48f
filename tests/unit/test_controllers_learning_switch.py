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
