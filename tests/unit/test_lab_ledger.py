"""The undo stack and the crash ledger, in a temporary state directory."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess

import pytest

from wirelab.lab import ledger
from wirelab.lab.ledger import Ledger, UndoStack, proc_starttime


def _items(led: Ledger) -> list[dict]:
    return json.loads(led.path.read_text())["items"]


# --- UndoStack --------------------------------------------------------------------

def test_unwind_reverse_order_keeps_going_and_runs_each_once():
    calls = []
    stack = UndoStack()

    def boom():
        calls.append("b")
        raise RuntimeError("qdisc busy")
    stack.push("a", lambda: calls.append("a"))
    stack.push("b", boom)
    stack.push("c", lambda: calls.append("c"))
    assert len(stack) == 3
    failures = stack.unwind()
    assert calls == ["c", "b", "a"]
    assert failures == ["b: qdisc busy"]
    assert len(stack) == 0
    assert stack.unwind() == []
    assert calls == ["c", "b", "a"]           # nothing runs twice


def test_unwind_blocks_sigint_and_restores_the_mask():
    seen = []
    stack = UndoStack()
    stack.push("look", lambda: seen.append(signal.pthread_sigmask(signal.SIG_BLOCK, set())))
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    stack.unwind()
    assert {signal.SIGINT, signal.SIGTERM} <= seen[0]
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before


def test_undo_items_live_in_the_ledger_until_undone(tmp_path):
    led = Ledger("wlt001", state_dir=tmp_path)
    try:
        assert led.path == tmp_path / "runs" / "wlt001.json"
        doc = json.loads(led.path.read_text())
        assert doc["tag"] == "wlt001" and doc["pid"] == os.getpid() and doc["items"] == []
        stack = UndoStack(led)
        done = []
        a, b = {"kind": "netns", "name": "wlt001-h1"}, {"kind": "process", "pid": 1}
        stack.push("netns", lambda: done.append("netns"), a)
        stack.push("no item", lambda: done.append("plain"))
        stack.push("proc", lambda: done.append("proc"), b)
        assert _items(led) == [a, b]
        assert stack.unwind() == []
        assert done == ["proc", "plain", "netns"]
        assert _items(led) == []
        led.add({"kind": "uml", "pid": 2})
        led.remove({"kind": "uml", "pid": 2})
        led.remove({"kind": "never added"})       # harmless
        assert _items(led) == []
    finally:
        led.close()
    assert not led.path.exists() and not (tmp_path / "runs" / "wlt001.lock").exists()


def test_a_tag_is_held_by_one_live_ledger(tmp_path):
    first = Ledger("wlt002", state_dir=tmp_path)
    try:
        with pytest.raises(FileExistsError, match="in use by a live run"):
            Ledger("wlt002", state_dir=tmp_path)
        other = Ledger("wlt003", state_dir=tmp_path)   # other tags are free
        other.close()
        assert first.path.exists()                     # the loser did not touch it
    finally:
        first.close()
    again = Ledger("wlt002", state_dir=tmp_path)       # free once closed
    again.close()


def test_a_leftover_ledger_blocks_its_tag(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "wlt004.json").write_text(json.dumps({"tag": "wlt004", "items": []}))
    with pytest.raises(FileExistsError, match="wirelab clean"):
        Ledger("wlt004", state_dir=tmp_path)
    assert ledger.clean(state_dir=tmp_path) == []
    Ledger("wlt004", state_dir=tmp_path).close()


# --- clean ----------------------------------------------------------------------

def _sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "30"])


def _dead_ledger(state_dir, tag, items) -> None:
    """What a SIGKILLed run leaves: its JSON and an unlocked lock file."""
    runs = state_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"{tag}.json").write_text(json.dumps({"tag": tag, "pid": 999999, "started": 0,
                                                  "items": items}))
    (runs / f"{tag}.lock").touch()


def test_clean_skips_live_runs_and_finishes_dead_ones(tmp_path):
    procs = [_sleeper() for _ in range(3)]
    live = None
    try:
        live_p, dead_p, stranger = procs
        st = {p.pid: proc_starttime(p.pid) for p in procs}
        assert all(isinstance(v, int) for v in st.values())

        live = Ledger("wlt010", state_dir=tmp_path)
        live.add({"kind": "process", "pid": live_p.pid, "starttime": st[live_p.pid]})
        _dead_ledger(tmp_path, "wlt011", [
            {"kind": "process", "pid": dead_p.pid, "starttime": st[dead_p.pid], "argv0": "sleep"},
            # Same pid number, different start time: a later process that
            # reused the PID.  It is not ours and must survive.
            {"kind": "process", "pid": stranger.pid, "starttime": st[stranger.pid] + 1,
             "argv0": "sleep"},
        ])
        runs = tmp_path / "runs"

        report = ledger.clean(state_dir=tmp_path)

        assert "wlt010: run is alive, left alone" in report
        assert live_p.poll() is None
        assert _items(live) == [{"kind": "process", "pid": live_p.pid,
                                 "starttime": st[live_p.pid]}]

        assert f"wlt011: process {dead_p.pid} (sleep): stopped" in report
        assert dead_p.poll() is not None                 # stopped (and reaped)
        assert proc_starttime(dead_p.pid) != st[dead_p.pid]

        assert stranger.poll() is None                   # not ours: left running
        assert any(re.fullmatch(rf"wlt011: process {stranger.pid} \(sleep\): .*", r)
                   for r in report)
        assert not (runs / "wlt011.json").exists() and not (runs / "wlt011.lock").exists()
        assert (runs / "wlt010.json").exists()
        # The dead run's items are undone in reverse order.
        order = [r for r in report if r.startswith("wlt011:")]
        assert order[0].startswith(f"wlt011: process {stranger.pid}")
    finally:
        if live is not None:
            live.close()
        for p in procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except ChildProcessError:
                pass
    assert ledger.clean(state_dir=tmp_path) == []        # nothing left to do


def test_clean_unreadable_and_unknown_items(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "wlt020.json").write_text("{not json")
    _dead_ledger(tmp_path, "wlt021", [{"kind": "mystery", "x": 1}])
    report = ledger.clean(state_dir=tmp_path)
    assert any(r.startswith("wlt020: unreadable ledger") for r in report)
    assert any(r.startswith("wlt021: unknown ledger item") and "left alone" in r for r in report)
    assert list(runs.iterdir()) == []


def test_clean_without_a_state_dir(tmp_path):
    assert ledger.clean(state_dir=tmp_path / "absent") == []


def test_proc_starttime():
    assert proc_starttime(os.getpid()) == proc_starttime(os.getpid()) > 0
    assert proc_starttime(2**22 + 12345) is None       # above pid_max's ceiling
