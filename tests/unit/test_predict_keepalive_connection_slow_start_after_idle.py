"""[13] keepalive_connection_slow_start_after_idle: the restart model
(tcp_cwnd_restart), the round counts, the nominal prediction, the CLAIMS
verdict hook, and TCP_INFO decoding.  No root, no namespaces."""
from __future__ import annotations

import struct

import pytest

from wirelab import experiment
from wirelab import keepalive_tcpinfo as tcpinfo

ID = "keepalive_connection_slow_start_after_idle"
INF = 0x7FFFFFFF
KERNEL_100 = {"release": "6.1.176", "sysctls": {"net.ipv4.tcp_timestamps": "1"}, "hz": 100}
KERNEL_250 = {"release": "6.18.0", "sysctls": {"net.ipv4.tcp_timestamps": "1"}, "hz": 250}

#: One trial's six responses at idle_s=1, sysctl 1, r=50, as the UML run
#: recorded them (raw/point002/responses.jsonl): (ms, TCP_INFO before the
#: send, cwnd right after it).
CAPTURED = [
    (354.57, {"snd_cwnd": 10, "snd_ssthresh": INF, "rto_ms": 260.0, "snd_mss": 1448,
              "last_data_sent_ms": 0, "unacked": 0}, 10),
    (51.38, {"snd_cwnd": 735, "snd_ssthresh": INF, "rto_ms": 260.0, "snd_mss": 1448,
             "last_data_sent_ms": 100, "unacked": 0}, 735),
    (51.39, {"snd_cwnd": 1460, "snd_ssthresh": INF, "rto_ms": 260.0, "snd_mss": 1448,
             "last_data_sent_ms": 100, "unacked": 0}, 1460),
    (202.95, {"snd_cwnd": 1460, "snd_ssthresh": INF, "rto_ms": 260.0, "snd_mss": 1448,
              "last_data_sent_ms": 1050, "unacked": 0}, 91),
    (205.55, {"snd_cwnd": 816, "snd_ssthresh": INF, "rto_ms": 260.0, "snd_mss": 1448,
              "last_data_sent_ms": 1050, "unacked": 0}, 51),
    (253.63, {"snd_cwnd": 776, "snd_ssthresh": INF, "rto_ms": 260.0, "snd_mss": 1448,
              "last_data_sent_ms": 1050, "unacked": 0}, 48),
]


@pytest.fixture(scope="module")
def exp():
    return experiment.load(ID)


def test_loads_by_alias_and_declares_everything(exp):
    assert experiment.load("keepalive_idle").id == ID
    assert exp.X == "idle_s"
    assert set(exp.TOLERANCE) == set(exp.METRICS)
    assert [p["idle_s"] for p in exp.grid({}, quick=True)].count(5.0) == 0  # quick stays short


def test_one_mib_is_725_segments_with_timestamps(exp):
    assert exp.mss_bytes(KERNEL_100) == 1448
    assert exp.mss_bytes({"sysctls": {"net.ipv4.tcp_timestamps": "0"}}) == 1460
    assert exp.segments(1 << 20, 1448) == 725
    assert exp.segments(1448, 1448) == 1


@pytest.mark.parametrize("r, jiffy, rto", [(50, 10.0, 260.0), (50, 4.0, 252.0), (50, 1.0, 251.0),
                                           (10, 10.0, 220.0), (55, 10.0, 260.0)])
def test_nominal_rto_is_the_first_jiffy_above_r_plus_rto_min(exp, r, jiffy, rto):
    assert exp.nominal_rto_ms(r, jiffy) == pytest.approx(rto)


class TestRestart:
    """tcp_slow_start_after_idle_check + tcp_cwnd_restart, line by line."""

    def test_off_in_flight_or_short_idle_leaves_cwnd(self, exp):
        assert exp.restart_cwnd(1460, 5000, 260, enabled=False) == 1460
        assert exp.restart_cwnd(1460, 5000, 260, enabled=True, in_flight=3) == 1460
        assert exp.restart_cwnd(1460, 260, 260, enabled=True) == 1460   # needs idle > RTO
        assert exp.restart_cwnd(1460, 100, 260, enabled=True) == 1460

    def test_one_halving_per_whole_rto_of_idle(self, exp):
        # 1050 ms idle, RTO 260: 790, 530, 270, 10 > 0 -> four halvings.
        assert exp.restart_cwnd(1460, 1050, 260, enabled=True) == 1460 >> 4 == 91
        # 1040 ms: the fourth subtraction leaves exactly 0 -> three halvings.
        assert exp.restart_cwnd(1460, 1040, 260, enabled=True) == 1460 >> 3
        assert exp.restart_cwnd(1460, 261, 260, enabled=True) == 1460 >> 1

    def test_never_below_the_restart_window(self, exp):
        assert exp.restart_cwnd(776, 5050, 260, enabled=True) == 10
        assert exp.restart_cwnd(12, 5050, 260, enabled=True) == 10      # 12 -> 6, lifted to IW
        assert exp.restart_cwnd(6, 5050, 260, enabled=True) == 6        # min(IW, cwnd)


class TestRounds:
    @pytest.mark.parametrize("cwnd, k", [(10, 7), (91, 4), (51, 4), (48, 5), (40, 5), (735, 1),
                                         (640, 2), (1460, 1)])
    def test_slow_start_rounds_for_one_mib(self, exp, cwnd, k):
        assert exp.rounds(cwnd, INF, 725) == k

    def test_congestion_avoidance_after_ssthresh(self, exp):
        # 10, 20 (ssthresh reached), then +1 per round: 21, 22, 23, 24.
        assert exp.rounds(10, 20, 100) == 6
        assert exp.rounds(10, 20, 30) == 2

    def test_four_halvings_put_the_steady_state_on_the_4_5_round_boundary(self, exp):
        """W -> W/16 -> W/16 + N: fixed point 16N/15, where W/16 = N/15."""
        n = 725
        assert exp.rounds(n // 15 + 1, INF, n) == 4
        assert exp.rounds(n // 15, INF, n) == 5

    def test_growth_rule(self, exp):
        assert exp.grown_cwnd(10, 725) == 735
        assert exp.grown_cwnd(735, 725) == 1460      # measured 735 -> 1460
        assert exp.grown_cwnd(1460, 725) == 1460     # already twice the response
        assert exp.grown_cwnd(91, 725) == 816        # measured 91 -> 816


@pytest.mark.parametrize("kernel", [KERNEL_100, KERNEL_250])
def test_predictions_over_the_grid(exp, kernel):
    for p in exp.grid({}):
        pred = exp.predict(p, kernel)
        assert set(pred) == set(exp.METRICS)
        assert pred["new_conn_ms"] == pytest.approx(8 * 50)      # handshake + 7 rounds
        assert pred["warm_ms"] == pytest.approx(50)
        assert pred["model_miss_count"] == 0
        if p["slow_start_after_idle"] == 0 or p["idle_s"] == 0.05:
            assert pred["reuse_ms"] == pytest.approx(50), p
        elif p["idle_s"] == 1.0:
            assert pred["reuse_ms"] == pytest.approx(50 * (4 + 4 + 5) / 3), p
        else:
            assert pred["reuse_ms"] == pytest.approx(7 * 50), p   # restart window = IW


def test_predict_needs_hz(exp):
    with pytest.raises(ValueError, match="hz"):
        exp.predict({"idle_s": 1.0, "slow_start_after_idle": 1, "rtt_ms": 50}, {"sysctls": {}})


def test_captured_trial_is_explained_response_by_response(exp):
    for ms, before, after_cwnd in CAPTURED:
        after = {"snd_cwnd": after_cwnd, "snd_ssthresh": INF}
        got = exp.explain_response(before, after, ms, 50.0, enabled=True)
        assert not got["miss"], (ms, got)
    # The same trial with the sysctl reported off would be a miss: the
    # model must be able to disagree.
    ms, before, after_cwnd = CAPTURED[3]
    off = exp.explain_response(before, {"snd_cwnd": after_cwnd, "snd_ssthresh": INF}, ms, 50.0,
                               enabled=False)
    assert off["miss"] and off["expected_cwnd"] == 1460


def _entry(idle_s, on, reuse, warm, rto=260.0):
    return {"params": {"idle_s": idle_s, "slow_start_after_idle": on, "rtt_ms": 50.0},
            "measured": {"reuse_ms": reuse, "warm_ms": warm, "rto_ms": rto}, "predicted": {}}


@pytest.mark.parametrize("entry, ok", [
    (_entry(1.0, 1, 220.0, 51.0), True),       # 4.3x >= 3x
    (_entry(1.0, 1, 140.0, 51.0), False),      # 2.7x
    (_entry(5.0, 1, 355.0, 51.0), True),
    (_entry(1.0, 0, 58.0, 51.0), True),        # +13.7%
    (_entry(1.0, 0, 60.0, 51.0), False),       # +17.6%
    (_entry(0.05, 1, 51.0, 51.0), True),       # no restart: within 15%
    (_entry(0.05, 1, 100.0, 51.0), False),
    (_entry(0.25, 1, 51.0, 51.0), True),       # idle < RTO < idle + r: no ratio rule
])
def test_check_is_the_claims_criterion(exp, entry, ok):
    got, note = exp.check(entry)
    assert got is ok, note
    assert "x" in note


def test_rounds_band_is_claims_11s(exp):
    tol = exp.TOLERANCE["reuse_ms"]
    params = {"rtt_ms": 50.0}
    lo, hi = tol.bounds(216.67, params)
    assert (lo, hi) == pytest.approx((216.67 - 25 - 10.8335, 216.67 + 25 + 10.8335))
    assert tol.check([200.0, 203.0, 205.0], 216.67, params)[0]      # all 4 rounds
    assert not tol.check([150.0], 216.67, params)[0]                 # one halving short of 4
    rto = exp.TOLERANCE["rto_ms"]
    assert rto.check([260.0], 260.0)[0] and rto.check([270.0], 260.0)[0]
    assert not rto.check([250.0], 260.0)[0] and not rto.check([280.0], 260.0)[0]


def _tcp_info_bytes(**f) -> bytes:
    buf = bytearray(232)
    buf[0], buf[1] = f.get("state", 1), f.get("ca_state", 0)
    struct.pack_into("=5I", buf, 8, f["rto_us"], f["ato_us"], f["snd_mss"], f["rcv_mss"],
                     f["unacked"])
    struct.pack_into("=3I", buf, 44, f["last_data_sent"], 0, f["last_data_recv"])
    struct.pack_into("=5I", buf, 68, f["rtt_us"], f["rttvar_us"], f["ssthresh"], f["cwnd"],
                     f["advmss"])
    struct.pack_into("=I", buf, 100, f["total_retrans"])
    return bytes(buf)


def test_tcp_info_decoding():
    raw = _tcp_info_bytes(rto_us=260000, ato_us=40000, snd_mss=1448, rcv_mss=536, unacked=3,
                          last_data_sent=1050, last_data_recv=20, rtt_us=50367, rttvar_us=14,
                          ssthresh=INF, cwnd=1460, advmss=1448, total_retrans=0)
    info = tcpinfo.parse(raw)
    assert info.rto_ms == 260.0 and info.ato_ms == 40.0
    assert (info.snd_mss, info.rcv_mss, info.unacked) == (1448, 536, 3)
    assert (info.last_data_sent_ms, info.last_data_recv_ms) == (1050, 20)
    assert info.rtt_ms == pytest.approx(50.367)
    assert (info.snd_ssthresh, info.snd_cwnd, info.advmss) == (INF, 1460, 1448)
    assert info.as_dict()["snd_cwnd"] == 1460
    with pytest.raises(tcpinfo.TcpInfoError, match="need at least 104"):
        tcpinfo.parse(raw[:100])


@pytest.mark.parametrize("on", [0, 1])
def test_sysctl_is_set_on_the_server_and_pinned_everywhere(exp, on):
    s = exp.lab_sysctls({"idle_s": 1.0, "slow_start_after_idle": on, "rtt_ms": 50.0})
    assert s["h2"]["net.ipv4.tcp_slow_start_after_idle"] == str(on)
    assert s["*"]["net.ipv4.tcp_no_metrics_save"] == "1"
    # The whole 1 MiB response must fit the initial send buffer.
    assert int(s["*"]["net.ipv4.tcp_wmem"].split()[1]) >= 2 * exp.RESPONSE_BYTES
