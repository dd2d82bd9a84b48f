"""Shaping validation and the qdisc layout it asks pyroute2 for."""
from __future__ import annotations

import pytest

from wirelab.errors import BadInput
from wirelab.lab.shaping import FRAME_BYTES, LIMITS, NETEM_DEFAULT_LIMIT, Shaping


@pytest.mark.parametrize("params, key, fragment", [
    ({"loss_pct": 150}, "loss_pct", "outside the allowed range 0-100"),
    ({"loss_pct": -1}, "loss_pct", "outside the allowed range 0-100"),
    ({"loss_pct": "nan"}, "loss_pct", "outside"),
    ({"delay_ms": "x"}, "delay_ms", "'x' is not a number"),
    ({"delay_ms": None, "jitter_ms": 5}, "jitter_ms", "needs delay_ms > 0"),
    ({"delay_ms": 0, "jitter_ms": 5}, "jitter_ms", "needs delay_ms > 0"),
    ({"bw_mbps": 0}, "bw_mbps", "outside"),
    ({"bw_mbps": "inf"}, "bw_mbps", "outside"),
    ({"queue_pkts": 0}, "queue_pkts", "outside"),
])
def test_bad_shaping_names_the_key(params, key, fragment):
    with pytest.raises(BadInput) as ei:
        Shaping.from_params(params, where="r1-eth0")
    msg = str(ei.value)
    assert msg.startswith("r1-eth0: ")
    assert key in msg and fragment in msg


def test_other_keys_are_ignored_and_values_kept():
    s = Shaping.from_params({"rtt_ms": "abc", "delay_ms": "12.5", "jitter_ms": 1,
                             "loss_pct": "0.5", "queue_pkts": "64"})
    assert s == Shaping(delay_ms=12.5, jitter_ms=1.0, loss_pct=0.5, queue_pkts=64)
    assert isinstance(s.queue_pkts, int)
    assert s.needs_netem and s.active
    assert not Shaping.from_params({}).active
    assert Shaping.from_params({}).qdiscs() == []
    assert set(s.as_dict()) == set(LIMITS)


def test_delay_only_is_netem_at_the_root():
    qd = Shaping.from_params({"delay_ms": 25, "jitter_ms": 2.5, "loss_pct": 1}).qdiscs()
    assert qd == [("netem", {"handle": 0x10000, "delay": 25_000, "jitter": 2_500,
                             "loss": 1.0, "limit": NETEM_DEFAULT_LIMIT})]
    qd = Shaping.from_params({"delay_ms": 0.5, "queue_pkts": 50}).qdiscs()
    kind, kw = qd[0]
    assert kind == "netem" and kw["delay"] == 500 and kw["limit"] == 50
    assert "parent" not in kw  # root


def test_bw_only_is_tbf_at_the_root():
    qd = Shaping.from_params({"bw_mbps": 10, "queue_pkts": 20}).qdiscs()
    assert len(qd) == 1
    kind, kw = qd[0]
    assert kind == "tbf" and kw["handle"] == 0x10000 and "parent" not in kw
    assert kw["rate"] == "10000000bit"            # 10 Mbit/s in bit/s
    burst = int(10e6 / 8 * 0.004)                 # 4 ms at 1.25 MB/s = 5000 B
    assert kw["burst"] == burst == 5000
    assert kw["limit"] == 20 * FRAME_BYTES + burst
    # A slow link still gets a bucket of two full frames.
    kind, kw = Shaping.from_params({"bw_mbps": 1}).qdiscs()[0]
    assert kw["rate"] == "1000000bit" and kw["burst"] == 2 * FRAME_BYTES
    assert kw["limit"] == 100 * FRAME_BYTES + 2 * FRAME_BYTES


def test_delay_and_bw_is_netem_root_with_tbf_child():
    qd = Shaping.from_params({"delay_ms": 40, "bw_mbps": 2.5, "queue_pkts": 30}).qdiscs()
    assert [k for k, _ in qd] == ["netem", "tbf"]
    netem, tbf = qd[0][1], qd[1][1]
    assert netem["handle"] == 0x10000 and "parent" not in netem        # 1:0 at the root
    assert netem["delay"] == 40_000
    assert netem["limit"] >= 1_000_000 > 30                              # not the queue
    assert tbf["parent"] == 0x10001 and tbf["handle"] == 0x20000        # 1:1, handle 2:
    assert tbf["rate"] == "2500000bit"
    assert tbf["limit"] == 30 * FRAME_BYTES + tbf["burst"]


def test_pyroute2_reads_the_rate_as_bits_per_second():
    """What pyroute2 makes of our strings: bytes/s in the tbf parameters."""
    from pyroute2.netlink.rtnl.tcmsg import common
    kind, kw = Shaping.from_params({"bw_mbps": 80}).qdiscs()[0]
    parms = common.get_rate_parameters(kw)
    assert parms["rate"] == 10_000_000          # 80 Mbit/s = 10 MB/s
    assert parms["limit"] == kw["limit"]


def _encode(kind: str, kw: dict) -> None:
    from pyroute2.netlink.rtnl.tcmsg import plugins, tcmsg
    msg = tcmsg()
    msg["index"] = 1
    msg["attrs"] = [["TCA_KIND", kind], ["TCA_OPTIONS", plugins[kind].get_parameters(dict(kw))]]
    msg.encode()


@pytest.mark.parametrize("params", [{"delay_ms": 50, "jitter_ms": 5, "loss_pct": 2},
                                    {"bw_mbps": 100}, {"delay_ms": 10, "bw_mbps": 1}])
def test_typical_qdiscs_encode_as_netlink(params):
    for kind, kw in Shaping.from_params(params).qdiscs():
        _encode(kind, {k: v for k, v in kw.items() if k not in ("handle", "parent")})


def test_largest_allowed_rate_fits_the_tbf_message():
    # tbf's rate is a u32 of bytes/s in pyroute2 0.9's message (no RATE64):
    # the largest allowed rate must still encode.
    top = LIMITS["bw_mbps"][1]
    kind, kw = Shaping.from_params({"bw_mbps": top}).qdiscs()[0]
    _encode(kind, {k: v for k, v in kw.items() if k != "handle"})
