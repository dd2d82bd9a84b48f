"""Symptoms over time: what a scenario's workload saw, bucketed by second (or BUCKET_S).

Threads of a workload call :meth:`Series.count` for events (a request answered, one
failed) and :meth:`Series.value` for measurements (a latency); :meth:`Series.rows` turns
them into one row per bucket: counts as rates per second, values as their median and 90th
percentile, a bucket without values left empty (a plot shows the gap: nothing came back).
The rows go to ``raw/pointNNN/timeline.csv`` beside the faults the player applied
(``faults.jsonl``), which is what the Timeline figure draws.
"""
from __future__ import annotations

import csv
import io
import json
import math
import statistics
import threading
import time
from collections import defaultdict


class Series:
    def __init__(self, bucket_s: float = 1.0, clock=time.monotonic):
        if not bucket_s > 0:
            raise ValueError(f"bucket_s {bucket_s!r}: must be > 0")
        self.bucket_s, self.clock = bucket_s, clock
        self.t0 = clock()
        self._counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self._values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        self._lock = threading.Lock()

    def start(self, t0: float | None = None) -> None:
        """Time zero (default: now): the player's start, so faults and symptoms line up."""
        self.t0 = self.clock() if t0 is None else t0

    def _bucket(self, t: float | None) -> int:
        return int(((self.clock() if t is None else t) - self.t0) // self.bucket_s)

    def count(self, name: str, t: float | None = None, n: int = 1) -> None:
        with self._lock:
            self._counts[name][self._bucket(t)] += n

    def value(self, name: str, v: float, t: float | None = None) -> None:
        with self._lock:
            self._values[name][self._bucket(t)].append(v)

    def rate(self, name: str, start_s: float, end_s: float) -> float:
        """Mean events per second of NAME over whole buckets from START_S to END_S."""
        lo, hi = int(start_s // self.bucket_s), int(math.ceil(end_s / self.bucket_s))
        with self._lock:
            n = sum(self._counts[name].get(b, 0) for b in range(lo, hi))
        return n / ((hi - lo) * self.bucket_s) if hi > lo else 0.0

    def values(self, name: str, start_s: float, end_s: float) -> list[float]:
        lo, hi = int(start_s // self.bucket_s), int(math.ceil(end_s / self.bucket_s))
        with self._lock:
            return [v for b in range(lo, hi) for v in self._values[name].get(b, [])]

    def rows(self, end_s: float) -> list[dict]:
        """One row per bucket from 0 to END_S: t_s (the bucket's middle), NAME_per_s for
        each count, NAME_p50 and NAME_p90 for each value (None without values)."""
        with self._lock:
            out = []
            for b in range(int(math.ceil(end_s / self.bucket_s))):
                row: dict = {"t_s": round((b + 0.5) * self.bucket_s, 6)}
                for name, counts in sorted(self._counts.items()):
                    row[f"{name}_per_s"] = counts.get(b, 0) / self.bucket_s
                for name, values in sorted(self._values.items()):
                    vs = sorted(values.get(b, []))
                    row[f"{name}_p50"] = statistics.median(vs) if vs else None
                    row[f"{name}_p90"] = vs[min(len(vs) - 1, int(0.9 * len(vs)))] if vs else None
                out.append(row)
            return out


def sample(series: Series, name: str, read, stop: threading.Event, every_s: float = 0.1,
           unit: int = 125) -> threading.Thread:
    """A started thread that reads the growing counter READ() every EVERY_S until STOP and
    counts its growth into SERIES as NAME, in UNITs (125 bytes: NAME_per_s is kbit/s)."""
    def run() -> None:
        last = read()
        while not stop.wait(every_s):
            k, rest = divmod(read() - last, unit)
            series.count(name, n=k)
            last += k * unit
    t = threading.Thread(target=run, name=f"sample {name}", daemon=True)
    t.start()
    return t


def write(raw, repeat: int, series: Series, end_s: float, player=None) -> None:
    """Append trial REPEAT's rows to raw/pointNNN/timeline.csv (a header when new) and, with
    PLAYER, its faults (planned spans and the moments they took effect) to faults.jsonl."""
    rows = series.rows(end_s)
    path = raw.path("timeline.csv")
    buf = io.StringIO()
    cols = ["repeat", *rows[0]] if rows else ["repeat", "t_s"]
    w = csv.DictWriter(buf, cols)
    if not path.exists():
        w.writeheader()
    w.writerows({"repeat": repeat, **r} for r in rows)
    raw.write_text("timeline.csv", buf.getvalue())
    if player is not None:
        raw.write_text("faults.jsonl", json.dumps({
            "repeat": repeat, "spans": player.timeline.spans(),
            "marks": [[m.t_s, m.apply, m.text] for m in player.marks]}) + "\n")
