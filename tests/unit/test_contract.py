"""The contract every experiment keeps, checked over every declaration: metadata and its
sidecar, parameters that validate, a prediction that is pure and deterministic, a
topology that builds from the parameters, sysctls that stay inside a namespace."""
from __future__ import annotations

import copy
import inspect
import math

import pytest
from mininet.topo import Topo

from support import lab_facts
from wirelab.kernel.probe import CONGESTION, QDISCS
from wirelab.run import catalog
from wirelab.spec import Metric, Param
from wirelab.spec.params import UNITS, unit_of

EXPERIMENTS = catalog.all_experiments()
IDS = [e.id for e in EXPERIMENTS]
FEATURES = {"netns", "openvswitch", *QDISCS, *(f"cc_{c}" for c in CONGESTION)}


@pytest.fixture(params=EXPERIMENTS, ids=IDS)
def exp(request):
    return request.param


def test_there_are_experiments_and_names_are_unique():
    assert len(EXPERIMENTS) >= 9
    names = [n for e in EXPERIMENTS for n in (e.id, *e.aliases)]
    assert len(names) == len(set(names)), "an id or alias is used twice"


def test_metadata(exp):
    assert exp.id == exp.module.__name__.rsplit(".", 1)[-1], "ID is the module's name"
    for attr in ("CLAIM", "SECTION", "TEXT_SAYS"):
        value = getattr(exp.module, attr)
        assert isinstance(value, str) and value.strip(), attr
    assert set(exp.NEEDS) <= FEATURES, f"unknown kernel features {set(exp.NEEDS) - FEATURES}"
    assert inspect.isclass(exp.TOPOLOGY) and issubclass(exp.TOPOLOGY, Topo)
    assert exp.REPEATS >= 1 and getattr(exp.module, "QUICK_REPEATS", 1) >= 1


def test_sidecar_says_what_linux_does(exp):
    assert exp.sidecar is not None and exp.sidecar.is_file(), f"no {exp.sidecar}"
    first = exp.linux_fact.split("\n\n")[0]
    assert first and len(exp.linux_fact) > 200
    assert "CLAIMS" not in exp.linux_fact


def test_parameters_carry_units_and_their_grids_validate(exp):
    for p in exp.PARAMS:
        assert isinstance(p, Param)
        if not p.choices:
            assert unit_of(p.name), f"parameter {p.name} has no unit suffix ({sorted(UNITS)})"
            assert p.min <= p.parse(p.default) <= p.max
        for v in (*p.grid, *p.quick, p.default):
            p.parse(v)
    assert exp.grid({}) and exp.grid({}, quick=True)


def test_metrics_carry_units(exp):
    for m in exp.metrics:
        assert isinstance(m, Metric)
        assert m.unit, f"metric {m.name} has no unit suffix ({sorted(UNITS)})"
        assert m.help.strip()
    assert any(m.judged for m in exp.metrics), "nothing is judged"


@pytest.mark.parametrize("quick", [True, False])
def test_predict_is_pure_and_deterministic(exp, quick):
    """predict() gives each point the metrics that apply to it (at least one judged), and
    over the whole grid every judged metric somewhere (the quick grid: every one not
    declared full_only, and none that is)."""
    names, seen = {m.name for m in exp.metrics}, set()
    judged = {m.name for m in exp.metrics if m.judged and not (quick and m.full_only)}
    for params in exp.grid({}, quick=quick):
        kernel = lab_facts(exp, params)
        frozen = (copy.deepcopy(params), copy.deepcopy(kernel))
        first = exp.predict(params, kernel)
        assert (params, kernel) == frozen, "predict() changed its inputs"
        assert exp.predict(params, kernel) == first, "predict() is not deterministic"
        assert set(first) <= names and set(first) & judged, params
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in first.values())
        seen |= set(first)
    assert judged <= seen, f"never predicted: {judged - seen}"
    if quick:
        assert not seen & {m.name for m in exp.metrics if m.full_only}, "a full_only metric in --quick"


def test_the_topology_builds_from_every_grid_point(exp):
    for params in exp.grid({}) + exp.grid({}, quick=True):
        topo = exp.topology(params)
        assert len(topo.hosts()) >= 2


def test_sysctls_stay_in_a_namespace(exp):
    for params in exp.grid({}, quick=True):
        sysctls = exp.sysctls(params)
        nodes = set(exp.topology(params).nodes()) | {"*", "kernel"}
        assert set(sysctls) <= nodes, f"sysctls for unknown nodes {set(sysctls) - nodes}"
        for values in sysctls.values():
            assert all(name.startswith("net.") for name in values)


def test_a_parameter_naming_a_sysctl_sets_it_in_the_lab(exp):
    """`wirelab list --sysctl` points at the parameters that carry a sysctl: each must be
    among the sysctls the lab writes, and move with the parameter's grid."""
    for p in exp.PARAMS:
        if not p.sysctl:
            continue
        assert p.sysctl.startswith("net.") and p.grid and len(p.grid) >= 2, p.name
        seen = set()
        for value in p.grid:
            params = {q.name: q.parse(q.default) for q in exp.PARAMS} | {p.name: p.parse(value)}
            written = [v[p.sysctl] for v in exp.sysctls(params).values() if p.sysctl in v]
            assert written, f"{p.name} names {p.sysctl} but the lab never writes it"
            seen.add(tuple(written))
        assert len(seen) == len(p.grid), f"{p.sysctl} does not follow {p.name}"
