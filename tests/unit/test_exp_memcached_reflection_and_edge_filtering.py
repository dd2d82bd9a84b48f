"""[37] memcached_reflection_and_edge_filtering: the byte accounting of a reflected get,
the flood's rate, what each filter leaves of the access link, and the spoofer's frames.
No root."""
from __future__ import annotations

import math
import struct

import pytest

from wirelab.models import reflection as rf
from wirelab.peers import memcached
from wirelab.run import catalog

MOD = catalog.load("memcached_reflection_and_edge_filtering").module
BASE = {"value_bytes": 1 << 20, "requests_per_s": 5.0, "attack_s": 6.0, "access_mbps": 20.0,
        "reflector_mbps": 50.0}


def test_one_get_of_one_mib_by_hand():
    """15 B of request (8 B frame + "get k\\r\\n"), 57 B on the wire; 1 MiB back in datagrams
    of 1392 B of text: the CLAIMS figures of ~19,000x by frames and ~70,000x by payload."""
    r = rf.reflection("k", 1 << 20)
    assert (r.request_payload, r.request_wire) == (15, 57)
    text = len("VALUE k 0 1048576\r\n") + (1 << 20) + 2 + len("END\r\n")
    assert text == 1_048_602
    assert r.datagrams == math.ceil(text / 1392) == 754
    assert r.response_payload == text + 754 * 8
    assert r.response_wire == text + 754 * 50
    assert r.by_frames == pytest.approx(19_057.9, abs=0.1)
    assert r.by_payload == pytest.approx(70_308.9, abs=0.1)


def test_ten_keys_scale_the_response_not_the_request():
    one, ten = rf.reflection("k", 1 << 20), rf.reflection("k", 1 << 20, 10)
    assert rf.request("k", 10) == b"get k k k k k k k k k k\r\n"
    assert ten.request_wire == one.request_wire + 18
    # each key's block on its own datagrams (754 each, the last with END): as measured
    assert ten.datagrams == 10 * 754 == 7540 and ten.datagrams > math.ceil(10 * 1_048_597 / 1392)
    assert ten.response_wire == 10 * (19 + (1 << 20) + 2) + 5 + 7540 * 50 == 10_862_975
    assert ten.by_frames > 7 * one.by_frames
    with pytest.raises(ValueError):
        rf.request("k", 0)


def test_predictions_per_filter():
    for f, share in (("none", 0.0), ("host", 0.0), ("edge", 1448 / 1514)):
        p = MOD.predict({**BASE, "filter": f}, {})
        assert p["goodput_ratio"] == pytest.approx(share)
        assert p["before_ratio"] == pytest.approx(1448 / 1514)
        assert p["flood_mbps"] == pytest.approx(5 * rf.reflection("k", 1 << 20).response_wire * 8 / 1e6)
        assert p["datagrams_count"] == 754.0


def test_the_flood_is_capped_by_the_reflector_link_and_a_small_one_leaves_room():
    r = rf.reflection("k", 1 << 20)
    assert rf.flood_mbps(r, 20.0, 50.0) == 50.0
    assert rf.goodput_ratio(100.0, rf.flood_mbps(r, 1.0, 50.0), False) == pytest.approx(
        (1 - 1.0 * r.response_wire * 8 / 1e6 / 100.0) * 1448 / 1514)


class _Sock:
    def __init__(self):
        self.opts, self.sent, self.bound = [], [], None

    def setsockopt(self, *a):
        self.opts.append(a)

    def bind(self, addr):
        self.bound = addr

    def sendto(self, data, addr):
        self.sent.append((data, addr))


class _Node:
    def __init__(self):
        self.sock = _Sock()

    def socket(self, *a):
        return self.sock


def test_the_spoofer_binds_the_victims_address_and_frames_each_get():
    node = _Node()
    s = memcached.Spoofer(node, ("10.0.5.2", 7777), ("10.0.2.2", 11211), "k")
    assert (0, memcached.IP_TRANSPARENT, 1) == node.sock.opts[0] and node.sock.bound == ("10.0.5.2", 7777)
    s.get()
    s.get(3)
    (d1, a1), (d2, _) = node.sock.sent
    assert a1 == ("10.0.2.2", 11211)
    assert struct.unpack("!HHHH", d1[:8]) == (1, 0, 1, 0) and d1[8:] == b"get k\r\n"
    assert struct.unpack("!HHHH", d2[:8])[0] == 2 and d2[8:] == b"get k k k\r\n"
