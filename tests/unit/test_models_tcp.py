"""wirelab.models.tcp: the slow-start formula, the receive-window model (Linux 6.1
rules), rounds from any cwnd, the restart after idle, and reading the kernel facts."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.models.tcp import (
    TCP_INFINITE_SSTHRESH,
    TCP_INIT_CWND,
    Receiver,
    formula_rounds,
    grown_cwnd,
    locked_window,
    mss_eff,
    mss_from_kernel,
    receiver_from_kernel,
    restart_cwnd,
    round_note,
    rounds,
    segments,
    simulate,
)

MIB = 1024 * 1024
INF = TCP_INFINITE_SSTHRESH


def client_facts(rmem1=131072, rmem2=16777216, **sysctls) -> dict:
    """Facts of a client whose tcp_rmem is 4096 RMEM1 RMEM2 (as /proc shows it: tabs)."""
    return kernel_facts(tcp_rmem=f"4096\t{rmem1}\t{rmem2}", **sysctls)


# -- the formula -----------------------------------------------------------

@pytest.mark.parametrize("size, k", [
    (1, 1), (1000, 1), (14480, 1), (14481, 2), (43440, 2), (43441, 3),
    (100_000, 3), (101_360, 3), (101_361, 4), (MIB, 7), (10 * MIB, 10)])
def test_formula_rounds_with_iw10(size, k):
    assert formula_rounds(size, 10, 1448) == k


def test_the_texts_1mb_is_eight_rtts_not_six():
    # 6 rounds carry 630 segments = 912240 B (the text's "~880KB"): short of 1 MiB.
    assert 10 * 1448 * (2**6 - 1) == 912_240 < MIB
    assert formula_rounds(MIB, 10, 1448) == 7
    assert (1 + 7) * 50 == 400  # ms at r = 50, not ~300


def test_formula_bad_input():
    with pytest.raises(ValueError):
        formula_rounds(100, 0, 1448)
    assert formula_rounds(0, 10, 1448) == 0


@pytest.mark.parametrize("size, k", [(1, 1), (5000, 1), (14480, 1), (14481, 2),
                                     (43440, 2), (43441, 3), (100_000, 3),
                                     (101_360, 3), (101_361, 4)])
def test_formula_rounds_from_iw_and_the_kernels_mss(size, k):
    """The rounds HTTP/2's batch and one 5 KiB object take (IW 10, MSS from the
    timestamp sysctl)."""
    assert formula_rounds(size, TCP_INIT_CWND, mss_from_kernel(kernel_facts())) == k


def test_rounds_beyond_the_first_read_the_mss_from_the_timestamp_sysctl():
    def extra(size, kernel):
        return formula_rounds(size, TCP_INIT_CWND, mss_from_kernel(kernel)) - 1
    ts, no_ts = kernel_facts(tcp_timestamps="1"), kernel_facts(tcp_timestamps="0")
    assert extra(1024, ts) == 0
    assert extra(10 * 1448, ts) == 0
    assert extra(10 * 1448 + 1, ts) == 1
    assert extra(10 * 1460, no_ts) == 0
    assert extra(10 * 1460 + 1, no_ts) == 1


@pytest.mark.parametrize("iw", [1, 2, 4, 10, 32])
def test_simulation_without_a_receiver_is_the_formula(iw):
    for size in [1, 1000, 1448, 14480, 14481, 65536, 100_000, MIB, 10 * MIB]:
        assert simulate(size, iw, 1448, None).n == formula_rounds(size, iw, 1448), size


# -- the MSS -----------------------------------------------------------------

def test_mss_is_the_mtu_less_headers_and_the_timestamp_option():
    assert mss_eff(1500, True) == 1448 and mss_eff(1500, False) == 1460
    assert mss_from_kernel(kernel_facts()) == 1448                    # Linux's default: on
    assert mss_from_kernel(kernel_facts(tcp_timestamps="0")) == 1460
    facts = kernel_facts()
    del facts["sysctls"]["net.ipv4.tcp_timestamps"]
    with pytest.raises(KeyError, match="tcp_timestamps"):
        mss_from_kernel(facts)


def test_one_mib_is_725_segments_with_timestamps():
    assert segments(MIB, mss_from_kernel(kernel_facts())) == 725
    assert segments(1448, 1448) == 1
    assert segments(1449, 1448) == 2


# -- the receive window (Linux 6.1 rules) -----------------------------------

def test_receiver_numbers_for_the_two_buffers():
    r131 = Receiver(131072, 16777216, 212992, 1460)
    assert r131.full_space == 65536            # half the buffer (tcp_adv_win_scale 1)
    assert r131.rcv_wnd == 64240               # rounded down to 44 x 1460
    assert r131.window_clamp == 64076          # minus one advmss (tcp_app_win)
    assert r131.wscale == 9                    # ilog2(16 MiB) - 15
    assert r131.initial_edge() == 64512
    assert r131.rcvq_space == 14600            # 10 x advmss
    # Round 2 (20 x 1448 B) unread when its last ACK leaves: 51200 B, 35.4 segments.
    assert r131.window(28960) == 51200
    r87 = Receiver(87380, 16777216, 212992, 1460)
    assert r87.window_clamp == 42230 and r87.window(28960) == 29696


def test_window_scale_follows_the_largest_buffer():
    assert Receiver(131072, 6291456, 212992, 1460).wscale == 7
    assert Receiver(131072, 4096, 212992, 1460).wscale == 2   # rmem_max 212992
    assert Receiver(131072, 16777216, 212992, 1460, window_scaling=False).wscale == 0


def test_initrwnd_only_lowers_the_initial_window():
    plain = Receiver(131072, 16777216, 212992, 1460)
    assert Receiver(131072, 16777216, 212992, 1460, initrwnd_segs=64).rcv_wnd == plain.rcv_wnd
    assert Receiver(131072, 16777216, 212992, 1460, initrwnd_segs=4).rcv_wnd == 4 * 1460


def test_100kb_loses_a_round_to_the_window_at_131072_and_87380():
    for rmem1, round3 in [(131072, 51200), (87380, 29696)]:
        s = simulate(100_000, 10, 1448, Receiver(rmem1, 16777216, 212992, 1460))
        assert [r.sent_bytes for r in s.rounds[:3]] == [14480, 28960, round3]
        assert s.rounds[2].rwnd_limited and s.n == 4


def test_a_reader_that_keeps_up_saves_the_round_only_at_131072():
    # Reader done with round 2 before its last ACK: the window is the clamp,
    # 64076 B (44 segments) at 131072 but 42230 B (29) at 87380.
    keep_up = simulate(100_000, 10, 1448, Receiver(131072, 16777216, 212992, 1460),
                       reader_behind=False)
    assert keep_up.n == 3 and not keep_up.rwnd_limited
    s87 = simulate(100_000, 10, 1448, Receiver(87380, 16777216, 212992, 1460),
                   reader_behind=False)
    assert s87.rounds[2].sent_bytes == 42496 and s87.n == 4


def test_1mib_and_10mib_have_slack_for_the_capped_round():
    for rmem1 in (87380, 131072):
        rcv = Receiver(rmem1, 16777216, 212992, 1460)
        assert simulate(MIB, 10, 1448, rcv).n == 7
        assert simulate(10 * MIB, 10, 1448, rcv).n == 10
    # 131072: round 4's cwnd is 40 + 36 segments, as TCP_INFO showed (76).
    s = simulate(MIB, 10, 1448, Receiver(131072, 16777216, 212992, 1460))
    assert [r.cwnd_segs for r in s.rounds[:4]] == [10, 20, 40, 76]


def test_a_large_buffer_never_limits():
    rcv = Receiver(131072 * 8, 16777216, 212992, 1460)
    for size in (100_000, MIB):
        s = simulate(size, 10, 1448, rcv)
        assert not s.rwnd_limited and s.n == formula_rounds(size, 10, 1448)


def test_more_bytes_never_take_fewer_rounds():
    rcv = Receiver(87380, 16777216, 212992, 1460)
    last = 0
    for size in range(1000, 400_000, 3_333):
        n = simulate(size, 10, 1448, rcv).n
        assert n >= last
        last = n


# -- the receiver from the kernel facts ------------------------------------------

def test_receiver_from_kernel_reads_the_clients_sysctls_and_the_global_rmem_max():
    rcv = receiver_from_kernel(client_facts(87380))
    assert rcv == Receiver(87380, 16777216, 212992, 1460)   # advmss: MTU 1500 - 40
    assert receiver_from_kernel(client_facts(), initrwnd_segs=64).initrwnd_segs == 64
    # tcp_adv_win_scale and tcp_app_win come from the facts, not from constants.
    other = receiver_from_kernel(client_facts(tcp_adv_win_scale="2", tcp_app_win="0"))
    assert (other.adv_win_scale, other.app_win) == (2, 0)
    assert other.full_space == 131072 - (131072 >> 2)
    assert receiver_from_kernel(client_facts(tcp_window_scaling="0")).wscale == 0
    facts = client_facts()
    facts["global"]["net.core.rmem_max"] = "4194304"
    assert receiver_from_kernel(facts).rmem_max == 4194304
    del facts["global"]["net.core.rmem_max"]
    with pytest.raises(KeyError, match="rmem_max"):
        receiver_from_kernel(facts)


def test_round_note_names_the_formula_and_the_rounds_the_window_adds():
    # 100 KB at r = 50: the formula's 3 rounds, the window model's 4 (T = 250 ms).
    note = round_note(100_000, 10, 1448, 50.0, 250.0, 253.0)
    assert "formula k=3" in note and "rwnd-limited: +1 round expected" in note
    assert "measured 5.06 RTT" in note
    assert "rounds expected" in round_note(100_000, 10, 1448, 50.0, 300.0, None)
    plain = round_note(MIB, 10, 1448, 50.0, 400.0, None)
    assert "no round lost to rwnd" in plain and "measured" not in plain


# -- rounds from any cwnd ---------------------------------------------------------

class TestRounds:
    @pytest.mark.parametrize("cwnd, k", [(10, 7), (91, 4), (51, 4), (48, 5), (40, 5), (735, 1),
                                         (640, 2), (1460, 1)])
    def test_slow_start_rounds_for_one_mib(self, cwnd, k):
        assert rounds(cwnd, INF, 725) == k

    def test_congestion_avoidance_after_ssthresh(self):
        # 10, 20 (ssthresh reached), then +1 per round: 21, 22, 23, 24.
        assert rounds(10, 20, 100) == 6
        assert rounds(10, 20, 30) == 2

    def test_four_halvings_put_the_steady_state_on_the_4_5_round_boundary(self):
        """W -> W/16 -> W/16 + N: fixed point 16N/15, where W/16 = N/15."""
        n = 725
        assert rounds(n // 15 + 1, INF, n) == 4
        assert rounds(n // 15, INF, n) == 5

    def test_growth_rule(self):
        assert grown_cwnd(10, 725) == 735
        assert grown_cwnd(735, 725) == 1460      # measured 735 -> 1460
        assert grown_cwnd(1460, 725) == 1460     # already twice the response
        assert grown_cwnd(91, 725) == 816        # measured 91 -> 816


class TestRestart:
    """tcp_slow_start_after_idle_check + tcp_cwnd_restart, line by line."""

    def test_off_in_flight_or_short_idle_leaves_cwnd(self):
        assert restart_cwnd(1460, 5000, 260, enabled=False) == 1460
        assert restart_cwnd(1460, 5000, 260, enabled=True, in_flight=3) == 1460
        assert restart_cwnd(1460, 260, 260, enabled=True) == 1460   # needs idle > RTO
        assert restart_cwnd(1460, 100, 260, enabled=True) == 1460

    def test_one_halving_per_whole_rto_of_idle(self):
        # 1050 ms idle, RTO 260: 790, 530, 270, 10 > 0 -> four halvings.
        assert restart_cwnd(1460, 1050, 260, enabled=True) == 1460 >> 4 == 91
        # 1040 ms: the fourth subtraction leaves exactly 0 -> three halvings.
        assert restart_cwnd(1460, 1040, 260, enabled=True) == 1460 >> 3
        assert restart_cwnd(1460, 261, 260, enabled=True) == 1460 >> 1

    def test_never_below_the_restart_window(self):
        assert TCP_INIT_CWND == 10
        assert restart_cwnd(776, 5050, 260, enabled=True) == 10
        assert restart_cwnd(12, 5050, 260, enabled=True) == 10      # 12 -> 6, lifted to IW
        assert restart_cwnd(6, 5050, 260, enabled=True) == 6        # min(IW, cwnd)


@pytest.mark.parametrize("so_rcvbuf, rmem_max, window", [
    (16384, 212992, 10 * 1448),             # 16384 - 1448 = 14936: no scale, whole segments
    (65536, 212992, 65536 - 1448),          # 64 KiB: scale 1, the clamp rounded up to 2 B
    (262144, 212992, 212992 - 1448),        # rmem_max caps the buffer
    (262144, 16 << 20, 262144 - 1448),
])
def test_a_locked_buffer_offers_its_size_less_one_segment(so_rcvbuf, rmem_max, window):
    kernel = kernel_facts(release="6.1.0") | {"global": {"net.core.rmem_max": str(rmem_max)}}
    assert locked_window(so_rcvbuf, kernel, 1448) == window
    assert locked_window(16384, kernel_facts(release="6.1.0") | {"global": {}}, 1448) == 10 * 1448


def test_the_locked_window_rule_is_6_1s():
    from wirelab.models.releases import ModelOutOfRange
    with pytest.raises(ModelOutOfRange, match="6.6"):
        locked_window(65536, kernel_facts(release="6.6.1"), 1448)


# -- the receive window (Linux 6.12 rules: a measured scaling_ratio) -------------------------

#: The kernel facts' probe on UML 6.12.113 (wirelab.kernel.facts.veth_window_probe): the
#: receiving socket's clamp after the handshake and after 10 full segments, unread.
PROBE_612 = {"path": "veth - router (netem 10 ms each way) - veth", "mtu": 1500, "rcvbuf": 131072,
             "advmss": 1448, "sent_bytes": 14480, "clamp_after_handshake": 64088,
             "clamp_after_data": 99840}


def facts_612(rmem1=131072, rmem2=16777216, probe=PROBE_612, **sysctls) -> dict:
    return client_facts(rmem1, rmem2, **sysctls) | {"release": "6.12.113",
                                                   "rcv_probe": probe and dict(probe)}


def test_the_ratios_are_read_back_from_the_probes_clamps():
    from wirelab.models.tcp import scaling_ratios
    # 64088 = 65536 - 1448 (init: 50%, one segment reserved); 99840 = 131072 x 195 / 256
    assert scaling_ratios(facts_612()) == (128, 195)
    # a veth without the router hop measured 227 (one 10-segment skb): 116224 = 512 x 227
    assert scaling_ratios(facts_612(probe={**PROBE_612, "clamp_after_data": 116224})) == (128, 227)
    with pytest.raises(ValueError, match="no single scaling_ratio"):
        scaling_ratios(facts_612(probe={**PROBE_612, "clamp_after_data": 99841}))
    for probe in ({"error": "OSError: no veth"}, None):
        with pytest.raises(KeyError, match="probe"):
            scaling_ratios(facts_612(probe=probe))


def test_the_release_picks_the_rule_and_others_are_refused():
    from wirelab.models.releases import ModelOutOfRange, recording
    from wirelab.models.tcp import ScaledReceiver
    with recording() as rules:
        assert isinstance(receiver_from_kernel(facts_612()), ScaledReceiver)
        assert isinstance(receiver_from_kernel(client_facts()), Receiver)
    assert any("scaling_ratio" in r and "6.12" in r for r in rules)
    assert any("tcp_adv_win_scale" in r and "before 6.6" in r for r in rules)
    for release in ("6.6.1", "6.11.9", "6.13.0", "6.18.44"):
        with pytest.raises(ModelOutOfRange, match=f"this is {release}"):
            receiver_from_kernel(facts_612() | {"release": release})


def test_6_12_receiver_as_the_lab_measured_it():
    """UML 6.12.113, r = 50 ms, 100 kB: the client's TCP_INFO (rcv_wnd, rcv_ssthresh,
    rcv_space) and TCP_WINDOW_CLAMP after the handshake, after round 1 and after round 2."""
    rcv = receiver_from_kernel(facts_612())
    st = rcv.handshake_state()
    assert (st.clamp, st.rcv_ssthresh, st.rcvq_space) == (64088, 64088, 14480)
    assert rcv.initial_edge() == 64512 == st.rcv_wnd       # tcpi_rcv_wnd after connect
    assert rcv.wscale == 9
    st = rcv.receive(st, 14480, 1448, reader_behind=True)
    assert st.ratio == 195 and st.clamp == 99840           # TCP_WINDOW_CLAMP after round 1
    assert st.rcv_wnd == 88576                             # tcpi_rcv_wnd, round 1 unread
    assert 88127 <= st.rcv_ssthresh <= 89913   # measured 88127: truesize, not payload, queued
    st = rcv.receive(st, 28960, 1448, reader_behind=True)
    assert st.rcv_wnd == 77312                             # tcpi_rcv_wnd, round 2 unread


def test_6_12_100kb_takes_the_formulas_three_rounds():
    """Measured on 6.12: 100 kB at r = 50 in 202.8 ms = 4 RTT (6.1's rule predicts 5): round
    3 needs 56560 B and round 2's ACKs offer 77312 B at the measured ratio 195."""
    rcv = receiver_from_kernel(facts_612())
    for behind in (True, False):
        s = simulate(100_000, 10, 1448, rcv, reader_behind=behind)
        assert s.n == 3 and not s.rwnd_limited
        assert [r.sent_bytes for r in s.rounds] == [14480, 28960, 56560]
    assert simulate(14480, 10, 1448, rcv).n == 1
    assert simulate(MIB, 10, 1448, rcv).n == 7
    # at the 6.6 default ratio (50%) the round would be lost, as on 6.1
    half = receiver_from_kernel(facts_612(probe={**PROBE_612, "clamp_after_data": 65536}))
    assert half.ratio == 128 and simulate(100_000, 10, 1448, half).n == 4
    assert simulate(100_000, 10, 1448, receiver_from_kernel(facts_612(87380))).n == 4


@pytest.mark.parametrize("so_rcvbuf, rmem_max, window", [
    (16384, 212992, 16 * 1448),            # (32768 - 1448) x 195 / 256 = 23856: whole segments
    (65536, 212992, 98736),                # (131072 - 1448) x 195 / 256 = 98737, scale 1 (2 B)
    (262144, 212992, 65535 << 2),          # rmem_max caps the buffer, the header's 16 bits
    (262144, 16 << 20, 398256),            # (524288 - 1448) x 195 / 256, scale 3 (8 B)
])
def test_a_locked_buffer_on_6_12_offers_it_at_the_measured_ratio(so_rcvbuf, rmem_max, window):
    kernel = facts_612() | {"global": {"net.core.rmem_max": str(rmem_max)}}
    assert locked_window(so_rcvbuf, kernel, 1448) == window


def test_the_autotuned_windows_ceiling_follows_the_release():
    from wirelab.models.tcp import autotuned_window_max
    assert autotuned_window_max(client_facts(rmem2=6291456)) == 3145728
    assert autotuned_window_max(facts_612(rmem2=6291456)) == 6291456 * 195 // 256


def test_6_12s_syn_window_is_not_capped_at_64_kb():
    """keepalive's client (tcp_rmem[1] 4 MiB) on UML 6.12: the server's snd_wnd before
    the first response was 2096640 B - the SYN's 2 MiB rounded to 1460 B segments, scaled
    by 128 - not 6.1's 64 KB cap."""
    rcv = receiver_from_kernel(facts_612(rmem1=4194304, rmem2=6291456))
    assert rcv.rcv_wnd == 2097152 // 1460 * 1460 and rcv.wscale == 7
    assert rcv.initial_edge() == 2096640
    assert rcv.data_clamp == 4194304 * 195 // 256
