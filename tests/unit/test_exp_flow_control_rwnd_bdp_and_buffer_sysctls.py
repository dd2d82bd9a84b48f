"""[09] flow_control_rwnd_bdp_and_buffer_sysctls: the window an SO_RCVBUF gives on 6.1,
the throughput it allows, and the zero-window probe schedule.  No root."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.measure.tap import zero_window_probes
from wirelab.run import catalog

EXP = catalog.load("flow_control_rwnd_bdp_and_buffer_sysctls")
MOD = EXP.module
K = kernel_facts(hz=100)


def params(**over) -> dict:
    return {p.name: p.parse(p.default) for p in EXP.PARAMS} | over


@pytest.mark.parametrize("case, window", [
    ("16k", 10 * 1448),             # 16384 - 1448 reserved = 14936, no window scale: 10 segments
    ("64k", 65536 - 1448),          # 64088 B, as the sender's snd_wnd read in the lab
    ("256k", 212992 - 1448),        # capped by rmem_max: 211544 B, as measured
    ("auto", None),
])
def test_window_of_so_rcvbuf(case, window):
    assert MOD.window_bytes(case, K) == window


def test_rmem_max_caps_the_window_only_for_an_explicit_buffer():
    big = kernel_facts(hz=100) | {"global": {"net.core.rmem_max": str(16 << 20)}}
    assert MOD.window_bytes("256k", big) == 262144 - 1448
    assert MOD.window_bytes("auto", big) is None


@pytest.mark.parametrize("case, mbps", [
    ("16k", 14480 * 8 / 0.1 / 1e6),          # 1.16 Mbit/s: the window, not the link
    ("64k", 64088 * 8 / 0.1 / 1e6),          # 5.13
    ("256k", 211544 * 8 / 0.1 / 1e6),        # 16.9 < 19.1: rmem_max keeps it under the link
    ("auto", 20 * 1448 / 1514),              # the link's payload share, 19.1 Mbit/s
])
def test_goodput_is_the_smaller_of_the_link_and_w_over_r(case, mbps):
    out = MOD.predict(params(case=case, rtt_ms=100, bw_mbps=20), K)
    assert out["goodput_mbps"] == pytest.approx(mbps)
    w = MOD.window_bytes(case, K)
    assert out.get("window_kb") == (None if w is None else w / 1e3)


PROBE_612 = {"rcvbuf": 131072, "advmss": 1448, "clamp_after_handshake": 64088,
             "clamp_after_data": 99840}     # UML 6.12.113: scaling_ratio 128, then 195


def test_the_window_rule_is_refused_outside_6_1_and_6_12():
    from wirelab.models import releases
    for release in ("6.6.1", "6.13.0"):
        with pytest.raises(releases.ModelOutOfRange, match="6.12 up to"):
            MOD.window_bytes("64k", kernel_facts(release=release) | {"rcv_probe": PROBE_612})


@pytest.mark.parametrize("case, window", [
    ("16k", 16 * 1448),         # (32768 - 1448) x 195 / 256 = 23856: whole segments (measured)
    ("64k", 98736),             # (131072 - 1448) x 195 / 256, the 2 B unit (measured 96952)
    ("256k", 65535 << 2),       # rmem_max's buffer offers more than 16 bits x 4 B (measured)
    ("auto", None),
])
def test_6_12_offers_the_buffer_at_its_measured_ratio(case, window):
    k612 = kernel_facts(release="6.12.113") | {"rcv_probe": PROBE_612}
    assert MOD.window_bytes(case, k612) == window


def test_a_paused_reader_is_probed_one_rto_after_and_then_doubling():
    out = MOD.predict(params(case="pause", rtt_ms=100), K)
    assert out == {"first_probe_rto_ratio": 1.0, "backoff_rto_ratio": 2.0,
                   "zero_window_count": 1.0, "rto_ms": 310.0}


class _Seg:
    def __init__(self, window, payload=b""):
        self.proto, self.sport, self.dport, self.window, self.payload = 6, 1, MOD.PORT, window, payload


class _Ev:
    def __init__(self, ts, out, window=0, payload=b""):
        self.ts, self.out, self.seg = ts, out, _Seg(window, payload)


def test_probes_are_timed_from_the_ack_that_emptied_the_pipe():
    """wirelab.measure.tap.zero_window_probes on a synthetic sender's timeline."""
    events = [_Ev(0.00, True, payload=b"x"), _Ev(0.05, False, 0), _Ev(0.09, False, 0),
              _Ev(0.45, True), _Ev(0.55, False, 0), _Ev(1.27, True), _Ev(1.37, False, 0),
              _Ev(1.90, False, 30000), _Ev(1.91, True, payload=b"y")]
    armed, probes, answers = zero_window_probes(events, MOD.PORT)
    assert armed == 0.09 and probes == [0.45, 1.27] and answers == [0.55, 1.37]


def test_autotuning_stops_at_half_of_tcp_rmem_2():
    # 256 KiB: a 128 KiB window, 10.5 Mbit/s at r = 100 ms, under the 19.1 Mbit/s link
    small = kernel_facts(hz=100, tcp_rmem="4096 131072 262144")
    out = MOD.predict(params(case="auto", rtt_ms=100, rmem2_bytes=262144), small)
    assert out == {"goodput_mbps": pytest.approx(131072 * 8 / 0.1 / 1e6)}
    # rmem_max is not in it: only the explicit buffer's window moves with it
    link = {"goodput_mbps": pytest.approx(20 * 1448 / 1514)}
    assert MOD.predict(params(case="auto", rtt_ms=100), K) == link


def test_the_lab_sets_tcp_rmem_on_both_ends_and_rmem_max_kernel_wide():
    s = EXP.sysctls(params(rmem2_bytes=262144, rmem_max_bytes=16777216))
    assert s["*"]["net.ipv4.tcp_rmem"] == "4096 131072 262144"
    assert s["kernel"] == {"net.core.rmem_max": "16777216"}
