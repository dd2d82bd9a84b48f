"""iw10_vs_iw1_initcwnd_sweep (CLAIMS [10]): rounds per initial window."""
from __future__ import annotations

import pytest

from wirelab import experiment


def kernel(timestamps="1"):
    return {"release": "6.1.176", "hz": 100, "rmem_max": 212992,
            "sysctls": {"net.ipv4.tcp_rmem": "4096\t131072\t16777216",
                        "net.ipv4.tcp_timestamps": timestamps,
                        "net.ipv4.tcp_window_scaling": "1"}}


@pytest.fixture(scope="module")
def exp():
    return experiment.load("initcwnd")


@pytest.mark.parametrize("n, size, rounds", [
    # CLAIMS [10]: for 14480 B, N=10 gives 1 round, N=4 gives 2, N=1 gives 4.
    (10, 14480, 1), (4, 14480, 2), (1, 14480, 4), (32, 14480, 1),
    # 64 KiB = 45.3 segments: 1+2+4+8+16+32, 4+8+16+32, 10+20+40, 32+64.
    (1, 65536, 6), (4, 65536, 4), (10, 65536, 3), (32, 65536, 2)])
def test_rounds_per_initial_window(exp, n, size, rounds):
    p = {"initcwnd_segs": n, "size_bytes": size, "rtt_ms": 100}
    pred = exp.predict(p, kernel())
    assert pred["transfer_ms"] == pytest.approx((1 + rounds) * 100)
    assert pred["initial_cwnd_segs"] == n
    assert pred["snd_mss_bytes"] == 1448


def test_the_window_does_not_limit_anywhere_on_the_grid(exp):
    from wirelab import slowstart
    rcv = slowstart.receiver_from_kernel(kernel(), initrwnd_segs=exp.module.INITRWND_SEGS)
    # initrwnd 64 leaves the buffer's window (44 x 1460) alone.
    assert rcv.rcv_wnd == 64240
    for p in exp.grid({}):
        sched = slowstart.simulate(p["size_bytes"], p["initcwnd_segs"], 1448, rcv)
        assert not sched.rwnd_limited, p
        assert sched.n == slowstart.formula_rounds(p["size_bytes"], p["initcwnd_segs"], 1448)


def test_tolerance_is_30_percent_of_an_rtt_plus_5_ms(exp):
    tol = exp.tolerance("transfer_ms")
    p = {"rtt_ms": 100}
    assert tol.bounds(200.0, p) == pytest.approx((165.0, 235.0))
    assert not tol.check([235.1], 200.0, p)[0] and not tol.check([164.9], 200.0, p)[0]
    assert exp.tolerance("initial_cwnd_segs").bounds(10.0) == (10.0, 10.0)


def test_grids(exp):
    assert len(exp.grid({})) == 8
    quick = exp.grid({}, quick=True)
    assert [(p["initcwnd_segs"], p["size_bytes"], p["rtt_ms"]) for p in quick] == [
        (1, 14480, 50), (10, 14480, 50)]


def test_note_says_the_formulas_rounds(exp):
    p = {"initcwnd_segs": 1, "size_bytes": 14480, "rtt_ms": 50}
    pred = exp.predict(p, kernel())
    ok, note = exp.module.check({"params": p, "predicted": pred,
                                 "measured": {"transfer_ms": 252.0}})
    assert ok and "formula k=4" in note and "5.04 RTT" in note
