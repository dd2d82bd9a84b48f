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

    def parse(self, raw) -> float | int:
        """RAW (a string from the command line, or a number) -> a checked value."""
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
        return f"{self.min:g} to {self.max:g}" + (f" ({self.help})" if self.help else "")


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
    """Pass when the median of a point's trials is within
    [predicted - below, predicted + abs_ms + rel * predicted].

    ``below`` is 0 where physics says a measurement cannot come early (timers
    fire late, never early; a packet cannot beat its delay)."""
    abs: float
    rel: float
    below: float = 0.0
    statistic: str = "median"

    def bounds(self, predicted: float) -> tuple[float, float]:
        return predicted - self.below, predicted + self.abs + self.rel * abs(predicted)

    def check(self, values: list[float], predicted: float) -> tuple[bool, float]:
        stat = summary_stat(values, self.statistic)
        lo, hi = self.bounds(predicted)
        return lo <= stat <= hi, stat

    def describe(self, unit: str = "ms") -> str:
        below = "never below" if not self.below else f"-{self.below:g} {unit}"
        return (f"{self.statistic} within +[{self.abs:g} {unit} + {self.rel * 100:g}%] of the "
                f"prediction, {below}")


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
