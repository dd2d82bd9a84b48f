"""wirelab.measure.series: events and values bucketed by time, written beside the faults
as the Timeline figure reads them.  No root."""
from __future__ import annotations

import csv
import json
import threading
import time

import pytest

from wirelab.lab import faults
from wirelab.measure import series
from wirelab.spec.context import RawWriter


class Clock:
    t = 100.0

    def __call__(self):
        return self.t


def test_counts_become_rates_and_values_percentiles_per_bucket():
    clock = Clock()
    s = series.Series(bucket_s=0.5, clock=clock)
    s.start()
    for t in (100.1, 100.2, 100.3, 101.4):
        s.count("ok", t)
    for v in range(1, 11):
        s.value("latency_ms", float(v), 100.6)
    rows = s.rows(1.5)
    assert [r["t_s"] for r in rows] == [0.25, 0.75, 1.25]
    assert [r["ok_per_s"] for r in rows] == [6.0, 0.0, 2.0]
    assert rows[1]["latency_ms_p50"] == 5.5 and rows[1]["latency_ms_p90"] == 10.0
    assert rows[0]["latency_ms_p50"] is None          # nothing came back: a gap, not a zero
    assert s.rate("ok", 0.0, 1.0) == 3.0 and s.rate("ok", 1.0, 1.5) == 2.0
    assert s.values("latency_ms", 0.5, 1.0) == [float(v) for v in range(1, 11)]
    with pytest.raises(ValueError, match="bucket_s 0"):
        series.Series(bucket_s=0)


def test_write_appends_each_trial_with_its_faults(tmp_path):
    clock = Clock()
    s = series.Series(clock=clock)
    s.count("ok", 100.5)
    raw = RawWriter(tmp_path, 0)
    tl = faults.Timeline([faults.Event(1.0, faults.Down("h1", "h2"), for_s=2.0)])
    player = faults.Player(None, tl, clock=clock)
    player.marks.append(faults.Mark(1.01, 1.0, True, "h1-h2 down"))
    series.write(raw, 0, s, 2.0, player)
    series.write(raw, 1, s, 2.0)
    with open(tmp_path / "raw/point000/timeline.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["repeat"], r["t_s"], r["ok_per_s"]) for r in rows] == [
        ("0", "0.5", "1.0"), ("0", "1.5", "0.0"), ("1", "0.5", "1.0"), ("1", "1.5", "0.0")]
    rec = json.loads((tmp_path / "raw/point000/faults.jsonl").read_text())
    assert rec == {"repeat": 0, "spans": [[1.0, 3.0, "h1-h2 down"]], "marks": [[1.01, True, "h1-h2 down"]]}


def test_sample_counts_a_counters_growth_in_units():
    s, stop, value = series.Series(1.0), threading.Event(), [0]
    s.start()
    t = series.sample(s, "x_kbit", lambda: value[0], stop, every_s=0.01)
    for _ in range(10):
        value[0] += 1000            # 8 kbit each
        time.sleep(0.02)
    time.sleep(0.05)
    stop.set()
    t.join(2)
    assert s.rate("x_kbit", 0, 1) == 80.0       # 10,000 bytes: 80 units of 125 B, no remainder lost
