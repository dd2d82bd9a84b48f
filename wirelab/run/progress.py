"""Progress of a run on stderr: one status line redrawn in place on a terminal, one
line per finished grid point otherwise (CI logs)."""
from __future__ import annotations

import sys
import time

from wirelab import settings
from wirelab.report.analysis import fmt


class Progress:
    def __init__(self, total_points: int, repeats: int, stream=None):
        self.total, self.repeats = total_points, repeats
        self.stream = stream or sys.stderr
        # Inside UML our stderr is a guest tty whatever the caller's is; the host
        # side tells us what the caller's really is.
        guest = settings.guest()
        self.tty = bool(guest["stderr_tty"]) if guest else self.stream.isatty()
        self.t0 = time.monotonic()

    def update(self, point: int, params: dict, done: int, last: dict | None) -> None:
        label = " ".join(f"{k}={fmt(v)}" for k, v in params.items())
        last_txt = " ".join(f"{k}={v:.2f}" for k, v in (last or {}).items()
                            if isinstance(v, (int, float)))
        line = (f"[{point + 1}/{self.total}] {label}  trial {min(done, self.repeats)}/"
                f"{self.repeats}  {last_txt}  ({time.monotonic() - self.t0:.0f} s)")
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self.stream.flush()
        elif done >= self.repeats:
            self.stream.write(line + "\n")
            self.stream.flush()

    def point_done(self, entry: dict) -> None:
        if self.tty:
            self.stream.write("\n")
        ok = "LAB FAULT" if entry.get("lab_faults") else "ok" if entry["ok"] else "DEVIATES"
        meas = ", ".join(f"{m} {v:.3f} " + (f"(predicted {entry['predicted'][m]:.3f})"
                                             if m in entry["predicted"] else "(no prediction)")
                         + (" reported" if m in entry["reported"] else "")
                         for m, v in entry["measured"].items())
        self.stream.write(f"      {ok}: {meas}\n")
        if entry["failures"] or entry.get("lab_faults"):
            self.stream.write(f"      why: {'; '.join(entry.get('lab_faults', []) + entry['failures'])}\n")
        self.stream.flush()

    def say(self, message: str) -> None:
        """A line of its own (a wait the user should know about), whatever the stream."""
        self.stream.write(("\n" if self.tty else "") + f"      {message}\n")
        self.stream.flush()
