"""How a verdict is decided: a metric's statistic against a band around its prediction."""
from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """Pass when the statistic (median) of a point's values is within
    [predicted - below, predicted + margin], where
    margin = max(abs + rel * predicted + rtt_frac * r + jiffies * tick,
                 min_abs + min_rtt_frac * r)
    r = params[rtt_param] and tick = 1000 / HZ of the kernel that ran the point (a
    count of round trips: at least a tenth of one, say; a timer: so many ticks late).

    Without ``symmetric`` the band is one-sided, as physics is where a measurement
    cannot come early (timers fire late, never early; a packet cannot beat its delay):
    ``below`` is then what the instrument may read under the floor, and a median lower
    still by more than ``resolution`` is a lab fault (the lab or the instrument is
    broken), not a measurement.  ``symmetric`` makes the band the same margin on both
    sides (a quantity that may come out either way)."""
    abs: float
    rel: float
    below: float = 0.0
    statistic: str = "median"
    symmetric: bool = False
    rtt_frac: float = 0.0
    rtt_param: str = "rtt_ms"
    min_abs: float = 0.0
    min_rtt_frac: float = 0.0
    jiffies: float = 0.0
    resolution: float = 0.05

    def margin(self, predicted: float, params: dict | None = None,
               kernel: dict | None = None) -> float:
        r = float((params or {}).get(self.rtt_param, 0.0)) if (
            self.rtt_frac or self.min_rtt_frac) else 0.0
        tick = 0.0
        if self.jiffies:
            hz = (kernel or {}).get("hz")
            if not hz:
                raise ValueError("a band counted in jiffies needs the kernel's HZ")
            tick = self.jiffies * 1000.0 / float(hz)
        return max(self.abs + self.rel * abs(predicted) + self.rtt_frac * r + tick,
                   self.min_abs + self.min_rtt_frac * r)

    def bounds(self, predicted: float, params: dict | None = None,
               kernel: dict | None = None) -> tuple[float, float]:
        m = self.margin(predicted, params, kernel)
        return predicted - (m if self.symmetric else self.below), predicted + m

    def check(self, values: list[float], predicted: float, params: dict | None = None,
              kernel: dict | None = None) -> tuple[bool, float]:
        stat = summary_stat(values, self.statistic)
        lo, hi = self.bounds(predicted, params, kernel)
        return lo <= stat <= hi, stat

    def impossible(self, stat: float, predicted: float, params: dict | None = None,
                   kernel: dict | None = None) -> bool:
        """Is STAT under a physical floor by more than the resolution (a lab fault)?"""
        if self.symmetric:
            return False
        return stat < self.bounds(predicted, params, kernel)[0] - self.resolution

    def describe(self, unit: str = "ms") -> str:
        parts = [f"{self.abs:g} {unit}"]
        if self.jiffies:
            parts.append(f"{self.jiffies:g} jiffies")
        if self.rtt_frac:
            parts.append(f"{self.rtt_frac:g} x {self.rtt_param}")
        if self.rel:
            parts.append(f"{self.rel * 100:g}%")
        band = " + ".join(parts)
        floor = [f"{self.min_abs:g} {unit}"] if self.min_abs else []
        floor += [f"{self.min_rtt_frac:g} x {self.rtt_param}"] if self.min_rtt_frac else []
        if floor:
            band = f"max({band}, {' + '.join(floor)})"
        if self.symmetric:
            return f"{self.statistic} within ±({band}) of the prediction"
        below = "never below" if not self.below else f"down to -{self.below:g} {unit}"
        return (f"{self.statistic} within +[{band}] of the prediction, {below} "
                f"(lower by more than {self.resolution:g} {unit}: a lab fault)")


def summary_stat(values: list[float], how: str = "median") -> float:
    if how == "median":
        return statistics.median(values)
    if how == "mean":
        return statistics.fmean(values)
    if how == "min":
        return min(values)
    raise ValueError(f"statistic {how!r}: allowed median, mean, min")


def quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
