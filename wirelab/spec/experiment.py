"""Experiments as declarations, and the checked view the runner and reports use.

An experiment is one module named after its claim.  It declares, as plain data and
small functions (``experiments/tcp_handshake_one_rtt.py`` is the model):

=======================  =================================================================
``ID``                   the claim's name (the module's name); ``ALIASES`` optional
``CLAIM``                the claim in a student's words, one sentence (the figure's title)
``SECTION``              where the course text makes it
``TEXT_SAYS``            what the text says, quoted
``TOPOLOGY``             the Mininet ``Topo`` class to build
``NEEDS``                kernel features (see ``wirelab.kernel.probe``), e.g. ``{"netem"}``
``PARAMS``               a list of :class:`~wirelab.spec.params.Param`
``REPEATS``              rows per grid point; ``QUICK_REPEATS`` in quick mode
``METRICS``              a list of :class:`~wirelab.spec.metrics.Metric`
``X``                    the parameter on the figure's x axis
``predict(params, kernel) -> {metric: value}``   first principles, reading ``kernel``
``trial(lab, params, ctx) -> row | [rows]``      one trial: {metric: measured}
=======================  =================================================================

Optional: ``SYSCTLS`` ({node or "*": {sysctl: value}}, on top of the lab's baseline) or
``lab_sysctls(params)``; ``TOPOLOGY_PARAMS`` (the names passed to the Topo) or
``topology_params(params)`` (default: every parameter the Topo's ``build()`` takes:
declare the names when a parameter of the same name means something else); ``CAPS`` (a
:class:`~wirelab.lab.cgroup.Caps`: the memory and tasks its lab may use, default 1024 MB
and 1024 tasks); ``build_lab(topo, params, **kwargs)`` when a point's lab is not a plain
:class:`~wirelab.lab.net.Lab` (an OpenFlow lab, say: it passes KWARGS on);
``prepare(lab, params, ctx)`` once per point (may return the state trials find in
``ctx.state``); ``check(entry) -> reason | None`` narrows a point's verdict (it can only
fail a point); ``note(entry) -> str`` explains it; ``plot(run, exp, out)`` draws the
claim's own figure; ``TOOLS`` names programs whose versions are recorded. What Linux
really does, at length, is in a Markdown sidecar beside the module (``<module>.md``).
"""
from __future__ import annotations

import inspect
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from wirelab.errors import BadInput
from wirelab.lab.cgroup import Caps
from wirelab.lab.net import Lab
from wirelab.spec.context import TrialContext
from wirelab.spec.metrics import Metric
from wirelab.spec.params import Param

REQUIRED = ("ID", "CLAIM", "SECTION", "TEXT_SAYS", "TOPOLOGY", "NEEDS", "PARAMS", "REPEATS",
            "METRICS", "X", "predict", "trial")
MAX_REPEATS = 10_000
#: Every experiment's lab sets these on top of the lab's baseline (Linux's defaults):
#: trials independent of each other (no metrics cached from the last connection) and
#: plain three-way handshakes (no Fast Open).  An experiment may set either back.
TRIAL_SYSCTLS = {"net.ipv4.tcp_no_metrics_save": "1", "net.ipv4.tcp_fastopen": "0"}


def problems(module: ModuleType) -> list[str]:
    """What keeps MODULE from being an experiment (empty: nothing)."""
    out = [f"no {name}" for name in REQUIRED if not hasattr(module, name)]
    if out:
        return out
    if not all(isinstance(p, Param) for p in module.PARAMS):
        out.append("PARAMS must be a list of Param")
    if not module.METRICS or not all(isinstance(m, Metric) for m in module.METRICS):
        out.append("METRICS must be a non-empty list of Metric")
    elif len({m.name for m in module.METRICS}) != len(module.METRICS):
        out.append("two METRICS share a name")
    if not (inspect.isclass(module.TOPOLOGY) and hasattr(module.TOPOLOGY, "build")):
        out.append("TOPOLOGY must be a Topo class (with a build() method)")
    if module.X not in {p.name for p in module.PARAMS if isinstance(p, Param)}:
        out.append(f"X = {module.X!r} is not one of its PARAMS")
    for fn in ("predict", "trial"):
        if not callable(getattr(module, fn)):
            out.append(f"{fn} is not a function")
    return out


@dataclass
class Experiment:
    module: ModuleType
    params: dict[str, Param] = field(default_factory=dict)

    def __post_init__(self):
        missing = problems(self.module)
        if missing:
            where = getattr(self.module, "__file__", self.module.__name__)
            raise BadInput(f"{where} is not a wirelab experiment: {'; '.join(missing)}")
        self.params = {p.name: p for p in self.module.PARAMS}

    def __getattr__(self, name):
        return getattr(self.module, name)

    # -- identity and text ---------------------------------------------------------
    @property
    def id(self) -> str:
        return self.module.ID

    @property
    def aliases(self) -> tuple[str, ...]:
        return tuple(getattr(self.module, "ALIASES", ()))

    @property
    def sidecar(self) -> Path | None:
        f = getattr(self.module, "__file__", None)
        return Path(f).with_suffix(".md") if f else None

    @property
    def linux_fact(self) -> str:
        """The sidecar's text: where Linux differs from the course, and why."""
        s = self.sidecar
        return s.read_text().strip() if s is not None and s.is_file() else ""

    # -- metrics -------------------------------------------------------------------
    @property
    def metrics(self) -> list[Metric]:
        return list(self.module.METRICS)

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"{self.id} has no metric {name!r}")

    @property
    def trial_metrics(self) -> list[Metric]:
        return [m for m in self.metrics if not m.per_point]

    @property
    def point_metrics(self) -> list[Metric]:
        return [m for m in self.metrics if m.per_point]

    def describe_tolerance(self) -> str:
        parts = []
        for m in self.metrics:
            parts.append(f"{m.name}: " + (m.tolerance.describe(m.unit_label) if m.judged
                                           else "reported, not judged"))
        return "; ".join(parts)

    # -- grid ----------------------------------------------------------------------
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
                values = [p.parse(v) for v in
                          (list((p.quick or p.grid) if quick else p.grid) or [p.default])]
            axes.append([(name, v) for v in values])
        return [dict(combo) for combo in itertools.product(*axes)]

    def repeats(self, requested: int | None, quick: bool) -> int:
        if requested is None:
            return getattr(self.module, "QUICK_REPEATS", self.REPEATS) if quick else self.REPEATS
        if not 1 <= requested <= MAX_REPEATS:
            raise BadInput(f"--repeats {requested}: must be 1 to {MAX_REPEATS}")
        return requested

    # -- the lab -------------------------------------------------------------------
    @property
    def caps(self) -> Caps:
        """The memory and task caps of the experiment's lab (its cgroup)."""
        caps = getattr(self.module, "CAPS", None)
        return caps if caps is not None else Caps()

    def topology_params(self, params: dict) -> dict:
        fn = getattr(self.module, "topology_params", None)
        if fn is not None:
            return fn(params)
        names = getattr(self.module, "TOPOLOGY_PARAMS", None)
        if names is not None:
            return {k: params[k] for k in names}
        takes = inspect.signature(self.module.TOPOLOGY.build).parameters
        return {k: v for k, v in params.items() if k in takes}

    def topology(self, params: dict):
        """A Topo for PARAMS (its link values are checked when the lab builds)."""
        return self.module.TOPOLOGY(**self.topology_params(params))

    def lab(self, params: dict, **kwargs):
        """The (unbuilt) lab of a point: the experiment's ``build_lab`` or a plain Lab,
        given the lab options KWARGS (sysctls, caps)."""
        fn = getattr(self.module, "build_lab", None)
        topo = self.topology(params)
        return fn(topo, params, **kwargs) if fn is not None else Lab(topo, **kwargs)

    def sysctls(self, params: dict) -> dict[str, dict[str, str]]:
        """{node or "*": {sysctl: value}}: TRIAL_SYSCTLS for every host, then the
        experiment's own values on top (the lab applies its baseline first)."""
        fn = getattr(self.module, "lab_sysctls", None)
        own = fn(params) if fn is not None else getattr(self.module, "SYSCTLS", {})
        out = {node: dict(values) for node, values in own.items()}
        out["*"] = {**TRIAL_SYSCTLS, **own.get("*", {})}
        return out

    def prepare(self, lab, params: dict, ctx: TrialContext) -> None:
        fn = getattr(self.module, "prepare", None)
        if fn is not None:
            state = fn(lab, params, ctx)
            if state is not None:
                ctx.state = state

    # -- judging beyond the bands ----------------------------------------------------
    def check(self, entry: dict) -> str | None:
        fn = getattr(self.module, "check", None)
        return (fn(entry) or None) if fn is not None else None

    def note(self, entry: dict) -> str:
        fn = getattr(self.module, "note", None)
        return (fn(entry) or "") if fn is not None else ""
