"""Experiments as declarations.

An experiment is one module in ``experiments/`` named by its CLAIMS.md id.  It
declares, as plain data and small functions:

=================  ==========================================================
``ID``             the CLAIMS.md id (the module's name); ``ALIASES`` optional
``CLAIM``          the claim, one sentence (the plot's title)
``SECTION``        where the course text makes it
``TEXT_SAYS``      what the text says, quoted
``LINUX_FACT``     where Linux differs, with its source ("" if it does not)
``TOPOLOGY``       a module name in ``topologies/``
``NEEDS``          kernel features (see ``wirelab.probe``), e.g. ``{"netem"}``
``PARAMS``         a list of :class:`Param`
``REPEATS``        trials per grid point; ``QUICK_REPEATS`` in quick mode
``METRICS``        {measured name with unit: what it is}
``X``              the parameter on the plot's x axis
``TOLERANCE``      a :class:`Tolerance` (how the verdict is decided)
``topology_params(params) -> dict``  arguments of the topology
``lab_sysctls(params) -> dict``      {node or "*": {sysctl: value}}
``predict(params, kernel) -> dict``  {metric: predicted}, from first principles,
                                     reading ``kernel`` (release, sysctls)
``trial(lab, params, ctx) -> dict``  {metric: measured} for one trial
``prepare(lab, params, ctx)``        optional, once per grid point
=================  ==========================================================
"""
from __future__ import annotations

import importlib
import itertools
import math
import pkgutil
import statistics
from dataclasses import dataclass, field
from types import ModuleType

from wirelab.errors import BadInput

REQUIRED = ("ID", "CLAIM", "SECTION", "TEXT_SAYS", "LINUX_FACT", "TOPOLOGY", "NEEDS",
            "PARAMS", "REPEATS", "METRICS", "X", "TOLERANCE", "predict", "trial",
            "topology_params")
MAX_REPEATS = 10_000


@dataclass(frozen=True)
class Param:
    """One knob of an experiment.  NAME carries its unit (``rtt_ms``)."""
    name: str
    default: float
    min: float
    max: float
    grid: tuple = ()
    quick: tuple = ()
    type: type = float
    help: str = ""
    #: for a categorical parameter (``cc`` in reno/cubic/bbr): the allowed values
    choices: tuple = ()

    def parse(self, raw) -> float | int | str:
        """RAW (a string from the command line, or a number) -> a checked value."""
        if self.choices:
            value = str(raw).strip()
            if value not in [str(c) for c in self.choices]:
                raise BadInput(f"parameter {self.name}: {raw!r} is not allowed; "
                               f"allowed: {', '.join(str(c) for c in self.choices)}")
            return value
        try:
            value = _parse_number(str(raw) if not isinstance(raw, str) else raw, self.type)
        except (TypeError, ValueError):
            raise BadInput(f"parameter {self.name}: {raw!r} is not "
                           f"{'a whole number' if self.type is int else 'a number'}; "
                           f"allowed: {self.range_text()}") from None
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            raise BadInput(f"parameter {self.name}: {raw!r} is not a finite number; "
                           f"allowed: {self.range_text()}")
        if not self.min <= value <= self.max:
            raise BadInput(f"parameter {self.name}: {raw!r} is outside the allowed range "
                           f"{self.range_text()}")
        return value

    def range_text(self) -> str:
        if self.choices:
            return ", ".join(str(c) for c in self.choices)
        return f"{self.min:g} to {self.max:g}" + (f" ({self.help})" if self.help else "")


def Choice(name: str, choices: tuple, default=None, grid: tuple = (), quick: tuple = (),
           help: str = "") -> Param:
    """A categorical parameter: one of CHOICES (strings)."""
    choices = tuple(str(c) for c in choices)
    return Param(name, default=str(default if default is not None else choices[0]), min=0,
                 max=0, grid=tuple(str(g) for g in grid), quick=tuple(str(q) for q in quick),
                 type=str, help=help, choices=choices)


def _parse_number(raw: str, typ: type):
    raw = raw.strip()
    if typ is int:
        f = float(raw)
        if not f.is_integer():
            raise ValueError(raw)
        return int(f)
    return float(raw)


@dataclass(frozen=True)
class Tolerance:
    """Pass when the statistic (median) of a point's trials is within
    [predicted - below, predicted + margin], where
    margin = abs + rel * predicted + rtt_frac * params[rtt_param].

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

    def margin(self, predicted: float, params: dict | None = None) -> float:
        m = self.abs + self.rel * abs(predicted)
        if self.rtt_frac:
            m += self.rtt_frac * float((params or {}).get(self.rtt_param, 0.0))
        return m

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
    raise ValueError(how)


@dataclass
class Experiment:
    module: ModuleType
    params: dict[str, Param] = field(default_factory=dict)

    def __post_init__(self):
        missing = [a for a in REQUIRED if not hasattr(self.module, a)]
        if missing:
            raise TypeError(f"experiment {self.module.__name__} lacks {', '.join(missing)}")
        self.params = {p.name: p for p in self.module.PARAMS}

    def __getattr__(self, name):
        return getattr(self.module, name)

    @property
    def id(self) -> str:
        return self.module.ID

    def grid(self, overrides: dict[str, str | list], quick: bool = False) -> list[dict]:
        """All parameter combinations to run, validated before anything is
        created.  OVERRIDES maps a name to a value or a list of values."""
        unknown = [n for n in overrides if n not in self.params]
        if unknown:
            raise BadInput(f"unknown parameter {unknown[0]!r} for {self.id}; "
                           f"known: {', '.join(self.params)}")
        axes = []
        for name, p in self.params.items():
            if name in overrides:
                raw = overrides[name]
                raws = raw if isinstance(raw, (list, tuple)) else [raw]
                if not raws:
                    raise BadInput(f"parameter {name}: no value given")
                values = [p.parse(r) for r in raws]
            else:
                values = list((p.quick or p.grid) if quick else p.grid) or [p.default]
                values = [p.parse(v) for v in values]
            axes.append([(name, v) for v in values])
        return [dict(combo) for combo in itertools.product(*axes)]

    def repeats(self, requested: int | None, quick: bool) -> int:
        if requested is None:
            return getattr(self.module, "QUICK_REPEATS", self.REPEATS) if quick else self.REPEATS
        if not 1 <= requested <= MAX_REPEATS:
            raise BadInput(f"--repeats {requested}: must be 1 to {MAX_REPEATS}")
        return requested

    def lab_sysctls(self, params: dict) -> dict:
        fn = getattr(self.module, "lab_sysctls", None)
        return fn(params) if fn else {}

    def prepare(self, lab, params, ctx) -> None:
        fn = getattr(self.module, "prepare", None)
        if fn:
            fn(lab, params, ctx)

    def units(self, metric: str) -> str:
        return metric.rsplit("_", 1)[-1] if "_" in metric else ""

    def tolerance(self, metric: str) -> Tolerance:
        """TOLERANCE may be one Tolerance or {metric: Tolerance}."""
        tol = self.TOLERANCE
        return tol[metric] if isinstance(tol, dict) else tol

    def describe_tolerance(self) -> str:
        tol = self.TOLERANCE
        if isinstance(tol, dict):
            return "; ".join(f"{m}: {t.describe(self.units(m))}" for m, t in tol.items())
        return tol.describe(self.units(next(iter(self.METRICS))))


def names() -> list[str]:
    import experiments
    return sorted(m.name for m in pkgutil.iter_modules(experiments.__path__)
                  if not m.name.startswith("_"))


def load(name: str) -> Experiment:
    """The experiment called NAME (its CLAIMS id or an alias)."""
    known = names()
    if name not in known:
        for candidate in known:
            mod = importlib.import_module(f"experiments.{candidate}")
            if name in getattr(mod, "ALIASES", ()):
                return Experiment(mod)
        aliases = [a for c in known for a in getattr(importlib.import_module(f"experiments.{c}"),
                                                     "ALIASES", ())]
        raise BadInput(f"unknown experiment {name!r}; known: {', '.join(known + aliases)}")
    return Experiment(importlib.import_module(f"experiments.{name}"))


def all_experiments() -> list[Experiment]:
    return [load(n) for n in names()]
