"""The Debian 13 lane (scripts/debian13-root.sh): wired into `make test`, refuses to put
its root inside the clone, and the unit lane it runs there is really root-free."""
from __future__ import annotations

import ast
import pathlib
import subprocess

import pytest

PROJECT_DIR = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = PROJECT_DIR / "scripts" / "debian13-root.sh"


def test_script_parses_and_documents_itself():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    out = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "WIRELAB_DEBIAN13_ROOT" in out.stdout and "debootstrap" in out.stdout


def test_bad_argument_is_bad_input():
    out = subprocess.run(["bash", str(SCRIPT), "--frobnicate"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown argument" in out.stderr


@pytest.mark.parametrize("where", ["relative/root", "/", "{project}/build/debian13-root"])
def test_root_must_be_absolute_and_outside_the_clone(where):
    """Checked before anything else (root or not): nothing is made or mounted."""
    env = {"PATH": "/usr/bin:/bin", "WIRELAB_DEBIAN13_ROOT": where.format(project=PROJECT_DIR)}
    out = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env)
    assert out.returncode == 1
    assert "WIRELAB_DEBIAN13_ROOT" in out.stderr or "outside the clone" in out.stderr
    assert not (PROJECT_DIR / "build" / "debian13-root").exists()


def test_make_test_runs_the_lane_after_the_suite():
    out = subprocess.run(["make", "-n", "-C", str(PROJECT_DIR), "--no-print-directory", "test"],
                         capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    suite = next(i for i, line in enumerate(lines) if "pytest -ra tests" in line)
    lane = next(i for i, line in enumerate(lines) if "scripts/debian13-root.sh" in line)
    assert suite < lane


def _marks(tree: ast.Module) -> str:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            return ast.unparse(node.value)
    return ""


@pytest.mark.parametrize("folder", ["lab", "platform"])
def test_every_lab_and_platform_module_is_marked_lab(folder):
    """`make test-unit` (run as the Debian 13 lane's unit tests) selects `not lab`: a lab
    module without the mark would boot UML guests in the root-free lane."""
    unmarked = [p.name for p in sorted((PROJECT_DIR / "tests" / folder).glob("test_*.py"))
                if "pytest.mark.lab" not in _marks(ast.parse(p.read_text()))]
    assert not unmarked, f"tests/{folder} modules without pytestmark = pytest.mark.lab: {unmarked}"
