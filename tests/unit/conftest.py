"""Unit tests: no root, no namespaces, nothing written outside tmp_path."""
from __future__ import annotations

import signal

import pytest

from wirelab import ledger, results

EXPERIMENT = "tcp_handshake_one_rtt"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Results and ledgers go under tmp_path, never into the repo or
    /run/wirelab; cli.main's SIGTERM handler does not outlive a test."""
    res = tmp_path / "results-root"
    state = tmp_path / "state-root"
    monkeypatch.setenv("WIRELAB_RESULTS", str(res))
    monkeypatch.setenv("WIRELAB_STATE_DIR", str(state))
    # Both roots are read at import time, so patch the module globals too.
    monkeypatch.setattr(results, "RESULTS_ROOT", res)
    monkeypatch.setattr(ledger, "STATE_DIR", state)
    old = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, old)


def trial_rows(points: dict[float, tuple[float, float]], repeats: int = 5) -> list[dict]:
    """Synthetic trial rows (for I/O tests only): {rtt_ms: (connect_ms,
    accept_ms)} -> rows with small spread around the given values and the
    experiment's own predictions."""
    rows = []
    for idx, (rtt, (connect, accept)) in enumerate(sorted(points.items())):
        for rep in range(repeats):
            jiggle = 0.01 * rep
            rows.append({"point": idx, "repeat": rep, "rtt_ms": rtt,
                         "connect_ms": connect + jiggle, "accept_ms": accept + jiggle,
                         "predicted_connect_ms": rtt, "predicted_accept_ms": 1.5 * rtt})
    return rows


def write_run(root, points, status="completed", repeats=5):
    """A complete synthetic run directory under ROOT; returns its path."""
    from wirelab.experiment import load
    exp = load(EXPERIMENT)
    run_dir = results.new_run_dir(EXPERIMENT, root=root)
    results.write_manifest(run_dir, {
        "experiment": EXPERIMENT, "params": {"rtt_ms": sorted(points)}, "repeats": repeats,
        "seed": 1, "kernel": {"release": "6.1.0-test"}, "backend": "host",
        "started": "2024-01-01T00:00:00+00:00", "ended": "2024-01-01T00:01:00+00:00",
        "status": status})
    cols = results.trial_columns(list(exp.params), list(exp.METRICS))
    results.write_trials(run_dir, cols, trial_rows(points, repeats))
    return run_dir


@pytest.fixture
def make_run(tmp_path):
    """make_run({rtt_ms: (connect_ms, accept_ms)}, status=...) -> run dir."""
    def make(points, status="completed", repeats=5):
        return write_run(tmp_path / "runs", points, status, repeats)
    return make
