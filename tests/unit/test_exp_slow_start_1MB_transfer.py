"""slow_start_1MB_transfer ([11]): the prediction built from kernel facts, its note, its
band, the lab's sysctls, and the transfer helpers.  The formula and the receive-window
model it uses are tested in test_models_tcp.py."""
from __future__ import annotations

import socket

import pytest

from support import kernel_facts
from wirelab.lab.sysctl import BASELINE
from wirelab.models.tcp import formula_rounds
from wirelab.peers import bulk
from wirelab.run import catalog

MIB = 1024 * 1024


def kernel(rmem1=131072, timestamps="1", rmem2=16777216, release="6.1.176"):
    """Kernel facts as the runner passes them (sysctls of h1, the client)."""
    return kernel_facts(release=release, tcp_rmem=f"4096\t{rmem1}\t{rmem2}",
                        tcp_timestamps=timestamps)


@pytest.fixture(scope="module")
def exp():
    return catalog.load("slow_start")


def params(size, r=50, cc="reno", rmem1=131072):
    return {"size_bytes": size, "rtt_ms": r, "cc": cc, "rcv_rmem1_bytes": rmem1}


def host_sysctls(exp, p, host):
    """What HOST runs with: the lab's baseline, then every host's, then its own."""
    s = exp.sysctls(p)
    return {**BASELINE, **s["*"], **s.get(host, {})}


# -- the experiment's prediction ----------------------------------------------

@pytest.mark.parametrize("size, rounds", [(1000, 1), (14480, 1), (100_000, 4), (MIB, 7),
                                          (10 * MIB, 10)])
@pytest.mark.parametrize("rmem1", [87380, 131072])
@pytest.mark.parametrize("r", [10, 50, 100])
def test_predict_from_kernel_facts(exp, size, rounds, rmem1, r):
    pred = exp.predict(params(size, r, "cubic", rmem1), kernel(rmem1))
    assert set(pred) == {m.name for m in exp.metrics}
    assert pred["transfer_ms"] == pytest.approx((1 + rounds) * r)
    assert pred["snd_mss_bytes"] == 1448


def test_prediction_from_the_facts_the_lab_gives_the_client(exp):
    """The client's sysctls as the lab sets them (baseline, trial, experiment) are
    the facts predict() reads: the same rounds as above."""
    for rmem1, size, rounds in [(87380, 100_000, 4), (131072, MIB, 7)]:
        p = params(size, rmem1=rmem1)
        mine = {k.removeprefix("net.ipv4."): v for k, v in host_sysctls(exp, p, "h1").items()
                if k.startswith("net.ipv4.")}
        assert exp.predict(p, kernel_facts(**mine))["transfer_ms"] == (1 + rounds) * 50


def test_mss_comes_from_the_timestamp_sysctl(exp):
    pred = exp.predict(params(MIB), kernel(timestamps="0"))
    assert pred["snd_mss_bytes"] == 1460
    assert pred["transfer_ms"] == pytest.approx(8 * 50)   # 1 MiB / 14600 = 71.8 -> k = 7


def test_predict_refuses_facts_of_another_host(exp):
    with pytest.raises(ValueError, match="tcp_rmem"):
        exp.predict(params(MIB, rmem1=87380), kernel(131072))


def test_schedule_is_the_window_models_rounds(exp):
    s = exp.schedule(params(100_000), kernel())
    assert s.n == 4 and s.rwnd_limited
    assert [r.sent_bytes for r in s.rounds[:3]] == [14480, 28960, 51200]
    assert not exp.schedule(params(MIB), kernel()).rounds[0].rwnd_limited


def test_note_marks_rwnd_limited_points(exp):
    for size, limited in [(100_000, True), (MIB, False), (14480, False)]:
        pred = exp.predict(params(size), kernel())
        entry = {"params": params(size), "predicted": pred,
                 "measured": {"transfer_ms": pred["transfer_ms"] + 3}}
        assert exp.check(entry) is None           # the bands alone decide
        note = exp.note(entry)
        assert ("rwnd-limited: +1 round expected" in note) is limited, note
        assert f"formula k={formula_rounds(size, 10, 1448)}" in note


def test_rounds_are_judged_to_a_third_of_a_round_never_fewer(exp):
    """1 MiB at r = 50: 8 rounds, [400, 416.7] ms.  Neither 7 nor 9 rounds passes (the
    old ±(0.5 r + 5%) passed 1.05 rounds off at 10 MiB)."""
    tol = exp.metric("transfer_ms").tolerance
    p = params(MIB, 50)
    assert tol.bounds(400.0, p) == pytest.approx((400.0, 400.0 + 50 / 3))
    assert tol.check([416.6], 400.0, p)[0] and not tol.check([416.7], 400.0, p)[0]
    assert not tol.check([350.0], 400.0, p)[0] and not tol.check([450.0], 400.0, p)[0]
    big = params(10 * MIB, 10)
    assert not tol.check([1000 + 10.0], 1000.0, big)[0]       # one round late at 10 MiB
    assert exp.metric("snd_mss_bytes").tolerance.bounds(1448.0) == (1448.0, 1448.0)
    assert all(m.judged for m in exp.metrics)


def test_lab_sysctls_set_the_clients_buffer_and_no_metrics_save(exp):
    p = params(MIB, rmem1=87380)
    s = exp.lab_sysctls(p)
    assert s["h1"]["net.ipv4.tcp_rmem"] == "4096 87380 16777216"
    assert s["h2"]["net.ipv4.tcp_rmem"] == "4096 131072 16777216"
    for host in ("h1", "h2"):
        eff = host_sysctls(exp, p, host)
        assert eff["net.ipv4.tcp_no_metrics_save"] == "1"
        assert eff["net.ipv4.tcp_slow_start_after_idle"] == "0"
        assert int(eff["net.ipv4.tcp_wmem"].split()[2]) >= 64 * MIB
        assert "net.ipv4.tcp_congestion_control" not in eff   # per socket instead
        # The values the receive-window model assumes (half the buffer is window, one
        # segment reserved, timestamps and window scaling on).
        assert eff["net.ipv4.tcp_adv_win_scale"] == "1" and eff["net.ipv4.tcp_app_win"] == "31"
        assert eff["net.ipv4.tcp_timestamps"] == "1" and eff["net.ipv4.tcp_window_scaling"] == "1"


def test_grids(exp):
    full = exp.grid({})
    assert len(full) == 5 * 3 * 3 * 2
    quick = exp.grid({}, quick=True)
    assert [(p["size_bytes"], p["rtt_ms"], p["cc"], p["rcv_rmem1_bytes"]) for p in quick] == [
        (14480, 50, "reno", 131072), (100_000, 50, "reno", 131072), (MIB, 50, "reno", 131072)]
    for p in full:
        assert exp.predict(p, kernel(p["rcv_rmem1_bytes"]))["transfer_ms"] >= 2 * p["rtt_ms"]


# -- the transfer helpers (no sockets across namespaces needed) -----------------

def test_request_parsing_over_a_socketpair():
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"1048")
        a.sendall(b"576\n")
        assert bulk._read_request(b) == MIB
        a.sendall(b"x" * 40)
        with pytest.raises(bulk.TransferError, match="too long"):
            bulk._read_request(b)
    c, d = socket.socketpair()
    with d:
        c.sendall(b"12")
        c.close()
        with pytest.raises(bulk.TransferError, match="closed"):
            bulk._read_request(d)


def test_cwnd_csv_times_are_relative_to_connect():
    rec = bulk.ServerRecord(10.0, "reno", {}, 1448)
    rec.samples = [{"t_s": 10.1 + 0.0125 * i, **{k: i for k in bulk.SAMPLE_FIELDS}}
                   for i in range(3)]
    lines = bulk.cwnd_csv(rec, 10.0).splitlines()
    assert lines[0].startswith("t_ms,snd_cwnd_segs")
    assert lines[1].split(",")[:2] == ["100.000", "0"]
    assert lines[3].split(",")[0] == "125.000"
