"""[13] keepalive_connection_slow_start_after_idle: the nominal prediction, the claim's
pass criterion (check), the per-response explanation fed with TCP_INFO as the kernel
reports it, and the lab's sysctls.  No root, no namespaces.  The restart model
(tcp_cwnd_restart), the round counts and the RTO are tested in test_models_tcp.py and
test_models_timers.py."""
from __future__ import annotations

import struct

import pytest

from support import kernel_facts
from wirelab.measure import tcpinfo
from wirelab.models.tcp import TCP_INFINITE_SSTHRESH, mss_from_kernel, segments
from wirelab.run import catalog

ID = "keepalive_connection_slow_start_after_idle"
INF = 0x7FFFFFFF
CLIENT_RMEM = "4096\t4194304\t6291456"        # the lab's client (h1), as /proc shows it
KERNEL_100 = kernel_facts(hz=100, release="6.1.176", tcp_rmem=CLIENT_RMEM)
KERNEL_250 = kernel_facts(hz=250, release="6.1.0-28-amd64",    # Debian's own kernels tick at 250
                          tcp_rmem=CLIENT_RMEM)
#: The kernel facts' receive-window probe as UML 6.12.113 recorded it (ratios 128, then 195).
PROBE_612 = {"path": "veth - router (netem 10 ms each way) - veth", "mtu": 1500, "rcvbuf": 131072,
             "advmss": 1448, "sent_bytes": 14480, "clamp_after_handshake": 64088,
             "clamp_after_data": 99840}
KERNEL_612 = kernel_facts(hz=100, release="6.12.113", tcp_rmem=CLIENT_RMEM) | {"rcv_probe": PROBE_612}

#: One trial's six responses at idle_s=1, sysctl 1, r=50, as the UML run recorded them
#: (raw/point002/responses.jsonl): (ms, TCP_INFO before the send in the kernel's
#: names and units - rto in us, last_data_sent in ms - and cwnd right after it).
CAPTURED = [
    (354.57, {"snd_cwnd": 10, "snd_ssthresh": INF, "rto": 260000, "snd_mss": 1448,
              "last_data_sent": 0, "unacked": 0}, 10),
    (51.38, {"snd_cwnd": 735, "snd_ssthresh": INF, "rto": 260000, "snd_mss": 1448,
             "last_data_sent": 100, "unacked": 0}, 735),
    (51.39, {"snd_cwnd": 1460, "snd_ssthresh": INF, "rto": 260000, "snd_mss": 1448,
             "last_data_sent": 100, "unacked": 0}, 1460),
    (202.95, {"snd_cwnd": 1460, "snd_ssthresh": INF, "rto": 260000, "snd_mss": 1448,
              "last_data_sent": 1050, "unacked": 0}, 91),
    (205.55, {"snd_cwnd": 816, "snd_ssthresh": INF, "rto": 260000, "snd_mss": 1448,
              "last_data_sent": 1050, "unacked": 0}, 51),
    (253.63, {"snd_cwnd": 776, "snd_ssthresh": INF, "rto": 260000, "snd_mss": 1448,
              "last_data_sent": 1050, "unacked": 0}, 48),
]


@pytest.fixture(scope="module")
def exp():
    return catalog.load(ID)


def test_loads_by_alias_and_declares_everything(exp):
    assert catalog.load("keepalive_idle").id == ID
    assert catalog.load("slow_start_after_idle").id == ID
    assert exp.X == "idle_s"
    # Every metric is judged but the mean of the reused responses, whose every round
    # count model_miss_count judges exactly and whose slowdown check() judges.
    assert [m.name for m in exp.metrics if not m.judged] == ["reuse_ms"]
    assert {m.name for m in exp.metrics} == set(exp.predict(
        {"idle_s": 1.0, "slow_start_after_idle": "1", "rtt_ms": 50}, KERNEL_100))
    assert [p["idle_s"] for p in exp.grid({}, quick=True)].count(5.0) == 0  # quick stays short


def test_one_mib_response_is_725_segments_with_timestamps(exp):
    assert segments(exp.RESPONSE_BYTES, mss_from_kernel(KERNEL_100)) == 725
    assert segments(exp.RESPONSE_BYTES, mss_from_kernel(kernel_facts(tcp_timestamps="0"))) == 719


@pytest.mark.parametrize("kernel", [KERNEL_100, KERNEL_250])
def test_predictions_over_the_grid(exp, kernel):
    for p in exp.grid({}):
        pred = exp.predict(p, kernel)
        assert set(pred) == {m.name for m in exp.metrics}
        assert pred["new_conn_ms"] == pytest.approx(8 * 50)      # handshake + 7 rounds
        assert pred["warm_ms"] == pytest.approx(50)
        assert pred["model_miss_count"] == 0
        if int(p["slow_start_after_idle"]) == 0 or p["idle_s"] == 0.05:
            assert pred["reuse_ms"] == pytest.approx(50), p
        elif p["idle_s"] == 1.0:
            assert pred["reuse_ms"] == pytest.approx(50 * (4 + 4 + 5) / 3), p
        else:
            assert pred["reuse_ms"] == pytest.approx(7 * 50), p   # restart window = IW


@pytest.mark.parametrize("kernel, rto", [(KERNEL_100, 260.0), (KERNEL_250, 252.0)])
def test_predicted_rto_is_whole_jiffies_of_the_kernels_tick(exp, kernel, rto):
    p = {"idle_s": 1.0, "slow_start_after_idle": "1", "rtt_ms": 50}
    assert exp.predict(p, kernel)["rto_ms"] == pytest.approx(rto)


def test_nominal_rounds_of_one_trial(exp):
    p = {"idle_s": 1.0, "slow_start_after_idle": "1", "rtt_ms": 50}
    # New connection 7, warm-up 1, warm 1, then the restart chain 4, 4, 5.
    assert exp.nominal_rounds(p, KERNEL_100) == [7, 1, 1, 4, 4, 5]
    assert exp.nominal_rounds({**p, "slow_start_after_idle": "0"}, KERNEL_100) == [7, 1, 1, 1, 1, 1]


def test_predict_needs_hz(exp):
    facts = kernel_facts()
    del facts["hz"]
    with pytest.raises(ValueError, match="hz"):
        exp.predict({"idle_s": 1.0, "slow_start_after_idle": "1", "rtt_ms": 50}, facts)


def test_captured_trial_is_explained_response_by_response(exp):
    for ms, before, after_cwnd in CAPTURED:
        after = {"snd_cwnd": after_cwnd, "snd_ssthresh": INF}
        got = exp.explain_response(before, after, ms, 50.0, enabled=True)
        assert not got["miss"], (ms, got)
        assert got["expected_cwnd"] == got["measured_cwnd"] == after_cwnd
    # The same trial with the sysctl reported off would be a miss: the
    # model must be able to disagree.
    ms, before, after_cwnd = CAPTURED[3]
    off = exp.explain_response(before, {"snd_cwnd": after_cwnd, "snd_ssthresh": INF}, ms, 50.0,
                               enabled=False)
    assert off["miss"] and off["expected_cwnd"] == 1460
    # A wrong round count is a miss too (4 rounds expected from cwnd 91).
    late = exp.explain_response(before, {"snd_cwnd": after_cwnd, "snd_ssthresh": INF}, 300.0,
                                50.0, enabled=True)
    assert late["miss"] and (late["expected_rounds"], late["measured_rounds"]) == (4, 6)


def test_explain_response_reads_the_rto_in_microseconds(exp):
    ms, before, after_cwnd = CAPTURED[3]
    # An RTO of 1.1 s (in us) is longer than the 1050 ms idle: no restart, a miss.
    longer = exp.explain_response({**before, "rto": 1_100_000},
                                  {"snd_cwnd": after_cwnd, "snd_ssthresh": INF}, ms, 50.0,
                                  enabled=True)
    assert longer["expected_cwnd"] == 1460 and longer["miss"]


def _entry(idle_s, on, reuse, warm, rto=260.0):
    return {"params": {"idle_s": idle_s, "slow_start_after_idle": str(on), "rtt_ms": 50.0},
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
def test_check_is_the_pass_criterion_of_the_claim(exp, entry, ok):
    reason = exp.check(entry)
    assert (reason is None) is ok, reason
    if reason is not None:
        assert "x, need" in reason
    assert "x" in exp.note(entry)


def test_note_gives_the_ratio(exp):
    assert exp.note(_entry(1.0, 1, 220.0, 51.0)) == "reuse/warm 4.31x"


def test_rounds_are_judged_to_a_third_of_a_round_never_fewer(exp):
    """8 rounds for a new connection at r = 50: [400, 416.7]; 7 or 9 never pass, and
    fewer than the model's rounds is a lab fault, not a deviation."""
    tol = exp.metric("new_conn_ms").tolerance
    assert exp.metric("warm_ms").tolerance == tol
    params = {"rtt_ms": 50.0}
    assert tol.bounds(400.0, params) == pytest.approx((400.0, 400.0 + 50 / 3))
    assert tol.check([405.0], 400.0, params)[0]
    assert not tol.check([450.0], 400.0, params)[0] and not tol.check([350.0], 400.0, params)[0]
    assert tol.impossible(350.0, 400.0, params) and not tol.impossible(399.97, 400.0, params)


@pytest.mark.parametrize("hz, ceiling", [(100, 270.0), (250, 264.0), (1000, 261.0)])
def test_the_rto_may_be_one_tick_late_at_the_kernels_tick(exp, hz, ceiling):
    rto = exp.metric("rto_ms").tolerance
    assert rto.bounds(260.0, {}, {"hz": hz}) == pytest.approx((260.0, ceiling))
    assert not rto.check([ceiling + 0.5], 260.0, {}, {"hz": hz})[0]
    miss = exp.metric("model_miss_count").tolerance
    assert miss.check([0.0], 0.0)[0] and not miss.check([1.0], 0.0)[0]


def _tcp_info_bytes(**f) -> bytes:
    """struct tcp_info packed by hand at the C offsets (not via tcpinfo.build)."""
    buf = bytearray(232)
    buf[0], buf[1] = f.get("state", 1), f.get("ca_state", 0)
    struct.pack_into("=5I", buf, 8, f["rto_us"], f["ato_us"], f["snd_mss"], f["rcv_mss"],
                     f["unacked"])
    struct.pack_into("=3I", buf, 44, f["last_data_sent"], 0, f["last_data_recv"])
    struct.pack_into("=5I", buf, 68, f["rtt_us"], f["rttvar_us"], f["ssthresh"], f["cwnd"],
                     f["advmss"])
    struct.pack_into("=I", buf, 100, f["total_retrans"])
    return bytes(buf)


def test_tcp_info_decoding_in_the_kernels_units():
    raw = _tcp_info_bytes(rto_us=260000, ato_us=40000, snd_mss=1448, rcv_mss=536, unacked=3,
                          last_data_sent=1050, last_data_recv=20, rtt_us=50367, rttvar_us=14,
                          ssthresh=INF, cwnd=1460, advmss=1448, total_retrans=0)
    info = tcpinfo.parse(raw)
    assert info["rto"] == 260000 and info["ato"] == 40000        # us
    assert (info["snd_mss"], info["rcv_mss"], info["unacked"]) == (1448, 536, 3)
    assert (info["last_data_sent"], info["last_data_recv"]) == (1050, 20)   # ms
    assert info["rtt"] == 50367 and info["rttvar"] == 14        # us
    assert (info["snd_ssthresh"], info["snd_cwnd"], info["advmss"]) == (INF, 1460, 1448)
    assert info["total_retrans"] == 0 and info["state"] == 1
    # Everything explain_response reads lies before snd_cwnd's end: enough bytes are
    # required, fewer refused.
    assert tcpinfo.parse(raw[:100])["snd_cwnd"] == 1460
    with pytest.raises(tcpinfo.TcpInfoError, match="at least 84"):
        tcpinfo.parse(raw[:83])


def test_parsed_tcp_info_feeds_the_explanation(exp):
    """The server's records are tcpinfo.parse() dicts: the captured state, as bytes,
    explains the restarted response."""
    ms, before, after_cwnd = CAPTURED[3]
    b = tcpinfo.parse(tcpinfo.build(**before))
    a = tcpinfo.parse(tcpinfo.build(snd_cwnd=after_cwnd, snd_ssthresh=TCP_INFINITE_SSTHRESH))
    got = exp.explain_response(b, a, ms, 50.0, enabled=True)
    assert got["expected_cwnd"] == 91 and got["expected_rounds"] == 4 and not got["miss"]


@pytest.mark.parametrize("on", [0, 1])
def test_sysctl_is_set_on_the_server_and_pinned_everywhere(exp, on):
    s = exp.sysctls({"idle_s": 1.0, "slow_start_after_idle": str(on), "rtt_ms": 50.0})
    assert s["h2"]["net.ipv4.tcp_slow_start_after_idle"] == str(on)
    assert s["*"]["net.ipv4.tcp_no_metrics_save"] == "1"
    # The whole 1 MiB response must fit the initial send buffer.
    assert int(s["*"]["net.ipv4.tcp_wmem"].split()[1]) >= 2 * exp.RESPONSE_BYTES


def test_a_kernel_whose_window_rule_the_model_lacks_is_refused():
    """The client's window comes from the release's receive-window model: 6.1's and
    6.12's; 6.6 (no clamp following the ratio) and 6.13 are refused, not guessed."""
    from wirelab.models.releases import ModelOutOfRange
    exp = catalog.load(ID)
    params = {p.name: p.parse(p.default) for p in exp.PARAMS}
    for release in ("6.6.1", "6.13.2"):
        facts = kernel_facts(hz=100, release=release, tcp_rmem=CLIENT_RMEM) | {"rcv_probe": PROBE_612}
        with pytest.raises(ModelOutOfRange, match=f"6.12 up to .* 6.13; this is {release}"):
            exp.predict(params, facts)


def test_6_12_predicts_the_same_rounds_from_its_measured_ratio(exp):
    p = {"idle_s": 1.0, "slow_start_after_idle": "1", "rtt_ms": 50}
    assert exp.nominal_rounds(p, KERNEL_612) == [7, 1, 1, 4, 4, 5]
    assert exp.nominal_rounds({**p, "slow_start_after_idle": "0"}, KERNEL_612) == [7, 1, 1, 1, 1, 1]


def test_a_client_buffer_whose_window_cannot_hold_a_response_is_refused(exp):
    """At the default tcp_rmem[1] (131072) the window after the first response is what
    autotuning made of it (on 6.12 a second round in 4 of 12 trials): not cwnd's rounds."""
    p = {"idle_s": 1.0, "slow_start_after_idle": "1", "rtt_ms": 50}
    for facts in (kernel_facts(hz=100, release="6.1.176"),
                  kernel_facts(hz=100, release="6.12.113") | {"rcv_probe": PROBE_612}):
        with pytest.raises(ValueError, match="below one response"):
            exp.nominal_rounds(p, facts)


def test_the_client_buffer_is_the_one_the_facts_were_read_with(exp):
    s = exp.lab_sysctls({"idle_s": 1.0, "slow_start_after_idle": "1", "rtt_ms": 50})
    assert s["h1"]["net.ipv4.tcp_rmem"].split() == CLIENT_RMEM.split()
