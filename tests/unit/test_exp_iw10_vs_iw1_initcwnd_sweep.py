"""iw10_vs_iw1_initcwnd_sweep ([10]): rounds per initial window."""
from __future__ import annotations

import pytest

from support import kernel_facts
from wirelab.models import tcp
from wirelab.run import catalog


def kernel(timestamps="1"):
    """Facts of the client h1, whose tcp_rmem the experiment sets (TRANSFER_SYSCTLS)."""
    return kernel_facts(release="6.1.176", tcp_rmem="4096\t131072\t16777216",
                        tcp_timestamps=timestamps)


@pytest.fixture(scope="module")
def exp():
    return catalog.load("initcwnd")


@pytest.mark.parametrize("n, size, rounds", [
    # The claim's pass criterion: for 14480 B, N=10 gives 1 round, N=4 gives 2, N=1 gives 4.
    (10, 14480, 1), (4, 14480, 2), (1, 14480, 4), (32, 14480, 1),
    # 64 KiB = 45.3 segments: 1+2+4+8+16+32, 4+8+16+32, 10+20+40, 32+64.
    (1, 65536, 6), (4, 65536, 4), (10, 65536, 3), (32, 65536, 2)])
def test_rounds_per_initial_window(exp, n, size, rounds):
    p = {"initcwnd_segs": n, "size_bytes": size, "rtt_ms": 100}
    pred = exp.predict(p, kernel())
    assert set(pred) == {m.name for m in exp.metrics}
    assert pred["transfer_ms"] == pytest.approx((1 + rounds) * 100)
    assert pred["initial_cwnd_segs"] == n
    assert pred["snd_mss_bytes"] == 1448


def test_mss_comes_from_the_timestamp_sysctl(exp):
    pred = exp.predict({"initcwnd_segs": 10, "size_bytes": 14480, "rtt_ms": 100},
                       kernel(timestamps="0"))
    assert pred["snd_mss_bytes"] == 1460 and pred["transfer_ms"] == pytest.approx(200)


def test_the_window_does_not_limit_anywhere_on_the_grid(exp):
    rcv = tcp.receiver_from_kernel(kernel(), initrwnd_segs=exp.module.INITRWND_SEGS)
    # initrwnd 64 leaves the buffer's window (44 x 1460) alone.
    assert rcv.rcv_wnd == 64240
    for p in exp.grid({}):
        iw = exp.module.iw_for(p, kernel())
        sched = tcp.simulate(p["size_bytes"], iw, 1448, rcv)
        assert not sched.rwnd_limited, p
        assert sched.n == tcp.formula_rounds(p["size_bytes"], iw, 1448)


def test_both_hosts_run_the_transfer_sysctls(exp):
    from wirelab.peers.bulk import TRANSFER_SYSCTLS
    s = exp.sysctls({"initcwnd_segs": 10, "size_bytes": 14480, "rtt_ms": 100})
    for host in ("h1", "h2"):
        assert s[host]["net.ipv4.tcp_rmem"] == TRANSFER_SYSCTLS["net.ipv4.tcp_rmem"]
        assert s[host]["net.ipv4.tcp_slow_start_after_idle"] == "0"
    assert s["*"]["net.ipv4.tcp_no_metrics_save"] == "1"


def test_rounds_are_judged_to_a_third_of_a_round_never_fewer(exp):
    tol = exp.metric("transfer_ms").tolerance
    p = {"rtt_ms": 100}
    assert tol.bounds(200.0, p) == pytest.approx((200.0, 200.0 + 100 / 3))
    assert not tol.check([233.4], 200.0, p)[0] and not tol.check([199.9], 200.0, p)[0]
    assert tol.check([233.3], 200.0, p)[0] and tol.check([200.0], 200.0, p)[0]
    assert tol.impossible(190.0, 200.0, p)                  # a round shorter than its RTT
    assert exp.metric("initial_cwnd_segs").tolerance.bounds(10.0) == (10.0, 10.0)
    assert exp.metric("snd_mss_bytes").tolerance.bounds(1448.0) == (1448.0, 1448.0)


def test_grids(exp):
    assert len(exp.grid({})) == 10
    quick = exp.grid({}, quick=True)
    assert [(p["initcwnd_segs"], p["size_bytes"], p["rtt_ms"]) for p in quick] == [
        (0, 14480, 50), (1, 14480, 50), (10, 14480, 50)]


@pytest.mark.parametrize("iw", [10, 4])
def test_without_initcwnd_on_the_route_the_kernels_own_window_is_predicted(exp, iw):
    """Linux's IW is read in the lab (a loopback connection), never assumed."""
    k = {**kernel(), "iw_segs": iw}
    pred = exp.predict({"initcwnd_segs": 0, "size_bytes": 14480, "rtt_ms": 50}, k)
    assert pred["initial_cwnd_segs"] == iw
    assert pred["transfer_ms"] == 50 * (1 + tcp.formula_rounds(14480, iw, 1448))


def test_note_says_the_formulas_rounds(exp):
    p = {"initcwnd_segs": 1, "size_bytes": 14480, "rtt_ms": 50}
    pred = exp.predict(p, kernel())
    entry = {"params": p, "predicted": pred, "measured": {"transfer_ms": 252.0}}
    assert exp.check(entry) is None
    note = exp.note(entry)
    assert "formula k=4" in note and "5.04 RTT" in note
