"""connection_pooling_latency --quick through the UML backend: at r = 50 ms a
request on a new HTTPS connection costs 3r (TLS 1.3) or 4r (TLS 1.2), one on a
kept-alive connection or a pool of four r (CLAIMS [38])."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from conftest import wirelab


def within(measured: float, predicted: float) -> bool:
    """CLAIMS [38]'s pass criterion: the median within ±(1 ms + 5%)."""
    return abs(measured - predicted) <= 1.0 + 0.05 * predicted


def test_connection_pooling_quick_matches_its_prediction(tmp_path, no_leftovers):
    # The timeout covers waiting up to 600 s for another lab's host lock.
    res = wirelab("run", "connection_pooling_latency", "--quick", "--json", timeout=900,
                  env={**os.environ, "WIRELAB_RESULTS": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "match"
    assert sorted(p["params"]["tls"] for p in doc["points"]) == ["1.2", "1.3"]
    for p in doc["points"]:
        r, m = p["params"]["rtt_ms"], p["measured"]
        tls_rtts = {"1.2": 2, "1.3": 1}[p["params"]["tls"]]
        assert r == 50.0 and p["n"] == 20
        assert within(m["new_conn_ms"], (2 + tls_rtts) * r), p
        assert within(m["keepalive_ms"], r), p
        assert within(m["pool4_ms"], r), p
        # A new connection is at least (1 + tls_rtts) RTTs dearer than reuse.
        assert m["new_conn_ms"] - m["keepalive_ms"] >= (1 + tls_rtts) * r * 0.95
    run_dir = Path(doc["run_dir"])
    for i in range(2):
        raw = run_dir / "raw" / f"point{i:03d}"
        rows = list(csv.DictReader(open(raw / "server_cpu.csv")))
        assert len(rows) == 20
        # The pool's four requests really were in flight together.
        assert all(int(row["pool4_max_in_flight"]) == 4 for row in rows)
        assert all(float(row["pool4_batch_ms"]) >= 50.0 for row in rows)
        assert "per handshake" in (raw / "server_cpu_summary.txt").read_text()
