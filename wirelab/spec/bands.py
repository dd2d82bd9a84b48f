"""How a verdict is decided: a metric's statistic against a band around its prediction."""
from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """Pass when the statistic (median) of a point's values is within
    [predicted - below, predicted + margin], where
    margin = max(abs + rel * predicted + rtt_frac * r, min_abs + min_rtt_frac * r)
    and r = params[rtt_param] (a count of round trips: at least a tenth of one, say).

    ``below`` is 0 where physics says a measurement cannot come early (timers
    fire late, never early; a packet cannot beat its delay); ``symmetric``
    makes the band the same margin on both sides."""
    abs: float
    rel: float
    below: float = 0.0
    statistic: str = "median"
    symmetric: bool = False
    rtt_frac: float = 0.0
    rtt_param: str = "rtt_ms"
    min_abs: float = 0.0
    min_rtt_frac: float = 0.0

    def margin(self, predicted: float, params: dict | None = None) -> float:
        r = float((params or {}).get(self.rtt_param, 0.0)) if (
            self.rtt_frac or self.min_rtt_frac) else 0.0
        return max(self.abs + self.rel * abs(predicted) + self.rtt_frac * r,
                   self.min_abs + self.min_rtt_frac * r)

    def bounds(self, predicted: float, params: dict | None = None) -> tuple[float, float]:
        m = self.margin(predicted, params)
        return predicted - (m if self.symmetric else self.below), predicted + m

    def check(self, values: list[float], predicted: float,
              params: dict | None = None) -> tuple[bool, float]:
        stat = summary_stat(values, self.statistic)
        lo, hi = self.bounds(predicted, params)
        return lo <= stat <= hi, stat

    def describe(self, unit: str = "ms") -> str:
        parts = [f"{self.abs:g} {unit}"]
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
        return f"{self.statistic} within +[{band}] of the prediction, {below}"


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
