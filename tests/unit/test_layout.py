"""The shape of the house: the library by role with no import cycles and no import of
content, every package installed under the wirelab distribution, experiments that fit
in a head, and nothing that points outside the repository."""
from __future__ import annotations

import ast
import configparser
import re
import statistics
import subprocess
from pathlib import Path

import pytest

from support import ROOT

LIB = ROOT / "wirelab"
CONTENT = ("experiments", "topologies", "controllers")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _library() -> dict[str, Path]:
    return {_module_name(p): p for p in LIB.rglob("*.py")}


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every module PATH imports (at any depth, lazy imports too), resolved against
    MODULES for ``from package import module``.  Imports under TYPE_CHECKING count."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names
                    if f"{node.module}.{a.name}" in modules}
            out |= subs or {node.module}
    return out


def _graph() -> dict[str, set[str]]:
    mods = _library()
    names = set(mods)
    return {m: {i for i in _imports(p, names) if i in names and i != m} for m, p in mods.items()}


def test_the_library_never_imports_content():
    for module, path in _library().items():
        for imp in _imports(path, set()):
            top = imp.split(".")
            assert top[0] not in CONTENT and not (top[0] == "wirelab" and len(top) > 1
                                                  and top[1] in CONTENT), \
                f"{module} imports {imp}: the library must not import content"


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n] if n in stack else [m, n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if not state.get(n):
                visit(n, stack + [n])
        state[m] = 2
    for m in sorted(graph):
        if not state.get(m):
            visit(m, [m])


def test_the_floors_point_down():
    """Roles, bottom to top; a package may import only its own floor or lower ones."""
    floors = ["errors", "settings", "lab", "measure", "kernel", "models", "peers", "spec",
              "report", "run", "testbed", "cli"]
    rank = {f: i for i, f in enumerate(floors)}

    def floor(m: str) -> str:
        parts = m.split(".")
        return parts[1] if len(parts) > 1 else "errors"   # wirelab/__init__: the version
    for m, deps in _graph().items():
        for d in deps:
            if floor(m) in rank and floor(d) in rank:
                assert rank[floor(d)] <= rank[floor(m)], f"{m} ({floor(m)}) imports {d} ({floor(d)})"


def test_every_package_is_installed_inside_the_distribution():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    on_disk = {_module_name(p.parent / "__init__.py") for p in LIB.rglob("__init__.py")}
    assert on_disk | {f"wirelab.{c}" for c in CONTENT} == listed
    dirs = dict(line.split(" = ") for line in cfg["options"]["package_dir"].split("\n") if line)
    assert {dirs[f"wirelab.{c}"] for c in CONTENT} == set(CONTENT)
    assert not any(name in CONTENT for name in listed), "content as a top-level package"


def test_experiments_fit_in_a_head():
    sizes = {p.name: len(p.read_text().splitlines())
             for p in (ROOT / "experiments").glob("*.py") if not p.name.startswith("_")}
    assert max(sizes.values()) <= 200, sizes
    assert statistics.median(sizes.values()) <= 150, sizes


def test_nothing_points_outside_the_repository():
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True,
                           text=True, check=True).stdout.split()
    bad = re.compile(r"CLAIMS\.md|CLAIMS \[|\.\./shared|/work/shared|seed/networking")
    hits = [f for f in files if (ROOT / f).is_file() and f.endswith((".py", ".md", ".sh",
                                                                     ".cfg", ".toml", ".txt"))
            and f != "tests/unit/test_layout.py"          # the patterns themselves
            and bad.search((ROOT / f).read_text(errors="replace"))]
    assert not hits, f"these name a file outside the repository: {hits}"


def test_the_claims_catalog_is_generated_and_current():
    from wirelab.report.claims_doc import claims_markdown
    from wirelab.run import catalog
    doc = ROOT / "docs" / "claims.md"
    assert doc.is_file(), "docs/claims.md is missing: make docs"
    assert doc.read_text() == claims_markdown(catalog.claims(), catalog.all_experiments()), \
        "docs/claims.md is stale: make docs"
