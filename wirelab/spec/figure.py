"""What an experiment declares about its figure (drawn by wirelab.report.figures, whose
docstring states the rules every figure follows)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bars:
    """Grouped bars.  Either MATRIX: [(group label, [metric per hue])] with HUES the hue
    labels, one grid point; or METRICS [(label, metric)] with X either "metric" (a group per
    metric, a bar per grid point) or a parameter (a group per value; a bar per metric when
    there are several, else per remaining parameter)."""
    question: str
    metrics: tuple = ()
    x: str = "metric"
    matrix: tuple = ()
    hues: tuple = ()
    unit: str = "ms"
    ylabel: str = "time"
    labels: dict = field(default_factory=dict)      # parameter value -> what a student reads
    notes: tuple = ()                               # (metric, format): a measured value shown
    timeline: str | None = None                     # raw file with a packet ladder (JSON)
    trace: str | None = None                        # raw cwnd.csv files: a cwnd(t) panel


@dataclass(frozen=True)
class Rounds:
    """Transfer time in round trips against size: the formula's step function per
    HUE (parameter values), measured medians with whiskers; a cwnd(t) panel from raw
    files CWND_FILE (TCP_INFO samples) where a point has one."""
    question: str
    size: str = "size_bytes"
    metric: str = "transfer_ms"
    hue: tuple = ()
    cwnd_file: str = "cwnd.csv"
    labels: dict = field(default_factory=dict)      # parameter value -> what a student reads


@dataclass(frozen=True)
class Waterfall:
    """A browser network panel: per configuration, its phases as stacked horizontal bars
    in ms (network time), the model's boundaries marked, curl's figures beside."""
    question: str
    phases: tuple = ()          # (label, cumulative metric)
    tool_prefix: str = "curl_"
    rows: tuple = ()            # parameters naming a configuration


@dataclass(frozen=True)
class Sweep:
    """Metrics against a numeric parameter: measured medians with whiskers, predictions
    dashed; a second panel with the excess over the prediction and its pass band."""
    question: str


@dataclass(frozen=True)
class Schedule:
    """Events in time, one row per grid point: what was sent again and when the
    connection gave up, as each trial recorded them in raw/pointNNN/FILE (JSON lines:
    {"events": [s...], "end": s, "predicted": [s...], "predicted_end": s}), against the
    kernel's schedule.  Time on a log axis when it spans decades."""
    question: str
    file: str = "schedule.jsonl"
    event: str = "SYN sent"
    end: str = "connect() fails (ETIMEDOUT)"
    labels: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Timeline:
    """Symptoms in time with the faults marked: one panel per (column, axis label) of
    PANELS (a tuple of columns: the second and later dashed), stacked on one time axis, a
    line per grid point (LABELS name them), read from raw/pointNNN/FILE
    (wirelab.measure.series); each fault's planned span shaded and named from FAULTS;
    LIMITS: (column, value, text) horizontal lines a symptom is judged by."""
    question: str
    panels: tuple = ()
    file: str = "timeline.csv"
    faults: str = "faults.jsonl"
    labels: dict = field(default_factory=dict)
    limits: tuple = ()
