"""[17] nagle_delayed_ack_stall: predictions from the kernel's HZ, the claim's pass
criterion (check), and the counter and jiffies parsers on output captured in the UML
guest.  No root, no namespaces.  The ATO and the tick are tested in
test_models_timers.py."""
from __future__ import annotations

import importlib.util

import pytest

from support import kernel_facts
from wirelab.kernel import facts
from wirelab.lab import sysctl
from wirelab.lab.sysctl import BASELINE, sysctl_path
from wirelab.measure import netstat
from wirelab.models.timers import ato_min_ms
from wirelab.run import catalog
from wirelab.spec.experiment import Experiment

ID = "nagle_delayed_ack_stall"

#: /proc/thread-self/net/netstat of the server namespace in the UML guest
#: (kernel 6.1.176) after 3 first requests and 5 Nagle-stalled requests.
NETSTAT_UML = (
    'TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts PruneCalled '
    'RcvPruned OfoPruned OutOfWindowIcmps LockDroppedIcmps ArpFilter TW TWRecycled TWKilled '
    'PAWSActive PAWSEstab DelayedACKs DelayedACKLocked DelayedACKLost ListenOverflows '
    'ListenDrops TCPHPHits TCPPureAcks TCPHPAcks TCPRenoRecovery TCPSackRecovery '
    'TCPSACKReneging TCPSACKReorder TCPRenoReorder TCPTSReorder TCPFullUndo TCPPartialUndo '
    'TCPDSACKUndo TCPLossUndo TCPLostRetransmit TCPRenoFailures TCPSackFailures '
    'TCPLossFailures TCPFastRetrans TCPSlowStartRetrans TCPTimeouts TCPLossProbes '
    'TCPLossProbeRecovery TCPRenoRecoveryFail TCPSackRecoveryFail TCPRcvCollapsed '
    'TCPBacklogCoalesce TCPDSACKOldSent TCPDSACKOfoSent TCPDSACKRecv TCPDSACKOfoRecv '
    'TCPAbortOnData TCPAbortOnClose TCPAbortOnMemory TCPAbortOnTimeout TCPAbortOnLinger '
    'TCPAbortFailed TCPMemoryPressures TCPMemoryPressuresChrono TCPSACKDiscard '
    'TCPDSACKIgnoredOld TCPDSACKIgnoredNoUndo TCPSpuriousRTOs TCPMD5NotFound '
    'TCPMD5Unexpected TCPMD5Failure TCPSackShifted TCPSackMerged TCPSackShiftFallback '
    'TCPBacklogDrop PFMemallocDrop TCPMinTTLDrop TCPDeferAcceptDrop IPReversePathFilter '
    'TCPTimeWaitOverflow TCPReqQFullDoCookies TCPReqQFullDrop TCPRetransFail TCPRcvCoalesce '
    'TCPOFOQueue TCPOFODrop TCPOFOMerge TCPChallengeACK TCPSYNChallenge TCPFastOpenActive '
    'TCPFastOpenActiveFail TCPFastOpenPassive TCPFastOpenPassiveFail '
    'TCPFastOpenListenOverflow TCPFastOpenCookieReqd TCPFastOpenBlackhole '
    'TCPSpuriousRtxHostQueues BusyPollRxPackets TCPAutoCorking TCPFromZeroWindowAdv '
    'TCPToZeroWindowAdv TCPWantZeroWindowAdv TCPSynRetrans TCPOrigDataSent '
    'TCPHystartTrainDetect TCPHystartTrainCwnd TCPHystartDelayDetect TCPHystartDelayCwnd '
    'TCPACKSkippedSynRecv TCPACKSkippedPAWS TCPACKSkippedSeq TCPACKSkippedFinWait2 '
    'TCPACKSkippedTimeWait TCPACKSkippedChallenge TCPWinProbe TCPKeepAlive TCPMTUPFail '
    'TCPMTUPSuccess TCPDelivered TCPDeliveredCE TCPAckCompressed TCPZeroWindowDrop '
    'TCPRcvQDrop TCPWqueueTooBig TCPFastOpenPassiveAltKey TcpTimeoutRehash '
    'TcpDuplicateDataRehash TCPDSACKRecvSegs TCPDSACKIgnoredDubious TCPMigrateReqSuccess '
    'TCPMigrateReqFailure\n'
    'TcpExt: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 5 0 0 0 0 7 5 7 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 '
    '0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 3 0 0 0 0 0 0 '
    '0 0 0 0 0 0 0 0 0 0 0 0 0 10 0 0 0 0 0 0 0 0 0 0 0 0 0 0 9 0 0 0 0 0 0 0 0 0 0 0 0\n'
    'IpExt: InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts OutBcastPkts '
    'InOctets OutOctets InMcastOctets OutMcastOctets InBcastOctets OutBcastOctets '
    'InCsumErrors InNoECTPkts InECT1Pkts InECT0Pkts InCEPkts ReasmOverlaps\n'
    'IpExt: 0 0 0 0 0 0 3132 2332 0 0 0 0 0 29 0 0 0 0\n'
)

TIMER_LIST_UML = (
    'Timer List Version: v0.9\n'
    'HRTIMER_MAX_CLOCK_BASES: 8\n'
    'now at 6291880192 nsecs\n'
    '  .last_jiffies   : 4294937924\n'
    '  .next_timer     : 6290000000\n'
    '  .idle_expires   : 6290000000 nsecs\n'
    'jiffies: 4294937925\n'
)


def kernel(hz: int) -> dict:
    return kernel_facts(hz=hz, release="6.1.176")


@pytest.fixture(scope="module")
def exp():
    return catalog.load(ID)


def test_loads_by_alias_and_declares_everything(exp):
    assert catalog.load("nagle").id == ID
    assert catalog.load("delayed_ack").id == ID
    # Every metric is judged (each has its band).
    assert [m.name for m in exp.metrics if m.judged] == [m.name for m in exp.metrics]
    assert {m.name for m in exp.metrics} == set(exp.predict({"mode": "nagle", "rtt_ms": 0.0},
                                                            kernel(100)))
    assert {p["mode"] for p in exp.grid({}, quick=True)} == set(exp.MODES)
    assert len(exp.grid({})) == 15


def test_first_request_and_tick_are_measured_once_per_point(exp):
    assert {m.name for m in exp.point_metrics} == {"first_ms", "jiffy_ms"}
    assert {m.name for m in exp.trial_metrics} == {"latency_ms", "app_over_ms", "delayed_acks_count"}


@pytest.mark.parametrize("hz, band", [(100, (40.0, 60.0)), (250, (40.0, 48.0)),
                                      (1000, (40.0, 42.0))])
def test_stall_band_is_ato_plus_two_jiffies(exp, hz, band):
    assert exp.stall_band_ms(1000.0 / hz) == pytest.approx(band)
    assert exp.stall_band_ms(1000.0 / hz)[0] == ato_min_ms(hz)


@pytest.mark.parametrize("hz", [100, 250])
@pytest.mark.parametrize("r", [0.0, 10.0, 50.0])
def test_predictions_per_mode(exp, hz, r):
    got = {m: exp.predict({"mode": m, "rtt_ms": r}, kernel(hz)) for m in exp.MODES}
    assert got["nagle"]["latency_ms"] == pytest.approx(2 * r + 40.0)
    assert got["quickack"]["latency_ms"] == pytest.approx(2 * r)
    for m in ("nodelay", "writev", "cork"):
        assert got[m]["latency_ms"] == pytest.approx(r)
        assert got[m]["first_ms"] == pytest.approx(r)
    # The first request of a connection is ACKed at once: no stall.
    assert got["nagle"]["first_ms"] == pytest.approx(2 * r)
    assert [got[m]["delayed_acks_count"] for m in exp.MODES] == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert all(g["jiffy_ms"] == pytest.approx(1000.0 / hz) for g in got.values())


def test_predict_needs_hz(exp):
    no_hz = kernel_facts()
    del no_hz["hz"]
    with pytest.raises(ValueError, match="hz"):
        exp.predict({"mode": "nagle", "rtt_ms": 0.0}, no_hz)


def _entry(mode, r, latency, hz=100):
    return {"params": {"mode": mode, "rtt_ms": r}, "measured": {"latency_ms": latency},
            "predicted": {"jiffy_ms": 1000.0 / hz}}


@pytest.mark.parametrize("entry, ok", [
    (_entry("nagle", 50.0, 147.5), True),             # stall 47.5 in [40, 60]
    (_entry("nagle", 0.0, 46.9), True),
    (_entry("nagle", 50.0, 139.9), False),            # earlier than the timer
    (_entry("nagle", 50.0, 160.1), False),            # > 2 jiffies late
    (_entry("nagle", 50.0, 147.5, hz=250), True),     # [40, 48] at HZ=250
    (_entry("nagle", 50.0, 148.5, hz=250), False),
    (_entry("nagle", 50.0, 300.0), False),            # a 200 ms BSD-style stall
    (_entry("nodelay", 50.0, 50.9), True),            # r + 1 ms
    (_entry("nodelay", 50.0, 51.1), False),
    (_entry("writev", 0.0, 0.4), True),
    (_entry("cork", 50.0, 50.9), True),               # network time: as one write
    (_entry("cork", 50.0, 51.1), False),
    (_entry("quickack", 50.0, 101.9), True),          # 2r + 2 ms
    (_entry("quickack", 50.0, 140.0), False),         # a stall despite TCP_QUICKACK
])
def test_check_is_the_pass_criterion_of_the_claim(exp, entry, ok):
    reason = exp.check(entry)
    assert (reason is None) is ok, reason


def test_check_names_the_band_it_missed(exp):
    assert exp.check(_entry("nagle", 50.0, 300.0)) == "stall - 2r = 200.0 ms, need [40, 60]"
    assert exp.check(_entry("cork", 50.0, 52.1)) == "latency - 1r = 2.10 ms, need <= 1"


@pytest.mark.parametrize("hz, ceiling", [(100, 160.0), (250, 148.0), (1000, 142.0)])
def test_latency_envelope_is_one_sided_two_ticks_of_the_kernel(exp, hz, ceiling):
    tol, k = exp.metric("latency_ms").tolerance, {"hz": hz}
    assert tol.check([140.0], 140.0, {}, k)[0] and tol.check([ceiling], 140.0, {}, k)[0]
    assert not tol.check([139.9], 140.0, {}, k)[0] and not tol.check([ceiling + 0.1], 140.0, {}, k)[0]
    assert tol.impossible(139.9, 140.0, {}, k)          # a stall shorter than the timer
    first = exp.metric("first_ms").tolerance      # one-sided, 1 ms: a stall never passes
    assert first.check([101.0], 100.0)[0] and not first.check([101.1], 100.0)[0]
    assert first.impossible(99.9, 100.0) and not first.check([99.99], 100.0)[0]
    over = exp.metric("app_over_ms").tolerance    # the program's own time: [0, 2 ms]
    assert over.check([0.0], 0.0)[0] and over.check([2.0], 0.0)[0]
    assert not over.check([2.1], 0.0)[0] and over.impossible(-0.1, 0.0)
    jiffy = exp.metric("jiffy_ms").tolerance
    assert jiffy.check([10.4], 10.0)[0] and jiffy.check([9.6], 10.0)[0]
    assert not jiffy.check([10.6], 10.0)[0] and not jiffy.check([9.4], 10.0)[0]


def test_netstat_parser_on_captured_output():
    groups = netstat.parse_netstat(NETSTAT_UML)
    assert set(groups) >= {"TcpExt", "IpExt"}
    assert netstat.counter(NETSTAT_UML, "TcpExt", "DelayedACKs") == 5
    assert groups["TcpExt"]["DelayedACKLocked"] == 0
    with pytest.raises(netstat.CounterError, match="NoSuchCounter"):
        netstat.counter(NETSTAT_UML, "TcpExt", "NoSuchCounter")
    lines = NETSTAT_UML.splitlines()
    with pytest.raises(netstat.CounterError, match="odd number"):
        netstat.parse_netstat("\n".join(lines[:3]))
    with pytest.raises(netstat.CounterError, match="does not match"):
        netstat.parse_netstat("\n".join([lines[0], lines[3]]))


def test_jiffies_parser_on_captured_output():
    assert facts.parse_jiffies(TIMER_LIST_UML) == 4294937925
    with pytest.raises(LookupError, match="jiffies"):
        facts.parse_jiffies("Timer List Version: v0.9\n")


def _load_fresh(exp, monkeypatch, pingpong_path) -> Experiment:
    """The experiment module imported anew (under another name) on a kernel whose
    tcp_pingpong_thresh sysctl is PINGPONG_PATH (absent if it does not exist)."""
    monkeypatch.setattr(sysctl, "sysctl_path",
                        lambda name: pingpong_path if name == exp.PINGPONG else sysctl_path(name))
    spec = importlib.util.spec_from_file_location("nagle_fresh_copy", exp.module.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Experiment(module)


def test_pingpong_threshold_pinned_only_where_the_kernel_has_the_sysctl(exp, tmp_path,
                                                                        monkeypatch):
    p = {"mode": "nagle", "rtt_ms": 0.0}
    absent = _load_fresh(exp, monkeypatch, tmp_path / "absent")
    common = absent.sysctls(p)["*"]
    assert "net.ipv4.tcp_pingpong_thresh" not in common
    assert {**BASELINE, **common}["net.ipv4.tcp_timestamps"] == "1"
    assert common["net.ipv4.tcp_no_metrics_save"] == "1"
    present = tmp_path / "tcp_pingpong_thresh"
    present.write_text("1\n")
    assert _load_fresh(exp, monkeypatch, present).sysctls(p)["*"][
        "net.ipv4.tcp_pingpong_thresh"] == "1"
    # The module the runner uses decided the same way on this machine's kernel.
    assert ("net.ipv4.tcp_pingpong_thresh" in exp.sysctls(p)["*"]) == \
        sysctl_path(exp.PINGPONG).exists()
