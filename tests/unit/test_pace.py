"""wirelab.kernel.pace: the share of a CPU the host gave the UML guest, and what a trial
the host disturbed becomes (excluded, not counted, a wait for the CPU)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from wirelab.errors import LabError
from wirelab.kernel import pace
from wirelab.run.runner import host_disturbed
from wirelab.spec.context import EXCLUDED


def s(wall: float, waited_ms: float, steal_ms: float = 0.0) -> pace.Sample:
    return pace.Sample(wall, waited_ms, steal_ms)


def test_no_wait_is_a_whole_cpu_and_a_second_waited_in_two_is_half():
    assert pace.share(s(100.0, 5000.0), s(101.0, 5000.0)) == 1.0
    assert pace.share(s(100.0, 5000.0), s(102.0, 6000.0)) == pytest.approx(0.5)
    # several tasks waiting at once can add up to more than the window: nothing left
    assert pace.share(s(100.0, 0.0), s(101.0, 1300.0)) == 0.0


def test_steal_and_run_queue_waits_add_up():
    assert pace.share(s(0.0, 0.0, 50.0), s(1.0, 100.0, 250.0)) == pytest.approx(0.7)


def test_a_window_too_short_or_a_missing_record_is_not_judged():
    assert pace.share(s(0.0, 0.0), s(0.2, 0.0)) is None
    assert pace.share(None, s(5.0, 0.0)) is None
    assert pace.disturbed(s(0.0, 0.0), None) is None


def test_disturbed_names_the_share_and_the_rule():
    assert pace.disturbed(s(0.0, 0.0), s(1.0, 50.0)) is None
    why = pace.disturbed(s(0.0, 0.0), s(2.0, 980.0))
    assert why == "the host gave the emulator 51% of a CPU during the trial (a trial counts with >= 90%)"


def test_a_record_reads_back_and_a_torn_one_is_none():
    rec = pace.record(s(1795760166.123, 4321.5, 12.0))
    assert len(rec) == 64 and rec.endswith(b"\n")
    assert pace.parse(rec) == s(1795760166.123, 4321.5, 12.0)
    assert pace.parse(b"1795760166.1 43") is None
    assert pace.parse(b"") is None


def test_read_is_none_outside_a_polling_guest(monkeypatch, tmp_path):
    monkeypatch.delenv("WIRELAB_GUEST", raising=False)
    assert pace.read() is None
    monkeypatch.setenv("WIRELAB_GUEST", '{"idle": "sleep", "outputs": "x", "stderr_tty": false}')
    assert pace.read() is None          # a sleeping guest gives its CPU back on purpose
    f = tmp_path / "pace"
    f.write_bytes(pace.record(s(10.0, 20.0, 0.0)))
    assert pace.read(str(f)) == s(10.0, 20.0, 0.0)
    assert pace.read(str(tmp_path / "none")) is None


def _burner(cpu: int) -> subprocess.Popen:
    """A child on CPU CPU that burns 0.4 s of CPU time, then sleeps (stays alive)."""
    return subprocess.Popen([sys.executable, "-c",
                             "import time\nt = time.process_time()\n"
                             "while time.process_time() - t < 0.4: pass\n"
                             "time.sleep(30)"], preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))


def test_the_meter_counts_the_run_queue_waits_of_our_whole_tree(tmp_path):
    """Two children on one CPU, each burning 0.4 s: each waits about as long as it runs."""
    path = str(tmp_path / "pace")
    cpu = min(os.sched_getaffinity(0))
    meter = pace.Meter(os.getpid(), path)
    meter.tick()
    first = pace.read(path)
    kids = [_burner(cpu), _burner(cpu)]
    try:
        time.sleep(1.2)
        meter.tick()
        after = pace.read(path)
    finally:
        for k in kids:
            k.kill()
            k.wait()
        meter.close()
    assert first and after and after.wall > first.wall
    assert after.waited_ms - first.waited_ms >= 500.0       # ~800: 0.4 s each, minus slop


def test_quiet_waits_until_a_whole_second_had_the_cpu():
    # each wait reads twice: 40 % of a CPU, 60 %, then 100 %
    samples = iter([s(0, 0), s(1, 600), s(1, 600), s(2, 1000), s(2, 1000), s(3, 1000)])
    said: list[str] = []
    q = pace.Quiet(say=said.append, reader=lambda: next(samples), sleep=lambda _: None)
    q.wait()
    assert q.waited_s == 2.0
    assert said[0] == "waiting for the host: the emulator had 40% of a CPU over the last second (1 s waited)"


def test_quiet_gives_up_with_a_lab_error_once_the_run_waited_its_limit():
    t = iter(range(10**6))

    def starved() -> pace.Sample:
        k = next(t)
        return s(float(k), k * 900.0)      # a second later each read, 10 % of a CPU, for ever

    q = pace.Quiet(say=lambda _: None, limit_s=3.0, reader=starved, sleep=lambda _: None)
    with pytest.raises(LabError, match="under 90% of a CPU for 3 s"):
        q.wait()


class _Quiet:
    waits = 0

    def wait(self) -> None:
        self.waits += 1


def test_a_disturbed_trial_is_excluded_with_the_reason_and_the_run_waits():
    batch = [{"t_ms": 540.0}, {"t_ms": 402.0, EXCLUDED: "resent: 1 segment"}]
    q = _Quiet()
    assert host_disturbed(batch, s(0.0, 0.0), s(1.0, 490.0), q) == 2
    assert all(r[EXCLUDED].startswith("the host gave the emulator 51% of a CPU") for r in batch)
    assert q.waits == 1


def test_an_undisturbed_trial_is_left_as_it_was():
    batch = [{"t_ms": 402.0}, {"t_ms": 403.0, EXCLUDED: "resent: 1 segment"}]
    q = _Quiet()
    assert host_disturbed(batch, s(0.0, 0.0), s(1.0, 10.0), q) == 0
    assert host_disturbed(batch, None, None, q) == 0       # on the host kernel: no meter
    assert batch == [{"t_ms": 402.0}, {"t_ms": 403.0, EXCLUDED: "resent: 1 segment"}] and q.waits == 0


def test_a_disturbed_trials_raw_output_is_set_aside_and_the_points_files_cut_back(tmp_path):
    from wirelab.spec.context import RawWriter
    raw = RawWriter(tmp_path, 0)
    raw.write_text("schedule.jsonl", '{"repeat": 0}\n')        # a judged trial
    raw.write_text("last.txt", "trial 0\n")                    # rewritten by each trial
    mark = raw.mark()
    raw.write_text("schedule.jsonl", '{"repeat": 1}\n')        # the disturbed one
    raw.write_text("t01-h1.txt", "packets\n")
    raw.path("last.txt").write_text("trial 1\n")
    aside = raw.set_aside(mark, "t01")
    assert aside == tmp_path / "raw/point000/host-disturbed/t01"
    assert (raw.dir / "schedule.jsonl").read_text() == '{"repeat": 0}\n'
    assert not (raw.dir / "t01-h1.txt").exists()
    assert (aside / "schedule.jsonl").read_text() == '{"repeat": 1}\n'
    assert (aside / "t01-h1.txt").read_text() == "packets\n"
    assert (aside / "last.txt").read_text() == "trial 1\n" and not (raw.dir / "last.txt").exists()
    del mark["last.txt"]
    assert raw.mark() == mark                  # what is set aside is never counted again
