"""[39] http2_multiplexing_vs_http1 end to end: `wirelab run http2_vs_http1
--quick`, re-checked from its numbers.

Judged as CLAIMS [39] says: loss-free totals within +-1 r of h + 20 r,
h + ceil(20/6) r and h + 4 r (20 x 5 KiB needs a fourth slow-start round).
The totals judged are the batches' time in the network, from packet taps
at both ends (the span less each end's processing on the critical path);
the whole span, processing included, is reported and may never beat the
round trips, and neither may any lossy fetch.  The loss case's ordering is
reported in the point's note.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import wirelab


def test_http2_vs_http1_quick(tmp_path, no_leftovers):
    res = wirelab("run", "http2_vs_http1", "--quick", "--json", timeout=600,
                  env={**os.environ, "WIRELAB_RESULTS": str(tmp_path)})
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "match"
    (p,) = doc["points"]
    r = p["params"]["rtt_ms"]
    meas, pred = p["measured"], p["predicted"]
    assert p["n"] >= 4
    for m in ("seq", "par6", "h2"):
        assert abs(meas[f"{m}_ms"] - pred[f"{m}_ms"]) <= r, (m, meas, pred)
        # The span holds the processing the network time leaves out.
        assert meas[f"{m}_span_ms"] >= meas[f"{m}_ms"] >= pred[f"{m}_ms"] - r
        assert meas[f"{m}_span_ms"] >= pred[f"{m}_ms"]
        assert meas[f"{m}_loss_ms"] >= pred[f"{m}_ms"]
    assert meas["h2_ms"] < meas["seq_ms"] and meas["par6_ms"] < meas["seq_ms"]
    assert "with 2% loss:" in p["note"]
    raw = (Path(doc["run_dir"]) / "raw/point000/t00-h2.txt").read_text()
    assert "--- packets at h1 (ms) ---" in raw and "--- packets at h2 (ms) ---" in raw
