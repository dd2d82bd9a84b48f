"""tls_handshake_rtts --quick through the UML backend: every handshake kind at
r = 50 ms counts the round trips CLAIMS [02] predicts."""
from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

from conftest import wirelab

ROUND_TRIPS = {"tls12_full": 2, "tls12_resumed": 1, "tls13_full": 1, "tls13_psk": 1,
               "tls13_0rtt": 0}


def test_tls_handshake_rtts_quick_matches_its_prediction(tmp_path, no_leftovers):
    # The timeout covers waiting up to 600 s for another lab's host lock.
    res = wirelab("run", "tls_handshake_rtts", "--quick", "--json", timeout=900,
                  env={**os.environ, "WIRELAB_RESULTS": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "match"
    assert {p["params"]["mode"] for p in doc["points"]} == set(ROUND_TRIPS)
    for p in doc["points"]:
        n, r = ROUND_TRIPS[p["params"]["mode"]], p["params"]["rtt_ms"]
        assert r == 50.0 and p["n"] >= 3
        # CLAIMS [02]: the RTT count is exact, one RTT counting as r ± 10%.
        rtts, ms = p["measured"]["handshake_rtts"], p["measured"]["handshake_ms"]
        assert round(rtts) == n, p
        assert abs(rtts - n) <= 0.1 * max(n, 1), p
        assert abs(ms - n * r) <= 0.1 * max(n, 1) * r, p
    run_dir = Path(doc["run_dir"])
    for i, p in enumerate(doc["points"]):
        raw = run_dir / "raw" / f"point{i:03d}"
        rows = list(csv.DictReader(open(raw / "trials_detail.csv")))
        assert len(rows) == p["n"]
        for row in rows:
            # What the captures saw: the raw interval is the round trips plus
            # the compute both ends did, and the SYN came one RTT earlier.
            assert float(row["interval_ms"]) >= float(row["network_ms"]) > -1.0
            assert abs(float(row["interval_ms"]) - float(row["network_ms"])
                       - float(row["client_compute_ms"]) - float(row["server_compute_ms"])) < 0.01
            syn_to_ack = float(row["from_syn_ms"]) - float(row["interval_ms"])
            assert 50.0 <= syn_to_ack <= 55.0  # the TCP handshake: one RTT, r ± 10%
            if p["params"]["mode"] == "tls13_0rtt":
                assert row["early_data"] == "accepted" and row["resumed"] == "True"
        assert (raw / "h1.pcap").stat().st_size > 1000 and (raw / "h2.pcap").stat().st_size > 1000
        s_client = (raw / "s_client.txt").read_text()
        assert "Verify return code: 0 (ok)" in s_client
        # Saved without key material.
        assert "BEGIN" not in s_client and not re.search(r"(Master-Key|PSK): [0-9A-F]", s_client)
