"""Every experiment's quick grid, run for real (UML where the host lacks netem): it must
match its prediction, leave nothing behind and leave the host's sysctls as they were.
Then the claim's own numbers are checked again from the JSON and the raw files, so a
run whose verdict logic were wrong would still fail here."""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from pathlib import Path

import pytest

from support import root_sysctls, wirelab
from wirelab.report.results import read_run
from wirelab.run import catalog

pytestmark = [pytest.mark.lab, pytest.mark.slow]

MSS = 1448
MIB = 1 << 20


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


# --- per-claim checks: the numbers behind the verdict ------------------------------------

def check_tcp_handshake_one_rtt(doc, run):
    assert {p["params"]["rtt_ms"] for p in doc["points"]} == {1.0, 10.0, 50.0}
    for p in doc["points"]:
        r, m = p["params"]["rtt_ms"], p["measured"]
        assert r <= m["connect_ms"] <= r + 0.5 + 0.03 * r, p
        assert 1.5 * r <= m["accept_ms"] <= 1.5 * r + 0.5 + 0.045 * r, p
        assert p["n"] >= 20
    assert len(run.rows) == 60
    assert (run.dir / "raw/point000/warmup.txt").exists()


def check_tls_handshake_rtts(doc, run):
    trips = {"tls12_full": 2, "tls12_resumed": 1, "tls13_full": 1, "tls13_psk": 1, "tls13_0rtt": 0}
    assert {p["params"]["mode"] for p in doc["points"]} == set(trips)
    for i, p in enumerate(doc["points"]):
        n, r = trips[p["params"]["mode"]], p["params"]["rtt_ms"]
        rtts, ms = p["measured"]["handshake_rtts"], p["measured"]["handshake_ms"]
        assert n <= rtts <= n + 0.1 * max(n, 1), p
        assert n * r <= ms <= (n + 0.1 * max(n, 1)) * r, p
        raw = run.dir / "raw" / f"point{i:03d}"
        rows = _rows(raw / "trials_detail.csv")
        assert len(rows) == p["n"] + len(p["excluded"])
        for row in rows:
            # The raw interval is the round trips plus both ends' compute, and the SYN
            # came one RTT earlier.
            assert abs(float(row["interval_ms"]) - float(row["network_ms"])
                       - float(row["client_compute_ms"]) - float(row["server_compute_ms"])) < 0.01
            assert 50.0 <= float(row["from_syn_ms"]) - float(row["interval_ms"]) <= 55.0
            if p["params"]["mode"] == "tls13_0rtt":
                assert row["early_data"] == "accepted" and row["resumed"] == "True"
        s_client = (raw / "s_client.txt").read_text()
        assert "Verify return code: 0 (ok)" in s_client
        assert "BEGIN" not in s_client and not re.search(r"(Master-Key|PSK): [0-9A-F]", s_client)


def check_iw10_vs_iw1_initcwnd_sweep(doc, run):
    by_n = {p["params"]["initcwnd_segs"]: p for p in doc["points"]}
    assert set(by_n) == {0, 1, 10}
    for i, (n, p) in enumerate(sorted(by_n.items())):
        iw = n or run.manifest["points"][i]["kernel_facts"]["iw_segs"]
        r, size, m = p["params"]["rtt_ms"], p["params"]["size_bytes"], p["measured"]
        assert m["initial_cwnd_segs"] == iw == (n or 10) and m["snd_mss_bytes"] == MSS
        rounds = math.ceil(math.log2(size / (iw * MSS) + 1))
        assert (1 + rounds) * r <= m["transfer_ms"] <= (1 + rounds + 1 / 3) * r, p
        raw = run.dir / "raw" / f"point{i:03d}"
        assert (f"'initcwnd': {n}" if n else "no initcwnd") in (raw / "routes.txt").read_text()
        assert all(row["cwnd_at_accept"] == str(iw) and row["total_retrans"] == "0"
                   for row in _rows(raw / "trials_tcpinfo.csv"))
    # IW 10 delivers 14480 B three round trips sooner than IW 1 (1 vs 4 rounds).
    gain = by_n[1]["measured"]["transfer_ms"] - by_n[10]["measured"]["transfer_ms"]
    assert abs(gain - 3 * 50) <= 2 * (0.3 * 50 + 5)


def check_slow_start_1MB_transfer(doc, run):
    points = {p["params"]["size_bytes"]: p for p in doc["points"]}
    assert set(points) == {14480, 100_000, MIB}
    # The text's 1 MB: 8 RTTs (~400 ms at 50 ms), not ~300 ms.
    assert 400 <= points[MIB]["measured"]["transfer_ms"] <= 400 + 50 / 3
    assert "rwnd-limited: +1 round expected" in points[100_000]["note"]
    assert "rwnd-limited" not in points[MIB]["note"] + points[14480]["note"]
    eff = run.manifest["points"][0]["effective_sysctls"]
    assert eff["h1"]["net.ipv4.tcp_rmem"].split() == ["4096", "131072", "16777216"]
    for i in range(3):
        for row in _rows(run.dir / "raw" / f"point{i:03d}" / "trials_tcpinfo.csv"):
            assert row["cc"] == "reno" and row["cwnd_at_accept"] == "10", row
            assert row["total_retrans"] == "0" and row["sndbuf_limited_us"] == "0", row
    trace = run.dir / "raw" / f"point{sorted(points).index(MIB):03d}"
    cwnd = [int(s["snd_cwnd_segs"]) for s in _rows(trace / "cwnd.csv")]
    distinct = [c for j, c in enumerate(cwnd) if j == 0 or c != cwnd[j - 1]]
    assert len(cwnd) >= 28 and distinct[:3] == [10, 20, 40] and max(cwnd) >= 640


def check_keepalive_connection_slow_start_after_idle(doc, run):
    pts = {(p["params"]["idle_s"], p["params"]["slow_start_after_idle"]): p
           for p in doc["points"]}
    assert set(pts) == {(0.05, "1"), (0.05, "0"), (1.0, "1"), (1.0, "0")}
    for (idle_s, on), p in pts.items():
        m, r = p["measured"], p["params"]["rtt_ms"]
        ratio = m["reuse_ms"] / m["warm_ms"]
        assert r + 200 <= m["rto_ms"] <= r + 200 + 20, p
        if on == "1" and idle_s * 1000 > m["rto_ms"]:
            assert ratio >= 3.0, p
        else:
            assert abs(ratio - 1) <= 0.15, p
        assert m["model_miss_count"] == 0, p
        # A new connection costs the handshake plus slow start from IW: 8 r.
        assert 8 * r <= m["new_conn_ms"] <= (8 + 1 / 3) * r, p
    restarted = 0
    for point in run.manifest["points"]:
        on = point["params"]["slow_start_after_idle"]
        assert point["effective_sysctls"]["h2"]["net.ipv4.tcp_slow_start_after_idle"] == on
        for line in (run.dir / f"raw/point{point['point']:03d}/responses.jsonl").read_text().splitlines():
            for resp in json.loads(line)["responses"]:
                assert resp["cc"] == "reno" and resp["queued_bytes"] == MIB and not resp["miss"]
                if resp["gap_s"] == 1.0 and on == "1":
                    # 4 RTOs of 260 ms at HZ=100 fit in 1050 ms: cwnd cut to 1/16.
                    assert resp["after"]["snd_cwnd"] < resp["before"]["snd_cwnd"] // 8
                    restarted += 1
    assert restarted == 9


def check_nagle_delayed_ack_stall(doc, run):
    jiffy = 1000.0 / run.manifest["kernel"]["hz"]["hz"]
    pts = {(p["params"]["mode"], p["params"]["rtt_ms"]): p for p in doc["points"]}
    assert set(pts) == {(mode, r) for mode in ("nagle", "nodelay", "quickack", "writev", "cork")
                        for r in (0, 50)}
    for (mode, r), p in pts.items():
        m = p["measured"]
        assert abs(m["jiffy_ms"] - jiffy) <= 0.05 * jiffy, p
        assert p["n_by_metric"]["first_ms"] == 3 and p["n_by_metric"]["jiffy_ms"] == 1
        # Network time on the critical path; the program's own time beyond the wire.
        if mode == "nagle":
            # 40 ms (plus up to 2 jiffies), far from the text's 200; one delayed ACK each.
            assert 40.0 <= m["latency_ms"] - 2 * r <= 40.0 + 2 * jiffy, p
            assert m["delayed_acks_count"] == 1, p
        else:
            trips = 2 if mode == "quickack" else 1
            assert trips * r <= m["latency_ms"] <= trips * (r + 1.0), p
            assert m["delayed_acks_count"] == 0, p
        assert 0.0 <= m["app_over_ms"] <= 2.0, p
        trips = 2 if mode in ("nagle", "quickack") else 1
        assert trips * r <= m["first_ms"] <= trips * r + 1.0, p
    nagle = next(pt for pt in run.manifest["points"]
                 if pt["params"] == {"mode": "nagle", "rtt_ms": 50.0})
    raw = run.dir / f"raw/point{nagle['point']:03d}"
    lines = [json.loads(x) for x in (raw / "requests.jsonl").read_text().splitlines()]
    # every request, the excluded ones too (processing over budget: recorded, not judged)
    assert [x["delayed_acks"] for x in lines] == [1] * len(lines)
    assert len(lines) == pts[("nagle", 50)]["n"] + len(pts[("nagle", 50)]["excluded"])
    assert lines[-1]["server"]["ato"] == 40_000          # µs, as TCP_INFO says
    # Every request, not only the median, waited for the timer: no request came early.
    assert all(x["latency_ms"] >= 140.0 and x["app_over_ms"] >= 0.0 for x in lines), lines
    t05 = (raw / "t05.txt").read_text()
    assert t05.startswith("span ") and "--- packets at h1 (ms) ---" in t05


def check_connection_pooling_latency(doc, run):
    assert sorted(p["params"]["tls"] for p in doc["points"]) == ["1.2", "1.3"]
    for i, p in enumerate(doc["points"]):
        r, m = p["params"]["rtt_ms"], p["measured"]
        tls_rtts = {"1.2": 2, "1.3": 1}[p["params"]["tls"]]
        for name, pred in (("new_conn_ms", (2 + tls_rtts) * r), ("keepalive_ms", r),
                           ("pool4_ms", r)):
            assert pred <= m[name] <= pred + 1.0 + 0.05 * pred, (name, p)
        assert m["new_conn_ms"] - m["keepalive_ms"] >= (1 + tls_rtts) * r * 0.95
        rows = _rows(run.dir / "raw" / f"point{i:03d}" / "server_cpu.csv")
        assert len(rows) == 20
    for row in run.rows:    # the critical path (SYN out to the last byte in) lies inside the wall time
        net, cpu, wall = (float(row[k]) for k in ("new_conn_ms", "new_conn_compute_ms", "new_conn_wall_ms"))
        assert 0 < cpu and net + cpu <= wall * 1.001, row
        for k in ("keepalive_ms", "pool4_ms"):      # a request's path lies inside its wall time
            assert float(row[k]) <= float(row[k.replace("_ms", "_wall_ms")]) * 1.001, row
        # The pool's four requests really were in flight together.
        assert all(int(row["pool4_max_in_flight"]) == 4 for row in rows)


def check_url_journey_rtt_budget(doc, run):
    pts = doc["points"]
    assert len(pts) == 8
    for p in pts:
        meas, pred = p["measured"], p["predicted"]
        for m in ("namelookup_ms", "connect_ms", "appconnect_ms", "starttransfer_ms", "total_ms"):
            assert pred[m] <= meas[m] <= pred[m] + 0.5 + 0.03 * pred[m], (p["params"], m)
            assert meas[f"curl_{m}"] >= pred[f"curl_{m}"] and meas[f"curl_{m}"] >= meas[m]
    by = {(p["params"]["dns"], p["params"]["tls"], p["params"]["rtt_ms"]): p for p in pts}
    # Each phase grows by its round trips between r = 10 and r = 50, within the claim's
    # band applied to the increment (one point high and the other low fails).
    for dns in ("hosts", "warm"):
        for tls in ("1.2", "1.3"):
            lo, hi = by[(dns, tls, 10.0)], by[(dns, tls, 50.0)]
            for m in ("namelookup_ms", "connect_ms", "appconnect_ms", "starttransfer_ms"):
                want = hi["predicted"][m] - lo["predicted"][m]       # round trips x 40 ms
                grew = hi["measured"][m] - lo["measured"][m]
                assert abs(grew - want) <= 0.5 + 0.03 * want, (dns, tls, m, grew, want)
    # The text's 4-5 RTTs: first byte after 4 r (TLS 1.3) / 5 r (TLS 1.2) with a warm
    # resolver as far as the server; 3 / 4 with a hosts file.
    assert by[("warm", "1.3", 50.0)]["predicted"]["starttransfer_ms"] == 200.0
    assert by[("warm", "1.2", 50.0)]["predicted"]["starttransfer_ms"] == 250.0
    assert by[("hosts", "1.3", 50.0)]["predicted"]["starttransfer_ms"] == 150.0
    warm = next(pt["point"] for pt in run.manifest["points"] if pt["params"]["dns"] == "warm")
    batch = (run.dir / f"raw/point{warm:03d}/batch00.txt").read_text()
    assert "TLSv1." in batch and re.search(r"resolver cache during the batch: \d+ hits, 0 misses",
                                           batch)


def check_http2_multiplexing_vs_http1(doc, run):
    (p,) = doc["points"]
    r, meas, pred = p["params"]["rtt_ms"], p["measured"], p["predicted"]
    for m in ("seq", "par6", "h2"):
        assert pred[f"{m}_ms"] <= meas[f"{m}_ms"] <= pred[f"{m}_ms"] + r / 3, (m, meas, pred)
        assert meas[f"{m}_loss_ms"] >= pred[f"{m}_ms"]
    assert meas["h2_ms"] < meas["seq_ms"] and meas["par6_ms"] < meas["seq_ms"]
    assert "with 2% loss:" in p["note"]
    raw = (run.dir / "raw/point000/t00-h2.txt").read_text()
    assert "--- packets at h1 (ms) ---" in raw and "--- packets at h2 (ms) ---" in raw


def _schedules(run, point: int) -> list[dict]:
    path = run.dir / f"raw/point{point:03d}/schedule.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _on_schedule(trial: dict, rel: float, abs_s: float, early_s: float = 0.002) -> None:
    """Every event at or after the kernel's time (EARLY_S: 2 ms for the tap's clock), late
    by at most REL x nominal + ABS_S, none missing, none extra; the same for the error."""
    assert len(trial["events"]) == len(trial["predicted"]), trial
    for got, want in zip(trial["events"], trial["predicted"], strict=True):
        assert want - early_s <= got <= want * (1 + rel) + abs_s, trial
    assert trial["predicted_end"] <= trial["end"] <= trial["predicted_end"] * (1 + rel) + abs_s, trial


def check_syn_retransmission_schedule(doc, run):
    pts = {p["params"]["case"]: p for p in doc["points"]}
    assert set(pts) == {"sysctl", "syncnt", "user_timeout"}
    # 6.1: pure doubling, no linear steps (SYNs at 0, 1, 3 s; ETIMEDOUT at 7 s)
    assert pts["sysctl"]["predicted"] == {"etimedout_s": 7.0, "last_syn_s": 3.0, "syn_count": 3.0,
                                          "schedule_miss_count": 0.0}
    assert pts["syncnt"]["predicted"]["etimedout_s"] == 3.0
    assert pts["user_timeout"]["predicted"]["etimedout_s"] == 2.5
    for i, point in enumerate(run.manifest["points"]):
        assert point["effective_sysctls"]["h1"]["net.ipv4.tcp_syn_retries"] == "2"
        trials = _schedules(run, i)
        assert len(trials) == pts[point["params"]["case"]]["n"]
        for trial in trials:
            _on_schedule(trial, 0.13, 0.05)


def check_rto_backoff_partition(doc, run):
    pts = {p["params"]["user_timeout_ms"]: p for p in doc["points"]}
    assert set(pts) == {0, 3000}
    for p in pts.values():
        m = p["measured"]
        # the first retransmission is the loss probe, well under the course's 1 s
        assert 0.25 <= m["first_retrans_s"] <= 0.35 and m["backoff_ratio"] == pytest.approx(2, abs=0.15)
    assert 16.64 <= pts[0]["measured"]["abort_s"] <= 16.64 * 1.13 + 0.05
    assert 3.52 <= pts[3000]["measured"]["abort_s"] <= 3.52 * 1.13 + 0.05
    for i, point in enumerate(run.manifest["points"]):
        assert point["effective_sysctls"]["h1"]["net.ipv4.tcp_retries2"] == "5"
        for trial in _schedules(run, i):
            _on_schedule(trial, 0.13, 0.05)
            waits = [b - a for a, b in zip(trial["events"][1:], trial["events"][2:], strict=False)]
            assert all(1.8 <= b / a <= 2.2 for a, b in zip(waits, waits[1:], strict=False)), trial


def check_keepalive_dead_peer_detection(doc, run):
    pts = {p["params"]["case"]: p for p in doc["points"]}
    assert set(pts) == {"keepalive", "data", "user_timeout"}
    want = {"keepalive": (5.0, 3), "data": (14.08, 6), "user_timeout": (3.44, 4)}
    for case, (detect, sent) in want.items():
        m = pts[case]["measured"]
        assert detect <= m["detect_s"] <= detect * 1.05 + 0.3 and m["sent_count"] == sent, case
    # Keep-alive compares idle time in jiffies (keepalive_time_elapsed): a probe may
    # leave up to one tick before the idle time the tap measures.
    jiffy = 1.0 / run.manifest["kernel"]["hz"]["hz"]
    for i in range(len(run.manifest["points"])):
        for trial in _schedules(run, i):
            _on_schedule(trial, 0.05, 0.3, early_s=jiffy + 0.002)


def check_loss_recovery_fast_retransmit_vs_rto(doc, run):
    want = {"middle": (50.0, 1.0, 2), "tail": (310.0, 2.0, 2), "tail_twice": (570.0, 3.0, 3)}
    assert {p["params"]["case"] for p in doc["points"]} == set(want)
    # every trial, not only the median: recovered by the case's mechanism, in its time
    for row in run.rows:
        ms, code, _ = want[row["case"]]
        assert float(row["mechanism_code"]) == code, row
        assert ms <= float(row["recovery_ms"]) <= ms * 1.2, row
    for i, point in enumerate(run.manifest["points"]):
        _, code, sent = want[point["params"]["case"]]
        for line in _rows_plain(run.dir / f"raw/point{i:03d}/recoveries.csv"):
            counters = dict(kv.split("=") for kv in line[2:])
            assert int(line[1]) == sent, line        # the marked segment's transmissions
            assert (int(counters["TCPFastRetrans"]) > 0) == (code == 1.0), line
            assert (int(counters["TCPTimeouts"]) > 0) == (code == 3.0), line


def check_reachability_tools_ping_vs_tcp_refused_vs_drop(doc, run):
    outcome = {"ping": 2, "open": 0, "closed": 1, "reject_rst": 1, "reject_icmp": 1, "drop": 2}
    assert {p["params"]["case"] for p in doc["points"]} == set(outcome)
    floor = {case: 2500.0 if code == 2 else 50.0 for case, code in outcome.items()}
    # one round trip to an answer; a dropped probe or SYN waits the whole timeout
    for p in doc["points"]:
        lo = floor[p["params"]["case"]]
        assert lo <= p["measured"]["time_ms"] <= lo + 1.0 + 0.02 * lo, p
    for row in run.rows:        # every trial: the outcome, and never before the floor
        assert float(row["outcome_code"]) == outcome[row["case"]], row
        assert float(row["time_ms"]) >= floor[row["case"]], row
    for i, point in enumerate(run.manifest["points"]):
        for line in _rows_plain(run.dir / f"raw/point{i:03d}/attempts.csv"):
            syns = [float(x) for x in line[3].split()]
            if point["params"]["case"] == "drop":   # the SYN and its 1 s retransmission
                assert len(syns) == 2 and 1000.0 <= syns[1] <= 1000.0 * 1.13 + 50, line
            else:
                assert len(syns) == (0 if point["params"]["case"] == "ping" else 1), line


def _rows_plain(path: Path) -> list[list[str]]:
    with open(path) as f:
        return list(csv.reader(f))


def check_cwnd_response_to_loss(doc, run):
    beta = {"reno": 0.5, "cubic": 717 / 1024}
    assert {p["params"]["cc"] for p in doc["points"]} == {"reno", "cubic", "bbr"}
    for row in run.rows:        # the kernel's integer arithmetic: every trial, not a median
        if row["cc"] == "bbr":  # no multiplicative cut: the window kept through recovery
            assert 0.85 <= float(row["cwnd_kept_ratio"]) <= 1.15, row
        else:
            assert abs(float(row["ssthresh_ratio"]) - beta[row["cc"]]) <= 0.05, row
        assert float(row["cwnd_after_rto_segs"]) == 1.0, row
    for i, point in enumerate(run.manifest["points"]):
        for line in _rows_plain(run.dir / f"raw/point{i:03d}/cuts.csv"):
            cwnd, ssthresh = int(line[1]), int(line[2])
            if point["params"]["cc"] == "bbr":
                assert ssthresh == 0x7FFFFFFF, line        # bbr never sets one
            else:   # cut in congestion avoidance (cwnd at or above a finite ssthresh), near 60
                assert ssthresh <= cwnd <= 100, line
        trace = _rows(run.dir / f"raw/point{i:03d}/cwnd.csv")
        states = [int(r["ca_state"]) for r in trace]
        assert 3 in states and 4 in states, point["params"]           # recovery, then loss
        assert min(int(r["snd_cwnd_segs"]) for r in trace if r["ca_state"] == "4") == 1


def check_flow_control_rwnd_bdp_and_buffer_sysctls(doc, run):
    pts = {p["params"]["case"]: p for p in doc["points"]}
    assert set(pts) == {"16k", "64k", "256k", "auto", "pause"}
    link = 20 * 1448 / 1514
    for case, window in (("16k", 14480), ("64k", 64088), ("256k", 211544)):
        m = pts[case]["measured"]
        # the window on the wire is exactly the 6.1 rule's (rmem_max caps 256 KiB)
        assert m["window_kb"] == pytest.approx(window / 1e3, rel=1e-3), case
        want = min(link, window * 8 / 0.1 / 1e6)
        assert abs(m["goodput_mbps"] - want) <= 0.1 * want, case
    auto = pts["auto"]["measured"]
    assert auto["window_kb"] > 250.0 and abs(auto["goodput_mbps"] - link) <= 0.1 * link
    pause = pts["pause"]["measured"]
    assert pause["rto_ms"] >= 300.0
    for row in run.rows:
        if row["case"] == "pause":
            assert float(row["zero_window_count"]) == 1.0, row
            assert 1.0 <= float(row["first_probe_rto_ratio"]) <= 1.05, row
            assert 2.0 <= float(row["backoff_rto_ratio"]) <= 2.3, row




def check_client_ephemeral_port_exhaustion_tw_reuse(doc, run):
    pts = {p["params"]["case"]: p for p in doc["points"]}
    assert set(pts) == {"client_closes", "server_closes", "tw_reuse"}
    assert run.manifest["backend"] == "host"        # namespaces only: the host kernel ran it
    n = 1000
    for row in run.rows:                # counts, every trial: the pool exactly, no failures
        if row["case"] == "client_closes":
            assert float(row["first_failure_count"]) == n, row
            assert float(row["time_wait_count"]) == n and float(row["second_port_count"]) == n, row
        else:
            assert float(row["failure_count"]) == 0.0, row
    for i, point in enumerate(run.manifest["points"]):
        client = point["effective_sysctls"]["h1"]
        assert client["net.ipv4.ip_local_port_range"].split() == ["32768", "33767"]
        assert client["net.ipv4.tcp_rfc1337"] == "1"       # no RST ends a TIME_WAIT early
        if point["params"]["case"] != "client_closes":
            for line in _rows_plain(run.dir / f"raw/point{i:03d}/paced.csv"):
                # 2 x pool connections made; with tw_reuse the client's TIME_WAIT stays under
                # the pool (reused), when the server closes first there is none
                assert int(line[1]) == 2 * n and int(line[2]) == 0, line
                assert int(line[3]) == 0 if point["params"]["case"] == "server_closes" else int(line[3]) <= n


def check_accept_backlog_overflow(doc, run):
    pts = {p["params"]["case"]: p for p in doc["points"]}
    assert set(pts) == {"cookies", "no_cookies", "abort", "capped"}
    want = {"cookies": (4, 4, 4, 0), "no_cookies": (4, 8, 0, 0), "abort": (4, 6, 0, 2),
            "capped": (5, 8, 0, 0)}         # queue, served, phantoms, resets: every trial
    for i, point in enumerate(run.manifest["points"]):
        case = point["params"]["case"]
        for line in (run.dir / f"raw/point{i:03d}/clients.jsonl").read_text().splitlines():
            t = json.loads(line)
            phantoms = len(t["connect_s"]) - len(t["served_s"]) - t["resets"]
            assert (t["queues"][0], len(t["served_s"]), phantoms, t["resets"]) == want[case], t
            c = t["counters"]
            if case == "cookies":       # SYN 5-8 answered by cookies, their ACKs dropped
                assert c["TCPReqQFullDoCookies"] == 4 and c["TCPReqQFullDrop"] == 0, t
                assert max(t["connect_s"]) < 0.2, t         # every connect() returned at once
            else:
                assert c["TCPReqQFullDoCookies"] == 0, t
                # delayed ones connect on the SYN resent at 1 s, never before
                assert all(x < 0.2 or 1.0 <= x < 1.3 for x in t["connect_s"]), t


def check_server_side_time_wait_accumulation(doc, run):
    assert {p["params"]["tw_buckets_count"] for p in doc["points"]} == {300, 20000}
    assert run.manifest["backend"] == "host"        # namespaces only: the host kernel ran it
    n = 10000
    for row in run.rows:    # counts, every trial: min(n, cap) TIME_WAIT, the excess overflowed
        cap = int(row["tw_buckets_count"])
        assert float(row["time_wait_count"]) == min(n, cap), row
        assert float(row["overflow_count"]) == max(0, n - cap), row
        assert float(row["failure_count"]) == 0 and float(row["server_ports_count"]) == 1, row
        if cap > n:         # one tw_sock_TCP object (its size read from slabinfo) per socket
            ratio, size = float(row["tw_objects_ratio"]), float(row["predicted_tw_slab_bytes"])
            assert abs(ratio - 1) <= 0.02 and size >= 128, row
            assert float(row["tw_slab_bytes"]) == pytest.approx(size * ratio), row
        else:               # 300 sockets: too few to see through SLUB's per-CPU slack
            assert row["tw_objects_ratio"] is None, row
    for i, point in enumerate(run.manifest["points"]):
        cap = str(point["params"]["tw_buckets_count"])
        for h in ("h4", "h5", "h6"):
            server = point["effective_sysctls"][h]
            assert server["net.ipv4.tcp_max_tw_buckets"] == cap and server["net.ipv4.tcp_rfc1337"] == "1"
        trials = _rows(run.dir / f"raw/point{i:03d}/trials.csv")
        assert [t["server"] for t in trials] == ["h4", "h5"]       # a fresh server per trial
        for t in trials:    # all N made well inside one TIME_WAIT (60 s), none failed
            assert int(t["connections"]) == n and int(t["failed"]) == 0 and float(t["seconds"]) < 50, t


def check_time_wait_duration_and_fin_timeout(doc, run):
    wheel = catalog.load("time_wait_duration_and_fin_timeout").module.wheel_late_s
    hz = int(run.manifest["kernel"]["hz"]["hz"])
    assert {p["params"]["case"] for p in doc["points"]} == {"client_closes", "server_closes", "orphan"}
    for i, point in enumerate(run.manifest["points"]):
        fin = point["params"]["fin_timeout_s"]
        assert point["effective_sysctls"]["h1"]["net.ipv4.tcp_fin_timeout"] == str(fin)
        for line in (run.dir / f"raw/point{i:03d}/lifetimes.jsonl").read_text().splitlines():
            t = json.loads(line)
            assert len(t["timers_s"]) == 20, t
            if t["case"] == "orphan":   # every orphan gone after fin_timeout, at most a bucket late
                assert t["left"] == 0 and len(t["gone_s"]) == 20, t
                assert all(fin <= g <= fin + wheel(fin, hz) + 0.1 for g in t["gone_s"]), t
                assert all(abs(x - fin) <= 0.02 for x in t["timers_s"]), t
            else:                       # every TIME_WAIT armed for 60 s, fin_timeout 5 or not
                assert all(59.98 <= x <= 60.05 for x in t["timers_s"]), t


def check_connection_capacity_fd_and_4tuple(doc, run):
    assert {p["params"]["case"] for p in doc["points"]} == {"fd_limit", "1_addr", "2_addrs", "3_addrs"}
    for i, point in enumerate(run.manifest["points"]):
        case = point["params"]["case"]
        if case == "fd_limit":      # started with exactly stdin, stdout, stderr, the listener
            for line in (run.dir / f"raw/point{i:03d}/fd_limit.jsonl").read_text().splitlines():
                t = json.loads(line)
                # 0-3, and the one listdir itself held open while it read the directory
                assert [f for f in t["fds"] if f <= 3] == [0, 1, 2, 3] and len(t["fds"]) == 5, t
                assert t["errno"] == 24 and t["accepted"] == 64 - 4 and t["queued"] == 5, t
        else:                       # every address got the whole range, every trial
            for line in (run.dir / f"raw/point{i:03d}/four_tuple.jsonl").read_text().splitlines():
                assert json.loads(line)["per_addr"] == [300] * int(case[0]), line


def check_socket_memory_per_connection(doc, run):
    (point,) = doc["points"]
    pred, n = point["predicted"], 4000
    assert point["params"]["connections_count"] == n and run.manifest["backend"] == "host"
    client = run.manifest["points"][0]["effective_sysctls"]["h1"]
    assert client["net.ipv4.ip_local_port_range"].split() == ["10000", "65535"]
    assert client["net.ipv4.tcp_rfc1337"] == "1"
    assert len(run.rows) == 3
    for row in run.rows:                # every trial, not a median
        assert abs(float(row["slab_per_end_bytes"]) / pred["slab_per_end_bytes"] - 1) <= 0.03, row
        if "rmem_per_conn_bytes" in pred:           # 6.3+: the small skb heads are modelled
            assert 0 <= float(row["rmem_per_conn_bytes"]) - pred["rmem_per_conn_bytes"] <= 4 * 832, row
            assert 0 <= float(row["charged_per_conn_bytes"]) - pred["charged_per_conn_bytes"] <= 4096, row
    for t in map(json.loads, (run.dir / "raw/point000/memory.jsonl").read_text().splitlines()):
        m, idle, filled, closed = t["filled"], *(t["slab_objects"][k] for k in ("idle", "filled", "closed"))
        assert t["connections"] == n and t["time_wait"] == n and 1000 <= m <= n, t
        # one each per end.  filp and dentry are every file's caches: the previous trial's
        # 8,000 closed files are still being freed (deferred fput) while this one counts, so
        # a trial read 7,746 and 7,747 of 8,000 in CI (-3.2%, 6 B of a 3,768 B end, inside
        # the judged per-end band); the caches only sockets use are counted to 3%
        for cache in ("TCP", "sock_inode_cache"):
            assert 0.97 * 2 * n <= idle[cache][0] <= 1.01 * 2 * n, (cache, idle)
        for cache in ("filp", "dentry"):
            assert 0.95 * 2 * n <= idle[cache][0] <= 1.01 * 2 * n, (cache, idle)
        assert abs(closed["tw_sock_TCP"][0] / n - 1) <= 0.05 and closed["TCP"][0] <= -0.97 * 2 * n, closed
        assert 0.85 <= t["meminfo_slab_per_end_bytes"] / pred["slab_per_end_bytes"] <= 1.1, t
        # sockstat's TCP mem (kernel-wide, per-CPU reserves) agrees with the sockets' own pages
        assert abs(t["tcp_mem_per_conn_bytes"] / t["charged_per_conn_bytes"] - 1) < 0.02, t
        assert t["max_rmem_bytes"] > 65536 and t["max_charged_bytes"] % 4096 == 0, t
        if "skbuff_small_head" in filled:           # a head per queued skb: 1 to 5 per connection
            assert m <= filled["skbuff_small_head"][0] <= 5.5 * m, filled

def check_retry_storm_metastable_congestion(doc, run):
    pts = {p["params"]["policy"]: p for p in doc["points"]}
    assert set(pts) == {"immediate", "backoff", "budget"}
    assert run.manifest["backend"] == "host"            # tbf only: the host kernel ran it
    for row in run.rows:                # every trial: stuck at zero, or back in full
        stuck = row["policy"] != "budget"
        g = float(row["goodput_after_ratio"])
        assert (g < 0.1) if stuck else (g > 0.9), row
        assert float(row["oob_loss_ratio"]) == 0.0, row          # its own path sees every answer
        assert float(row["inpath_blind_count"]) == (1.0 if stuck else 0.0), row
        want = {"immediate": 1000.0, "backoff": 1250.0, "budget": 250.0}[row["policy"]]
        assert abs(float(row["load_after_per_s"]) - want) <= 0.1 * want, row
        if not stuck:
            assert 4.44 <= float(row["recovery_s"]) <= 7.44, row
    for i in range(len(run.manifest["points"])):        # the timeline: the surge at 5 s for 5 s
        marks = [json.loads(line)["marks"] for line in
                 (run.dir / f"raw/point{i:03d}/faults.jsonl").read_text().splitlines()]
        for m in marks:
            assert [(round(t), on) for t, on, _ in m] == [(5, True), (10, False)], m


def check_bgp_backbone_leak_localpref(doc, run):
    pts = {p["params"]["fix"]: p for p in doc["points"]}
    assert set(pts) == {"max_prefix", "local_pref"}
    assert run.manifest["backend"] == "host"            # FRR and tbf: the host kernel ran it
    for row in run.rows:                # every trial: all pairs via ATL, capped at its link, back
        pred = {k.removeprefix("predicted_"): float(v) for k, v in row.items()
                if k.startswith("predicted_") and v not in ("", None)}
        assert float(row["atl_path_pct"]) == 100.0, row
        assert pred["leak_onset_s"] - 0.1 <= float(row["leak_onset_s"]) <= pred["leak_onset_s"] + 1.0, row
        assert abs(float(row["leak_goodput_mbps"]) / pred["leak_goodput_mbps"] - 1) <= 0.15, row
        assert abs(float(row["leak_loss_pct"]) - pred["leak_loss_pct"]) <= 4.0, row
        assert pred["recovery_s"] - 0.1 <= float(row["recovery_s"]) <= pred["recovery_s"] + 1.0, row
        for k in ("before_goodput_mbps", "after_goodput_mbps"):
            assert abs(float(row[k]) / pred[k] - 1) <= 0.05, row


def check_anycast_resolver_withdrawal_and_hijack(doc, run):
    pts = {p["params"]["event"]: p for p in doc["points"]}
    assert set(pts) == {"unreachable", "blackhole", "hijack"}
    assert run.manifest["backend"] == "host"            # FRR and dnsmasq in namespaces, no qdisc needed
    for row in run.rows:                # every trial: glibc's timers, the answers, BGP within 1 s + MRAI
        pred = {k.removeprefix("predicted_"): float(v) for k, v in row.items()
                if k.startswith("predicted_") and v not in ("", None)}
        for k in ("two_lookup_s", "one_lookup_s"):
            assert pred[k] - 0.01 <= float(row[k]) <= pred[k] + 0.1, (k, row)
        for k in ("two_ok_pct", "one_ok_pct", "wrong_pct", "after_ok_pct", "mrai_s"):
            assert float(row[k]) == pred[k], (k, row)
        for k in ("converge_s", "recovery_s"):
            assert 0.0 <= float(row[k]) <= pred[k] + 1.0, (k, row)
    for p in doc["points"]:             # the model: a silent anycast address costs glibc's 5 s per try
        want = {"unreachable": (0.0, 0.0), "blackhole": (5.0, 10.0), "hijack": (0.0, 0.0)}
        assert (p["predicted"]["two_lookup_s"], p["predicted"]["one_lookup_s"]) == want[p["params"]["event"]]


def check_memcached_reflection_and_edge_filtering(doc, run):
    pts = {p["params"]["filter"]: p for p in doc["points"]}
    assert set(pts) == {"none", "host", "edge"}
    assert run.manifest["backend"] == "host"            # tbf only: the host kernel ran it
    for row in run.rows:                # every trial, byte for byte and per filter
        pred = {k.removeprefix("predicted_"): float(v) for k, v in row.items()
                if k.startswith("predicted_") and v not in ("", None)}
        assert float(row["datagrams_count"]) == pred["datagrams_count"] == 754.0, row
        for m in ("amplification_x", "amplification_payload_x", "amplification_10keys_x"):
            assert abs(float(row[m]) / pred[m] - 1) <= 1e-3, (m, row)   # exact, but for a stray ARP frame
        assert abs(float(row["flood_mbps"]) / pred["flood_mbps"] - 1) <= 0.05, row
        assert 0.9 <= float(row["before_ratio"]) <= 1.0, row
        g = float(row["goodput_ratio"])
        assert (g >= 0.9) if row["filter"] == "edge" else (g <= 0.05), row
    for i, p in enumerate(run.manifest["points"]):      # the attack at 3 s for 6 s; a filter from 0
        for line in (run.dir / f"raw/point{i:03d}/faults.jsonl").read_text().splitlines():
            marks = [(round(t), on) for t, on, _ in json.loads(line)["marks"]]
            attack = [(3, True), (9, False)]
            filt = p["params"]["filter"] != "none"
            assert sorted(marks) == sorted(attack + ([(0, True), (11, False)] if filt else [])), marks


def check_openflow_load_balancer_spread(doc, run):
    assert {p["params"]["policy"] for p in doc["points"]} == {"hash", "round_robin"}
    assert run.manifest["backend"] == "host"            # OVS's userspace datapath, no module
    for row in run.rows:                # every trial: every connection where the policy says
        n = int(row["connections_count"])
        counts = [float(row[f"{h}_count"]) for h in ("h2", "h3", "h4")]
        assert float(row["misplaced_count"]) == 0.0 and sum(counts) == n, row
        if row["policy"] == "round_robin":      # 31 over 3: 11, 10, 10 in turn from h2
            assert counts == [n // 3 + (i < n % 3) for i in range(3)], row
    for i, _ in enumerate(run.manifest["points"]):      # each connection's source port and backend
        lines = (run.dir / f"raw/point{i:03d}/connections.csv").read_text().splitlines()
        assert len(lines) == sum(int(r["connections_count"]) for r in run.rows if int(r["point"]) == i)
        assert all(line.split(",")[2] == line.split(",")[3] for line in lines)


def check_openflow_reactive_flow_setup(doc, run):
    assert {p["params"]["switches_count"] for p in doc["points"]} == {1, 3}
    assert run.manifest["backend"] == "host"            # OVS's userspace datapath, no module
    for row in run.rows:                # every trial, exactly: 2N, N, 0, then 2N after idling
        n = int(row["switches_count"])
        got = [float(row[m]) for m in ("first_trips_count", "second_trips_count", "later_trips_count",
                                       "idle_trips_count")]
        assert got == [2 * n, n, 0, 2 * n], row
        # The controller's visits cost the first round trip time; the warm ones skip it.
        assert float(row["first_rtt_ms"]) > float(row["warm_rtt_ms"]), row


def check_openflow_controller_failure_fail_mode(doc, run):
    pts = {p["params"]["fail_mode"]: p for p in doc["points"]}
    assert set(pts) == {"secure", "standalone"}
    assert run.manifest["backend"] == "host"            # OVS's userspace datapath, no module
    for row in run.rows:                # every trial
        if row["fail_mode"] == "secure":    # nothing new, ever; nothing established lost
            assert float(row["new_answered_count"]) == 0.0 and float(row["kept_lost_count"]) == 0.0, row
            assert row.get("failopen_log_s") in ("", None), row
        else:                               # 3 x 5 s after the last word, give or take OVS's second
            assert 14.0 <= float(row["new_flow_s"]) <= 16.1, row
            assert 14.0 <= float(row["failopen_log_s"]) <= 16.0, row
            assert float(row["new_flow_s"]) >= float(row["failopen_log_s"]), row
            assert float(row["kept_lost_count"]) <= 1.0, row
    for i, _ in enumerate(run.manifest["points"]):    # the last word, then the kill, at 1 s
        for line in (run.dir / f"raw/point{i:03d}/faults.jsonl").read_text().splitlines():
            marks = [m for m in json.loads(line)["marks"] if m[1]]
            assert [m[2] for m in marks] == ["controller's last message (a barrier)", "kill controller"]
            assert all(1.0 <= m[0] < 1.3 for m in marks), marks


CHECKS = {name.removeprefix("check_"): fn for name, fn in globals().items()
          if name.startswith("check_")}


def test_every_experiment_has_its_own_checks():
    assert set(CHECKS) == set(catalog.names())


@pytest.mark.parametrize("name", catalog.names())
def test_quick_run_matches(name, tmp_path, no_leftovers):
    before = root_sysctls()
    # The timeout covers waiting up to 600 s for another lab's host lock.
    res = wirelab("--results-dir", str(tmp_path), "run", name, "--quick", "--json", timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "match" and doc["experiment"] == name
    run = read_run(Path(doc["run_dir"]))
    assert run.dir.parent.parent == tmp_path
    m = run.manifest
    assert m["status"] == "completed" and m["quick"] is True
    for point in m["points"]:
        for host, values in point["effective_sysctls"].items():
            if host.startswith("h"):
                assert values["net.ipv4.tcp_no_metrics_save"] == "1", host
    summary = (run.dir / "summary.md").read_text()
    assert "**Verdict: MATCH**" in summary and "## What Linux does" in summary
    assert (run.dir / "plot.png").stat().st_size > 20_000
    CHECKS[name](*_without_host_disturbed(doc, run))
    assert root_sysctls() == before


def _without_host_disturbed(doc: dict, run):
    """The run as its checks judge it: trials the host starved (wirelab.kernel.pace) are
    recorded but never judged, so their rows and exclusion reasons are left out here, as the
    runner left their raw output out of the point's files (in raw/pointNNN/host-disturbed/)."""
    host = "the host gave the emulator "
    aside = [r for r in run.rows if str(r.get("excluded") or "").startswith(host)]
    doc = {**doc, "points": [{**p, "excluded": [e for e in p["excluded"] if not e.startswith(host)]}
                             for p in doc["points"]]}
    return doc, dataclasses.replace(run, rows=[r for r in run.rows if r not in aside])


def test_a_dropped_syn_is_reported_and_its_transfer_never_judged(tmp_path, no_leftovers):
    """r1 drops exactly one SYN (the third timed transfer's) at r = 50 ms: the client
    resends it a second later; that transfer is recorded with the retransmission named,
    excluded from the statistics, and another batch makes up for it."""
    res = wirelab("--results-dir", str(tmp_path), "run", "url_journey", "--quick", "--json",
                  "--set", "rtt_ms=50", "--set", "dns=hosts", "--set", "tls=1.3",
                  "--set", "drop_syn_index=3", timeout=1800)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    doc = json.loads(res.stdout)
    (p,) = doc["points"]
    assert len(p["excluded"]) == 1 and p["excluded"][0].startswith("resent: h1 resent SYN")
    assert p["n"] >= 5 and doc["verdict"] == "match"
    run = read_run(Path(doc["run_dir"]))
    flagged = [r for r in run.rows if r["excluded"]]
    assert len(flagged) == 1
    # The resent SYN cost a second in the network, which no judged row carries.
    assert flagged[0]["connect_ms"] >= 1000.0
    assert all(r["connect_ms"] < 60.0 for r in run.rows if not r["excluded"])
    assert "Excluded from the statistics" in (run.dir / "summary.md").read_text()


def test_rmem_max_is_changed_only_inside_the_guest_and_moves_an_explicit_buffers_window(
        tmp_path, no_leftovers):
    """The kernel-wide net.core.rmem_max, set in the UML guest (never the host): 256 KiB
    of SO_RCVBUF then gets its whole window (262144 - 1448 reserved = 260696 B) and the
    link's rate at r = 100 ms instead of 211544 B and 16.9 Mbit/s."""
    before = Path("/proc/sys/net/core/rmem_max").read_text()
    res = wirelab("--results-dir", str(tmp_path), "run", "flow_control", "--kernel", "uml",
                  "--quick", "--set", "case=256k", "--set", "rmem_max_bytes=16777216", "--repeats", "1",
                  "--json", timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (p,) = json.loads(res.stdout)["points"]
    assert p["measured"]["window_kb"] == pytest.approx(260.696, rel=1e-3)
    assert abs(p["measured"]["goodput_mbps"] - 20 * 1448 / 1514) <= 0.1 * 20 * 1448 / 1514
    run = read_run(Path(json.loads(res.stdout)["run_dir"]))
    assert run.manifest["points"][0]["effective_sysctls"]["kernel"] == {"net.core.rmem_max": "16777216"}
    assert Path("/proc/sys/net/core/rmem_max").read_text() == before
