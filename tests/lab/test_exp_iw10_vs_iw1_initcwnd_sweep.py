"""iw10_vs_iw1_initcwnd_sweep --quick end to end (CLAIMS [10]), in a UML guest."""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from conftest import wirelab
from wirelab.results import read_run

MSS = 1448


def test_initcwnd_quick_matches_its_prediction(tmp_path, no_leftovers):
    res = wirelab("run", "iw10_vs_iw1_initcwnd_sweep", "--quick", "--json",
                  env={**os.environ, "WIRELAB_RESULTS": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "match"
    by_n = {p["params"]["initcwnd_segs"]: p for p in doc["points"]}
    assert set(by_n) == {1, 10}
    for n, p in by_n.items():
        r, size = p["params"]["rtt_ms"], p["params"]["size_bytes"]
        assert r == 50 and size == 14480 and p["n"] >= 10
        # The socket reports cwnd = initcwnd of the route, and MSS_eff 1448.
        assert p["measured"]["initial_cwnd_segs"] == n
        assert p["measured"]["snd_mss_bytes"] == MSS
        # CLAIMS [10]: (1 + rounds) r ± (0.3 r + 5 ms).
        rounds = math.ceil(math.log2(size / (n * MSS) + 1))
        assert abs(p["measured"]["transfer_ms"] - (1 + rounds) * r) <= 0.3 * r + 5, p
    # IW 10 delivers 14480 B three round trips sooner than IW 1 (1 vs 4 rounds).
    gain = by_n[1]["measured"]["transfer_ms"] - by_n[10]["measured"]["transfer_ms"]
    assert abs(gain - 3 * 50) <= 2 * (0.3 * 50 + 5)

    run_dir = Path(doc["run_dir"])
    run = read_run(run_dir)
    assert run.manifest["status"] == "completed" and run.manifest["backend"] == "uml"
    for i, n in enumerate(sorted(by_n)):
        raw = run_dir / "raw" / f"point{i:03d}"
        routes = (raw / "routes.txt").read_text()
        assert f"'initcwnd': {n}" in routes and "'initrwnd': 64" in routes
        with open(raw / "trials_tcpinfo.csv") as f:
            rows = list(csv.DictReader(f))
        assert rows and all(row["cwnd_at_accept"] == str(n) and row["maxseg"] == str(MSS)
                            and row["total_retrans"] == "0" for row in rows), rows
