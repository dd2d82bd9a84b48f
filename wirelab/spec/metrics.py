"""What an experiment measures: a metric, its unit, and how it is judged (or that it is not)."""
from __future__ import annotations

from dataclasses import dataclass

from wirelab.spec.bands import Tolerance
from wirelab.spec.params import UNITS, unit_of


class _Reported:
    """The band of a metric that is recorded, drawn hollow and never judged."""

    def __repr__(self) -> str:
        return "REPORTED"


REPORTED = _Reported()


@dataclass(frozen=True)
class Metric:
    """NAME ends in its unit (``connect_ms``).  BAND is a :class:`Tolerance`, or
    REPORTED for a figure that is recorded and shown but never decides a verdict.
    PER_POINT metrics are measured once per grid point (``ctx.measure_point``), not
    per trial, so their n is what was measured.  PLOT: drawn in the claim's figure
    (diagnostics stay in trials.csv and summary.md).  FULL_ONLY: only the full grid can
    measure it (a state that lasts longer than a quick run may: TIME_WAIT's 60 s); the
    quick grid never predicts it, the full grid must."""
    name: str
    help: str
    band: Tolerance | _Reported
    per_point: bool = False
    plot: bool = True
    full_only: bool = False

    def __post_init__(self):
        if not isinstance(self.band, (Tolerance, _Reported)):
            raise TypeError(f"metric {self.name}: band must be a Tolerance or REPORTED")

    @property
    def judged(self) -> bool:
        return isinstance(self.band, Tolerance)

    @property
    def tolerance(self) -> Tolerance:
        if not isinstance(self.band, Tolerance):
            raise TypeError(f"metric {self.name} is reported, not judged")
        return self.band

    @property
    def unit(self) -> str:
        return unit_of(self.name)

    @property
    def unit_label(self) -> str:
        return UNITS.get(self.unit, self.unit)
