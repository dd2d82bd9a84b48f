"""wirelab.measure.tap helpers on synthetic timelines: a timeline with the window field,
the persist timer's schedule in RTOs, taps owned by a lab's undo stack.  No root."""
from __future__ import annotations

import pytest

from wirelab.errors import LabError
from wirelab.measure import tap
from wirelab.measure.packets import Segment
from wirelab.measure.tap import Event

S, R, PORT = "10.0.1.2", "10.0.2.2", 7601


def ev(ts: float, out: bool, window: int = 0, payload: bytes = b"", seq: int = 1) -> Event:
    """A packet at the sender S (OUT: S sent it) of its connection to R:PORT."""
    src, sport, dst, dport = (S, 40000, R, PORT) if out else (R, PORT, S, 40000)
    return Event(ts, out, Segment(ts, src, sport, dst, dport, seq, 1, 0x10, payload, 6, window))


def test_a_timeline_may_show_each_packets_window_and_sequence_number():
    events = [ev(1.000, True, 502, b"x" * 10, seq=7), ev(1.0125, False, 0)]
    plain = tap.timeline(events, 1.0)
    assert plain == ("     0.000 > 10.0.1.2:40000 10.0.2.2:7601 A 10\n"
                     "    12.500 < 10.0.2.2:7601 10.0.1.2:40000 A 0\n")
    assert tap.timeline(events, 1.0, windows=True) == "".join(
        f"{line} win={w} seq={q}\n" for line, w, q in zip(plain.splitlines(), (502, 0), (7, 1),
                                                           strict=True))
    assert tap.timeline([], windows=True) == ""


def _paused() -> list[Event]:
    return [ev(0.00, True, payload=b"x"), ev(0.05, False, 0), ev(0.09, False, 0),
            ev(0.40, True), ev(0.50, False, 0), ev(1.10, True), ev(1.20, False, 0),
            ev(1.90, False, 30000), ev(1.91, True, payload=b"y")]


def test_the_persist_schedule_is_counted_in_the_rto_tcp_info_reported_while_shut():
    samples = [{"snd_wnd": 64000, "rto": 999_000}, {"snd_wnd": 0, "rto": 300_000},
               {"snd_wnd": 0, "rto": 600_000}]
    got = tap.persist_schedule(_paused(), samples, PORT)
    assert (got.armed, got.probes, got.answers, got.rto_s) == (0.09, [0.40, 1.10], [0.50, 1.20], 0.3)
    assert got.first_probe_rto == pytest.approx(0.31 / 0.3)
    assert got.backoff_rto == pytest.approx(0.60 / 0.3)
    with pytest.raises(LabError, match="never showed the zero window"):
        tap.persist_schedule(_paused(), samples[:1], PORT)


def test_open_taps_leaves_each_tap_to_the_labs_undo_stack(monkeypatch):
    made = []

    class _Tap:
        def __init__(self, node, icmp=False):
            self.node, self.icmp, self.closed = node, icmp, False
            made.append(self)

        def close(self):
            self.closed = True

    class _Undo:
        def __init__(self):
            self.steps = []

        def push(self, what, fn):
            self.steps.append((what, fn))

    class _Lab(dict):
        undo = _Undo()
    monkeypatch.setattr(tap, "Tap", _Tap)
    lab = _Lab(h1="node-h1", h2="node-h2")
    taps = tap.open_taps(lab, "h1", "h2", icmp=True)
    assert {n: (t.node, t.icmp) for n, t in taps.items()} == {"h1": ("node-h1", True),
                                                              "h2": ("node-h2", True)}
    assert [w for w, _ in lab.undo.steps] == ["close the packet tap on h1", "close the packet tap on h2"]
    for _, fn in lab.undo.steps:
        fn()
    assert all(t.closed for t in made)
