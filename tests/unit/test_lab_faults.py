"""wirelab.lab.faults: each fault changes what it names and puts it back, and the timeline
applies and undoes them at the right times (a fake lab and a fake clock; no root)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from wirelab.errors import BadInput, LabError
from wirelab.lab import faults
from wirelab.lab.shaping import Shaping


class Intf:
    def __init__(self):
        self.shaping = Shaping()


class Node:
    def __init__(self, name, ip):
        self.name, self.role = name, "host"
        self.intfs = {f"{name}-eth0": Intf()}
        self.intfs[f"{name}-eth0"].ip = ip


class FakeLab:
    """Records what the faults ask of a lab, in order."""

    def __init__(self):
        self.nodes = {"h1": Node("h1", "10.0.0.1/24"), "h2": Node("h2", "10.0.0.2/24")}
        self.log: list[tuple] = []

    def __getitem__(self, name):
        return self.nodes[name]

    def link_ends(self, a, b):
        ends = [(self.nodes["h1"], "h1-eth0"), (self.nodes["h2"], "h2-eth0")]
        return ends if a == "h1" else ends[::-1]

    def shape(self, node, ifname, **params):
        s = Shaping.from_params(params)
        self.nodes[node].intfs[ifname].shaping = s
        self.log.append(("shape", ifname, {k: v for k, v in s.as_dict().items() if v}))

    def set_link(self, a, b, up):
        self.log.append(("link", a, b, up))
        return 0


class Clock:
    """Time that moves only when the player waits."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def wait(self, s, stop):
        self.t += s
        return stop.is_set()


def played(lab, events, registry=None):
    clock = Clock()
    p = faults.Player(lab, faults.Timeline(events), clock=clock, wait=clock.wait, registry=registry)
    p._play()               # synchronously, on the fake clock
    return p, clock


def test_impair_changes_only_what_it_names_and_undo_restores_it():
    lab = FakeLab()
    lab.shape("h1", "h1-eth0", delay_ms=10.0)
    undo = faults.Impair("h1", "h2", {"loss_pct": 5.0}, direction="a>b").apply(lab)
    assert lab.nodes["h1"].intfs["h1-eth0"].shaping == Shaping(delay_ms=10.0, loss_pct=5.0)
    assert lab.nodes["h2"].intfs["h2-eth0"].shaping == Shaping()      # one way only
    undo()
    assert lab.nodes["h1"].intfs["h1-eth0"].shaping == Shaping(delay_ms=10.0)
    faults.Impair("h2", "h1", {"corrupt_pct": 1.0}, direction="a>b").apply(lab)
    assert lab.nodes["h2"].intfs["h2-eth0"].shaping.corrupt_pct == 1.0    # A is h2 here


@pytest.mark.parametrize("changes, direction, says", [
    ({"lossy": 1.0}, "both", "lossy: allowed delay_ms"),
    ({}, "both", "no change"),
    ({"loss_pct": 1.0}, "up", "direction 'up': allowed both, a>b, b>a"),
    ({"reorder_pct": 25.0}, "both", "reorder_pct needs delay_ms > 0"),
    ({"burst_loss_pct": 5.0}, "both", "burst_loss_pct and burst_len_pkts go together"),
    ({"loss_pct": 1.0, "burst_loss_pct": 5.0, "burst_len_pkts": 4.0}, "both", "two loss models"),
    ({"loss_pct": 101.0}, "both", "outside the allowed range 0-100"),
])
def test_impair_refuses_bad_values_naming_them(changes, direction, says):
    with pytest.raises(BadInput, match=says):
        faults.Impair("h1", "h2", changes, direction=direction)


def test_burst_loss_is_a_gilbert_model_with_the_mean_loss_and_burst_asked():
    s = Shaping(burst_loss_pct=5.0, burst_len_pkts=4.0)
    p, r = s.gemodel()
    assert r == 25.0 and p == pytest.approx(100 * 0.05 * 0.25 / 0.95)
    assert p / (p + r) == pytest.approx(0.05)            # the stationary loss
    assert s.netem_args(1000) == ["limit", "1000", "loss", "gemodel", f"{p:.6f}%", "25.000000%",
                                  "100%", "0%"]
    both = Shaping(delay_ms=20.0, jitter_ms=2.0, duplicate_pct=1.0, corrupt_pct=0.5, reorder_pct=25.0)
    assert both.netem_args(50) == ["limit", "50", "delay", "20000us", "2000us", "duplicate", "1%",
                                   "corrupt", "0.5%", "reorder", "25%", "gap", "1"]
    assert both.gemodel() is None and both.needs_netem
    kinds = dict(both.qdiscs())
    assert kinds["netem"]["duplicate"] == 1.0 and kinds["netem"]["prob_corrupt"] == 0.5
    assert kinds["netem"]["prob_reorder"] == 25.0


def test_the_timeline_applies_and_undoes_each_fault_at_its_time():
    lab = FakeLab()
    events = [faults.Event(2.0, faults.Impair("h1", "h2", {"delay_ms": 50.0}), for_s=3.0),
              faults.Event(5.0, faults.Down("h1", "h2"), for_s=1.0),
              faults.Event(4.0, faults.Impair("h1", "h2", {"loss_pct": 10.0}, direction="b>a"))]
    p, clock = played(lab, events)
    assert [(m.t_s, m.apply, m.text) for m in p.marks] == [
        (2.0, True, "h1<->h2 delay_ms=50"), (4.0, True, "h1<-h2 loss_pct=10"),
        (5.0, False, "h1<->h2 delay_ms=50"), (5.0, True, "h1-h2 down"), (6.0, False, "h1-h2 down")]
    assert [e for e in lab.log if e[0] == "link"] == [("link", "h1", "h2", False), ("link", "h1", "h2", True)]
    assert p.in_force() == ["h1<-h2 loss_pct=10"]        # no end: in force until stop()
    assert lab.nodes["h2"].intfs["h2-eth0"].shaping == Shaping(loss_pct=10.0)
    p.stop()
    assert p.in_force() == [] and lab.nodes["h2"].intfs["h2-eth0"].shaping == Shaping()
    assert p.marks[-1].apply is False and p.marks[-1].text == "h1<-h2 loss_pct=10"
    assert faults.Timeline(events).end_s == 6.0


def test_a_fault_ending_as_another_begins_is_undone_first():
    a = faults.Event(0.0, faults.Impair("h1", "h2", {"delay_ms": 5.0}), for_s=1.0)
    b = faults.Event(1.0, faults.Impair("h1", "h2", {"delay_ms": 9.0}))
    steps = faults.Timeline([b, a]).steps()
    assert [(s.t_s, s.apply, s.event) for s in steps] == [(0.0, True, 1), (1.0, False, 1), (1.0, True, 0)]


def test_stop_undoes_what_is_in_force_newest_first_and_a_failure_is_a_lab_error():
    lab, order = FakeLab(), []

    def change(name):
        def do(lab):
            order.append(f"+{name}")
            return lambda: order.append(f"-{name}")
        return do

    def broken(lab):
        raise OSError("vtysh: no such daemon")
    events = [faults.Event(0.0, faults.Action("first", change("a"))),
              faults.Event(1.0, faults.Action("second", change("b"))),
              faults.Event(2.0, faults.Action("bgp policy edit", broken))]
    clock = Clock()
    player = faults.Player(lab, faults.Timeline(events), clock=clock, wait=clock.wait)
    said = "a fault failed: applying bgp policy edit at 2 s: OSError: vtysh: no such daemon"
    with pytest.raises(LabError, match=said):
        with player:
            player._thread.join()
    assert order == ["+a", "+b", "-b", "-a"]


def test_pause_stops_a_process_until_undone_and_kill_ends_it():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        undo = faults.Signal("server", "pause").apply(None, {"server": proc})
        time.sleep(0.05)
        assert Path(f"/proc/{proc.pid}/stat").read_text().split(") ")[1][0] == "T"
        undo()
        time.sleep(0.05)
        assert Path(f"/proc/{proc.pid}/stat").read_text().split(") ")[1][0] == "S"
        faults.Signal("server", "kill").apply(None, {"server": proc.pid})
        assert proc.wait(5) == -9
    finally:
        proc.kill()
        proc.wait()
    with pytest.raises(LabError, match="no process registered as 'db'"):
        faults.Signal("db", "pause").apply(None, {})
    with pytest.raises(BadInput, match="signal 'term': allowed kill, pause"):
        faults.Signal("db", "term")


def test_partition_drops_each_pair_one_way_and_removes_its_rules(monkeypatch):
    lab, rules = FakeLab(), []
    monkeypatch.setattr(faults.firewall, "rule", lambda node, *r: rules.append(("+", node.name, r)))
    monkeypatch.setattr(faults.firewall, "delete", lambda node, *r: rules.append(("-", node.name, r)))
    undo = faults.Partition(("h1",), ("h2",)).apply(lab)
    assert rules == [("+", "h1", ("OUTPUT", "-d", "10.0.0.2", "-j", "DROP")),
                     ("+", "h1", ("FORWARD", "-d", "10.0.0.2", "-j", "DROP"))]
    undo()
    assert [r[0] for r in rules] == ["+", "+", "-", "-"]
    rules.clear()
    faults.Partition(("h1",), ("h2",), one_way=False).apply(lab)
    assert {(r[1], r[2][2]) for r in rules} == {("h1", "10.0.0.2"), ("h2", "10.0.0.1")}


def test_events_refuse_negative_times():
    with pytest.raises(BadInput, match="at_s -1 must be >= 0"):
        faults.Event(-1, faults.Down("h1", "h2"))
    with pytest.raises(BadInput, match="for_s 0"):
        faults.Event(1, faults.Down("h1", "h2"), for_s=0)


def test_periodic_calls_at_its_rate_until_undone():
    calls: list[float] = []
    act = faults.periodic("tick", 50.0, lambda: calls.append(time.monotonic()))
    undo = act.apply(None)
    time.sleep(0.3)
    undo()
    n = len(calls)
    time.sleep(0.1)
    assert len(calls) == n and 12 <= n <= 17, n             # 0.3 s at 50/s, the first at once
    with pytest.raises(BadInput, match="rate 0"):
        faults.periodic("never", 0, lambda: None)
