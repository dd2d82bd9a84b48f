"""Unit tests: no root, no namespaces, nothing written outside tmp_path."""
from __future__ import annotations

import signal

import pytest

from support import write_run
from wirelab import settings


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Results, ledgers and the cache go under tmp_path, never into the repo or
    /run/wirelab; cli.main's SIGTERM handler does not outlive a test."""
    monkeypatch.setenv("WIRELAB_RESULTS", str(tmp_path / "results-root"))
    monkeypatch.setenv("WIRELAB_STATE_DIR", str(tmp_path / "state-root"))
    monkeypatch.setenv("WIRELAB_CACHE_DIR", str(tmp_path / "cache"))
    settings.reset()
    old = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, old)
    settings.reset()


@pytest.fixture
def make_run(tmp_path):
    """make_run({rtt_ms: (connect_ms, accept_ms)}, status=...) -> run dir."""
    def make(points, status="completed", repeats=5):
        return write_run(tmp_path / "runs", points, status, repeats)
    return make
