"""A non-editable install works away from the checkout: ``pip install .`` into a fresh
virtualenv, then from another directory the command knows its version, lists the
experiments as JSON and runs one, writing where it is told."""
from __future__ import annotations

import json
import subprocess

import pytest

from support import ROOT

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_pip_install_then_run_from_elsewhere(tmp_path, no_leftovers):
    venv = tmp_path / "venv"
    # Debian's mininet is a system package: the virtualenv sees the system's.
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    res = subprocess.run([str(venv / "bin/pip"), "install", "--quiet", str(ROOT)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    site = subprocess.run([str(venv / "bin/python"), "-c", "import wirelab, sys; "
                           "print(wirelab.__file__)"], capture_output=True, text=True,
                          cwd=tmp_path, check=True).stdout
    assert site.startswith(str(venv)), "the installed copy, not the checkout, is imported"
    exe, elsewhere = str(venv / "bin/wirelab"), tmp_path / "elsewhere"
    elsewhere.mkdir()

    def wirelab(*args):
        return subprocess.run([exe, *args], capture_output=True, text=True, cwd=elsewhere,
                              timeout=900, stdin=subprocess.DEVNULL)
    assert wirelab("--version").stdout.startswith("wirelab ")
    listing = json.loads(wirelab("list", "--json").stdout)
    assert "tcp_handshake_one_rtt" in {e["id"] for e in listing}
    for e in listing:
        assert e["source"].startswith(str(venv)) and e["linux_fact"]
    out = tmp_path / "r"
    run = wirelab("run", "tcp_handshake", "--quick", "--results-dir", str(out), "--json")
    assert run.returncode == 0, run.stderr[-2000:]
    doc = json.loads(run.stdout)
    assert doc["verdict"] == "match" and doc["run_dir"].startswith(str(out))
    assert not (elsewhere / "results").exists()
