"""Finding experiments and topologies: the built-in ones the project ships, and any
module a user names by path (a teacher's own claim).

Content is found by path, never imported by name from the library: the built-in
folders are ``experiments/`` and ``topologies/`` of the checkout, which an install
places inside the distribution (``wirelab/experiments`` ...).  A module is loaded from
its file; a built-in one under its installed name (``wirelab.experiments.<name>``), so
loading it twice gives the same module.
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import wirelab
from wirelab.errors import BadInput
from wirelab.spec.experiment import Experiment

CATALOG_FILE = "claims.toml"


def content_dir(kind: str) -> Path:
    """The built-in folder KIND ("experiments", "topologies", "controllers")."""
    pkg = Path(wirelab.__file__).resolve().parent
    for candidate in (pkg / kind, pkg.parent / kind):
        if (candidate / "__init__.py").is_file():
            return candidate
    raise FileNotFoundError(f"no {kind}/ folder beside {pkg} (is wirelab installed whole?)")


def _modules(kind: str) -> dict[str, Path]:
    d = content_dir(kind)
    return {p.stem: p for p in sorted(d.glob("*.py")) if not p.stem.startswith("_")}


def load_module(path: Path, builtin_kind: str | None = None) -> ModuleType:
    """Import the module at PATH (once)."""
    path = Path(path).resolve()
    if builtin_kind:
        name = f"wirelab.{builtin_kind}.{path.stem}"
    else:
        name = f"wirelab_user.{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BadInput(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


# --- experiments -----------------------------------------------------------------

def names() -> list[str]:
    return list(_modules("experiments"))


def is_path(ref: str) -> bool:
    return ref.endswith(".py") or "/" in ref


def load_path(path: str | Path) -> Experiment:
    """The experiment in the file PATH, anywhere.  BadInput (exit 2) if it is missing,
    does not import, or lacks what an experiment declares."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{path}: no such experiment file")
    try:
        module = load_module(p)
    except BadInput:
        raise
    except Exception as e:
        raise BadInput(f"{path} does not import: {type(e).__name__}: {e}") from e
    return Experiment(module)


def load(ref: str) -> Experiment:
    """The experiment REF names: a file path, a built-in name, or an alias."""
    if is_path(ref):
        return load_path(ref)
    files = _modules("experiments")
    if ref in files:
        return Experiment(load_module(files[ref], "experiments"))
    known = []
    for exp in all_experiments():
        if ref in exp.aliases:
            return exp
        known += [exp.id, *exp.aliases]
    raise BadInput(f"unknown experiment {ref!r}; known: {', '.join(known)}, "
                   "or a path to an experiment module")


def all_experiments() -> list[Experiment]:
    return [Experiment(load_module(p, "experiments")) for p in _modules("experiments").values()]


def claims() -> list[dict]:
    """The course's claims, by id (experiments/claims.toml)."""
    with open(content_dir("experiments") / CATALOG_FILE, "rb") as f:
        return tomllib.load(f)["claim"]


# --- topologies ------------------------------------------------------------------

def topology_names() -> list[str]:
    return list(_modules("topologies"))


def load_topology_module(ref: str) -> ModuleType:
    """The module of topology REF (a built-in module name or a file path)."""
    if is_path(ref):
        p = Path(ref)
        if not p.is_file():
            raise BadInput(f"{ref}: no such topology file")
        module = load_module(p)
    else:
        files = _modules("topologies")
        if ref not in files:
            raise BadInput(f"unknown topology {ref!r}; known: {', '.join(files)}, "
                           "or a path to a topology module")
        module = load_module(files[ref], "topologies")
    if getattr(module, "TOPOLOGY", None) is None:
        raise BadInput(f"{ref}: the module declares no TOPOLOGY (a Mininet Topo class)")
    return module


def load_topology(ref: str):
    """The Topo class of topology REF (a built-in module name or a file path): the
    module's ``TOPOLOGY``."""
    return load_topology_module(ref).TOPOLOGY
