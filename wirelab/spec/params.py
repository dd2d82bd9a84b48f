"""An experiment's knobs: numeric parameters with units in their names, and choices."""
from __future__ import annotations

import math
from dataclasses import dataclass

from wirelab.errors import BadInput


@dataclass(frozen=True)
class Param:
    """One knob of an experiment.  NAME carries its unit (``rtt_ms``)."""
    name: str
    default: float | int | str
    min: float
    max: float
    grid: tuple = ()
    quick: tuple = ()
    type: type = float
    help: str = ""
    #: for a categorical parameter (``cc`` in reno/cubic/bbr): the allowed values
    choices: tuple = ()
    #: the sysctl this knob sets in the lab's namespaces (``net.ipv4.tcp_retries2``), so
    #: ``wirelab list --sysctl`` finds the experiments that plot its effect
    sysctl: str = ""
    #: what tuning guides tell you to set it to (the summary sets it beside what it did)
    advice: str = ""
    #: the metrics in which the sysctl's effect shows (its figure and summary lines);
    #: empty: the judged ones
    effect: tuple = ()

    def parse(self, raw) -> float | int | str:
        """RAW (a string from the command line, or a number) -> a checked value."""
        if self.choices:
            value = str(raw).strip()
            if value not in [str(c) for c in self.choices]:
                raise BadInput(f"parameter {self.name}: {raw!r} is not allowed; "
                               f"allowed: {', '.join(str(c) for c in self.choices)}")
            return value
        try:
            number = _parse_number(str(raw), self.type)
        except (TypeError, ValueError):
            raise BadInput(f"parameter {self.name}: {raw!r} is not "
                           f"{'a whole number' if self.type is int else 'a number'}; "
                           f"allowed: {self.range_text()}") from None
        if isinstance(number, float) and (math.isnan(number) or math.isinf(number)):
            raise BadInput(f"parameter {self.name}: {raw!r} is not a finite number; "
                           f"allowed: {self.range_text()}")
        if not self.min <= number <= self.max:
            raise BadInput(f"parameter {self.name}: {raw!r} is outside the allowed range "
                           f"{self.range_text()}")
        return number

    def range_text(self) -> str:
        if self.choices:
            return ", ".join(str(c) for c in self.choices)
        return f"{self.min:g} to {self.max:g}" + (f" ({self.help})" if self.help else "")

    @property
    def unit(self) -> str:
        return unit_of(self.name)


def Choice(name: str, choices: tuple, default=None, grid: tuple = (), quick: tuple = (),
           help: str = "", sysctl: str = "", advice: str = "", effect: tuple = ()) -> Param:
    """A categorical parameter: one of CHOICES (strings)."""
    names = tuple(str(c) for c in choices)
    return Param(name, default=str(default if default is not None else names[0]), min=0,
                 max=0, grid=tuple(str(g) for g in grid), quick=tuple(str(q) for q in quick),
                 type=str, help=help, choices=names, sysctl=sysctl, advice=advice,
                 effect=effect)


def _parse_number(raw: str, typ: type) -> float | int:
    raw = raw.strip()
    if typ is int:
        f = float(raw)
        if not f.is_integer():
            raise ValueError(raw)
        return int(f)
    return float(raw)


#: Units a name may end in, and how a student reads them.
UNITS = {"ms": "ms", "s": "s", "us": "µs", "bytes": "bytes", "kb": "kB", "segs": "segments",
         "rtts": "RTTs", "pct": "%", "mbps": "Mbit/s", "pkts": "packets", "count": "count",
         "ratio": "ratio", "x": "×", "index": "index", "code": "code"}


def unit_of(name: str) -> str:
    """The unit suffix of a metric or parameter name (``connect_ms`` -> ``ms``)."""
    tail = name.rsplit("_", 1)[-1] if "_" in name else ""
    return tail if tail in UNITS else ""


def parse_sets(items: list[str]) -> dict:
    """``--set rtt_ms=10`` / ``--set rtt_ms=1,10,50`` -> {"rtt_ms": [...]}."""
    out: dict = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise BadInput(f"--set {item!r}: expected NAME=VALUE (or NAME=V1,V2,...)")
        values = [v.strip() for v in value.split(",")]
        if any(v == "" for v in values):
            raise BadInput(f"--set {item!r}: empty value for {name}")
        if name in out:
            raise BadInput(f"--set {name} given twice")
        out[name] = values if len(values) > 1 else values[0]
    return out
