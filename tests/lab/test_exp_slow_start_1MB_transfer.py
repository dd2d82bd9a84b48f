"""slow_start_1MB_transfer --quick end to end (CLAIMS [11]), in a UML guest."""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from conftest import wirelab
from wirelab.results import read_run

MIB = 1024 * 1024
IW, MSS = 10, 1448


def formula_k(size: int) -> int:
    return math.ceil(math.log2(size / (IW * MSS) + 1))


def test_slow_start_quick_matches_its_prediction(tmp_path, no_leftovers):
    res = wirelab("run", "slow_start_1MB_transfer", "--quick", "--json",
                  env={**os.environ, "WIRELAB_RESULTS": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "match"
    points = {p["params"]["size_bytes"]: p for p in doc["points"]}
    assert set(points) == {14480, 100_000, MIB}
    for size, p in points.items():
        r = p["params"]["rtt_ms"]
        assert r == 50 and p["params"]["cc"] == "reno" and p["n"] >= 11
        assert p["measured"]["snd_mss_bytes"] == MSS
        # CLAIMS [11]: T within ±(0.5 r + 5%) of r (1 + k) when the receive
        # window does not limit; the rwnd-limited run gets one round more.
        rounds = formula_k(size) + (1 if "rwnd-limited: +1 round expected" in p["note"] else 0)
        expected = (1 + rounds) * r
        assert abs(p["measured"]["transfer_ms"] - expected) <= 0.5 * r + 0.05 * expected, p
    # The text's 1 MB: 8 RTTs (~400 ms at 50 ms), not ~300 ms.
    assert formula_k(MIB) == 7
    assert 355 <= points[MIB]["measured"]["transfer_ms"] <= 445
    assert "rwnd-limited" not in points[MIB]["note"]
    assert "rwnd-limited" not in points[14480]["note"]
    # 100 KB with the default 131072: the window of round 2's ACKs caps round 3.
    assert "rwnd-limited: +1 round expected" in points[100_000]["note"]

    run_dir = Path(doc["run_dir"])
    run = read_run(run_dir)
    m = run.manifest
    assert m["status"] == "completed" and m["backend"] == "uml"
    eff = m["points"][0]["effective_sysctls"]
    assert eff["h1"]["net.ipv4.tcp_rmem"].split() == ["4096", "131072", "16777216"]
    for host in ("h1", "h2"):
        assert eff[host]["net.ipv4.tcp_no_metrics_save"] == "1"
    _check_raw(run_dir, sorted(points))
    assert (run_dir / "plot.png").stat().st_size > 20_000
    assert "rwnd-limited: +1 round expected" in (run_dir / "summary.md").read_text()


def _check_raw(run_dir: Path, sizes: list[int]) -> None:
    """Per trial: reno, IW 10, no retransmission (netem's deep queue drops
    nothing).  The 1 MiB point has a cwnd trace that starts at 10 and doubles."""
    for i, size in enumerate(sizes):
        raw = run_dir / "raw" / f"point{i:03d}"
        with open(raw / "trials_tcpinfo.csv") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) >= 11
        for row in rows:
            assert row["cc"] == "reno" and row["cwnd_at_accept"] == "10", row
            assert row["total_retrans"] == "0", row
            assert row["sndbuf_limited_us"] == "0", row
    trace = run_dir / "raw" / f"point{sizes.index(MIB):03d}"
    with open(trace / "cwnd.csv") as f:
        samples = list(csv.DictReader(f))
    # Every r/4 over about 8 RTTs.
    assert len(samples) >= 28
    cwnd = [int(s["snd_cwnd_segs"]) for s in samples]
    distinct = [c for j, c in enumerate(cwnd) if j == 0 or c != cwnd[j - 1]]
    assert distinct[:3] == [10, 20, 40], distinct
    assert max(cwnd) >= 640
    assert (trace / "cwnd.png").stat().st_size > 10_000
