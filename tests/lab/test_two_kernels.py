"""One claim on two kernels: ``wirelab run tcp_handshake_one_rtt --quick --kernel
uml:6.1,uml:6.12`` boots a guest per kernel, one after the other, and writes one results
directory with a run per kernel, a summary comparing them and an overlay figure.  Needs
Debian 13's 6.12 in build/kernels (provisioning fetches it): fails, never skips, without."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import wirelab

pytestmark = pytest.mark.lab


def test_handshake_on_6_1_and_6_12_in_one_run(tmp_path, no_leftovers):
    have = wirelab("kernels", "--json", timeout=60)
    kernels = json.loads(have.stdout or "{}")
    assert "6.12" in kernels, ("uml:6.12 is not here (`wirelab kernels` lists "
                               f"{', '.join(kernels) or 'none'}): `sudo wirelab kernels fetch` "
                               "or `sudo make setup` fetches Debian 13's into build/kernels")
    res = wirelab("--results-dir", str(tmp_path), "run", "tcp_handshake_one_rtt", "--quick",
                  "--kernel", "uml:6.1,uml:6.12", "--json", timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "match" and doc["exit_code"] == 0
    root = Path(doc["run_dir"])
    assert root.parent == tmp_path / "tcp_handshake_one_rtt"
    assert [k["kernel"] for k in doc["kernels"]] == ["uml:6.1", "uml:6.12"]
    for k, name in zip(doc["kernels"], ("6.1", "6.12"), strict=True):
        assert k["release"].startswith(name + "."), k["release"]
        assert k["verdict"] == "match" and k["exit_code"] == 0
        assert Path(k["run_dir"]) == root / f"kernel-{name}"
        pts = {p["params"]["rtt_ms"]: p for p in k["points"]}
        assert sorted(pts) == [1.0, 10.0, 50.0]
        for rtt, p in pts.items():          # numbers from this kernel, within their bands
            assert rtt <= p["measured"]["connect_ms"] <= rtt * 1.03 + 0.5, (name, p)
            assert 1.5 * rtt <= p["measured"]["accept_ms"] <= 1.5 * rtt * 1.03 + 0.5, (name, p)
        show = wirelab("show", k["run_dir"], "--json", timeout=60)    # each a normal run
        assert show.returncode == 0 and json.loads(show.stdout)["verdict"] == "match"
        manifest = json.loads((root / f"kernel-{name}" / "manifest.json").read_text())
        assert manifest["kernel"]["release"].startswith(name + ".")
        assert (root / f"kernel-{name}" / "plot.png").stat().st_size > 10_000
    top = json.loads((root / "manifest.json").read_text())
    assert top["kind"] == "across kernels" and top["status"] == "completed"
    summary = (root / "summary.md").read_text()
    assert "**uml:6.1 (6.1." in summary and "**uml:6.12 (6.12." in summary
    assert "## Where the kernels differ" in summary and "## Medians side by side" in summary
    assert (root / "plot.png").stat().st_size > 10_000
    assert not list(root.glob(".staging-*"))
