"""slow_start_1MB_transfer (CLAIMS [11]): the formula, the receive-window
model and the prediction built from kernel facts."""
from __future__ import annotations

import socket

import pytest

from wirelab import experiment, tcptransfer
from wirelab.slowstart import Receiver, formula_rounds, simulate

MIB = 1024 * 1024


def kernel(rmem1=131072, timestamps="1", rmem2=16777216, release="6.1.176"):
    """Kernel facts as the runner passes them (sysctls of h1, the client)."""
    return {"release": release, "hz": 100, "rmem_max": 212992,
            "sysctls": {"net.ipv4.tcp_rmem": f"4096\t{rmem1}\t{rmem2}",
                        "net.ipv4.tcp_timestamps": timestamps,
                        "net.ipv4.tcp_window_scaling": "1",
                        "net.ipv4.tcp_congestion_control": "cubic"}}


@pytest.fixture(scope="module")
def exp():
    return experiment.load("slow_start")


def params(size, r=50, cc="reno", rmem1=131072):
    return {"size_bytes": size, "rtt_ms": r, "cc": cc, "rcv_rmem1_bytes": rmem1}


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


@pytest.mark.parametrize("iw", [1, 2, 4, 10, 32])
def test_simulation_without_a_receiver_is_the_formula(iw):
    for size in [1, 1000, 1448, 14480, 14481, 65536, 100_000, MIB, 10 * MIB]:
        assert simulate(size, iw, 1448, None).n == formula_rounds(size, iw, 1448), size


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


# -- the experiment's prediction ----------------------------------------------

@pytest.mark.parametrize("size, rounds", [(1000, 1), (14480, 1), (100_000, 4), (MIB, 7),
                                          (10 * MIB, 10)])
@pytest.mark.parametrize("rmem1", [87380, 131072])
@pytest.mark.parametrize("r", [10, 50, 100])
def test_predict_from_kernel_facts(exp, size, rounds, rmem1, r):
    pred = exp.predict(params(size, r, "cubic", rmem1), kernel(rmem1))
    assert set(pred) == set(exp.METRICS)
    assert pred["transfer_ms"] == pytest.approx((1 + rounds) * r)
    assert pred["snd_mss_bytes"] == 1448


def test_mss_comes_from_the_timestamp_sysctl(exp):
    pred = exp.predict(params(MIB), kernel(timestamps="0"))
    assert pred["snd_mss_bytes"] == 1460
    assert pred["transfer_ms"] == pytest.approx(8 * 50)   # 1 MiB / 14600 = 71.8 -> k = 7


def test_predict_refuses_facts_of_another_host(exp):
    with pytest.raises(ValueError, match="tcp_rmem"):
        exp.predict(params(MIB, rmem1=87380), kernel(131072))


def test_check_marks_rwnd_limited_points(exp):
    for size, limited in [(100_000, True), (MIB, False), (14480, False)]:
        pred = exp.predict(params(size), kernel())
        entry = {"params": params(size), "predicted": pred,
                 "measured": {"transfer_ms": pred["transfer_ms"] + 3}}
        ok, note = exp.module.check(entry)
        assert ok
        assert ("rwnd-limited: +1 round expected" in note) is limited, note
        assert f"formula k={formula_rounds(size, 10, 1448)}" in note


def test_tolerance_is_half_an_rtt_plus_5_percent_both_ways(exp):
    tol = exp.tolerance("transfer_ms")
    p = params(MIB, 50)
    assert tol.bounds(400.0, p) == pytest.approx((355.0, 445.0))
    assert tol.check([444.9], 400.0, p)[0] and not tol.check([445.1], 400.0, p)[0]
    assert tol.check([355.1], 400.0, p)[0] and not tol.check([354.9], 400.0, p)[0]
    assert exp.tolerance("snd_mss_bytes").bounds(1448.0) == (1448.0, 1448.0)


def test_lab_sysctls_set_the_clients_buffer_and_no_metrics_save(exp):
    s = exp.lab_sysctls(params(MIB, rmem1=87380))
    assert s["h1"]["net.ipv4.tcp_rmem"] == "4096 87380 16777216"
    assert s["h2"]["net.ipv4.tcp_rmem"] == "4096 131072 16777216"
    for host in ("h1", "h2"):
        assert s[host]["net.ipv4.tcp_no_metrics_save"] == "1"
        assert int(s[host]["net.ipv4.tcp_wmem"].split()[2]) >= 64 * MIB
        assert "net.ipv4.tcp_congestion_control" not in s[host]   # per socket instead


def test_grids(exp):
    full = exp.grid({})
    assert len(full) == 5 * 3 * 3 * 2
    quick = exp.grid({}, quick=True)
    assert [(p["size_bytes"], p["rtt_ms"], p["cc"], p["rcv_rmem1_bytes"]) for p in quick] == [
        (14480, 50, "reno", 131072), (100_000, 50, "reno", 131072), (MIB, 50, "reno", 131072)]
    for p in full:
        exp.predict(p, kernel(p["rcv_rmem1_bytes"]))


# -- the transfer helpers (no sockets across namespaces needed) -----------------

def test_request_parsing_over_a_socketpair():
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"1048")
        a.sendall(b"576\n")
        assert tcptransfer._read_request(b) == MIB
        a.sendall(b"x" * 40)
        with pytest.raises(tcptransfer.TransferError, match="too long"):
            tcptransfer._read_request(b)
    c, d = socket.socketpair()
    with d:
        c.sendall(b"12")
        c.close()
        with pytest.raises(tcptransfer.TransferError, match="closed"):
            tcptransfer._read_request(d)


def test_cwnd_csv_times_are_relative_to_connect():
    rec = tcptransfer.ServerRecord(10.0, "reno", {}, 1448)
    rec.samples = [{"t_s": 10.1 + 0.0125 * i, **{k: i for k in tcptransfer.SAMPLE_FIELDS}}
                   for i in range(3)]
    lines = tcptransfer.cwnd_csv(rec, 10.0).splitlines()
    assert lines[0].startswith("t_ms,snd_cwnd_segs")
    assert lines[1].split(",")[:2] == ["100.000", "0"]
    assert lines[3].split(",")[0] == "125.000"
