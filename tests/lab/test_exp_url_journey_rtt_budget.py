"""[01] url_journey_rtt_budget end to end: `wirelab run url_journey --quick`
in a real lab (UML on machines without netem), re-checked from its numbers.

Each phase's time in the network (packet taps at the client, the server and
the resolver; each end's processing on the phase's critical path taken out)
must sit within CLAIMS [01]'s band, +[0.5 ms + 3%] of the round-trip model
and never earlier.  curl's own -w figures hold that processing too: never
below the round trips, and never below the network time of the same phase.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import wirelab

PHASES = ("namelookup_ms", "connect_ms", "appconnect_ms", "starttransfer_ms", "total_ms")


def _band(predicted: float) -> float:
    return 0.5 + 0.03 * predicted


def test_url_journey_quick(tmp_path, no_leftovers):
    res = wirelab("run", "url_journey", "--quick", "--json", timeout=600,
                  env={**os.environ, "WIRELAB_RESULTS": str(tmp_path)})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "match"
    pts = doc["points"]
    assert len(pts) == 8 and all(p["n"] >= 5 for p in pts)
    seen = set()
    for p in pts:
        prm, meas, pred = p["params"], p["measured"], p["predicted"]
        seen.add((prm["dns"], prm["tls"], prm["rtt_ms"]))
        for m in PHASES:
            assert pred[m] <= meas[m] <= pred[m] + _band(pred[m]), (prm, m, meas[m], pred[m])
            assert meas[f"curl_{m}"] >= pred[f"curl_{m}"], (prm, m)
            assert meas[f"curl_{m}"] >= meas[m], (prm, m)
    assert seen == {(d, t, r) for d in ("hosts", "warm") for t in ("1.2", "1.3")
                    for r in (10.0, 50.0)}
    # The text's 4-5 RTTs: first byte after 4 r (TLS 1.3) / 5 r (TLS 1.2)
    # with a warm resolver as far as the server, 3 / 4 with a hosts file.
    by = {(p["params"]["dns"], p["params"]["tls"], p["params"]["rtt_ms"]): p for p in pts}
    assert by[("warm", "1.3", 50.0)]["predicted"]["starttransfer_ms"] == 200.0
    assert by[("warm", "1.2", 50.0)]["predicted"]["starttransfer_ms"] == 250.0
    assert by[("hosts", "1.3", 50.0)]["predicted"]["starttransfer_ms"] == 150.0
    run_dir = Path(doc["run_dir"])
    batch = (run_dir / "raw/point002/batch00.txt").read_text()
    assert "TLSv1." in batch and "resolver cache during the batch: " in batch
    assert " 0 misses" in batch                                  # warm means warm
    assert "on the wire" in batch and "--- packets at d1 (ms) ---" in batch
    assert (run_dir / "summary.md").read_text().count("RTT in the network") == 8
