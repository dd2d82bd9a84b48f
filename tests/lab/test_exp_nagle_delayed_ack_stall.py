"""[17] nagle_delayed_ack_stall, quick grid, through the kernel backend
(UML here): verdict, and the CLAIMS criterion re-checked from the numbers
with the tick the guest kernel runs."""
from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import root_sysctls, wirelab
from wirelab.results import read_run


def test_nagle_quick_matches_claims(tmp_path, no_leftovers):
    before = root_sysctls()
    res = wirelab("run", "nagle_delayed_ack_stall", "--quick", "--json",
                  env={**os.environ, "WIRELAB_RESULTS": str(tmp_path)},
                  timeout=1800)  # includes waiting for other labs on the host lock
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "match", doc
    run = read_run(Path(doc["run_dir"]))
    hz = run.manifest["kernel"]["hz"]["hz"]
    jiffy = 1000.0 / hz
    pts = {(p["params"]["mode"], p["params"]["rtt_ms"]): p for p in doc["points"]}
    assert set(pts) == {(mode, r) for mode in ("nagle", "nodelay", "quickack", "writev", "cork")
                        for r in (0, 50)}
    for (mode, r), p in pts.items():
        m = p["measured"]
        assert p["n"] == 20
        assert abs(m["jiffy_ms"] - jiffy) <= 0.05 * jiffy, p
        if mode == "nagle":
            # CLAIMS [17]: stall - 2r in [40 ms, 40 ms + 2 jiffies]; one
            # delayed-ACK timer per request; 40 ms, far from the text's 200.
            assert 40.0 <= m["latency_ms"] - 2 * r <= 40.0 + 2 * jiffy, p
            assert m["delayed_acks_count"] == 1, p
        else:
            trips = 2 if mode == "quickack" else 1
            assert trips * r <= m["latency_ms"] <= trips * r + (2.0 if mode in ("quickack", "cork")
                                                                else 1.0), p
            assert m["delayed_acks_count"] == 0, p
        # A fresh connection's first request: no stall (quick-ACK mode).
        trips = 2 if mode in ("nagle", "quickack") else 1
        assert trips * r <= m["first_ms"] <= trips * r + 3.0 + 0.02 * trips * r, p
    # Per request, the server counted exactly one delayed ACK under Nagle.
    points = {(p["params"]["mode"], float(p["params"]["rtt_ms"])): p["point"]
              for p in run.manifest["points"]}
    nagle_dir = run.dir / f"raw/point{points[('nagle', 50.0)]:03d}"
    nagle = (nagle_dir / "requests.jsonl").read_text().splitlines()
    assert [json.loads(x)["delayed_acks"] for x in nagle] == [1] * 20
    assert json.loads(nagle[-1])["delayed_acks_since_case_start"] == 20
    assert json.loads(nagle[-1])["server"]["ato_ms"] == 40.0
    assert "MATCH" in (run.dir / "summary.md").read_text()
    assert root_sysctls() == before
