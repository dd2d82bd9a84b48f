"""The results directory of a run: written once, read by ``show``, ``plot`` and tests.

``<results>/<experiment>/<run-id>/``

* ``manifest.json``: schema version, experiment, parameters and grid, repeats, seed,
  kernel and backend, effective sysctls per namespace, tool versions, git revision,
  start and end times, status;
* ``trials.csv``: one row per trial: point index, repeat, parameters, measured and
  predicted values of the per-trial metrics (numbers, units in the column names);
* ``point_samples.csv`` (schema 2): per-point metrics, one row per sample: point,
  metric, sample index, value, predicted;
* ``raw/``: tool output as captured, one folder per grid point;
* ``plot.png`` and ``summary.md``, both derived from the files above.

Every schema version this wirelab ever wrote stays readable (:func:`read_run`).
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from wirelab.errors import BadInput

SCHEMA_VERSION = 2
#: Versions :func:`read_run` understands: 1 had no point_samples.csv.
READABLE_VERSIONS = (1, 2)
SAMPLE_COLUMNS = ("point", "metric", "sample", "value", "predicted")


def new_run_dir(experiment: str, root: Path) -> Path:
    """A fresh directory for one run under ROOT; never reuses an existing one."""
    base = Path(root) / experiment
    base.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    for _ in range(100):
        path = base / f"{stamp}-{secrets.token_hex(2)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        (path / "raw").mkdir()
        return path
    raise RuntimeError(f"could not create a new run directory under {base}")


def git_revision(checkout: Path | None) -> str | None:
    """The checkout's commit (with -dirty for uncommitted changes), if it is one."""
    if checkout is None:
        return None
    try:
        res = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    return res.stdout.strip() + ("-dirty" if dirty else "")


def write_manifest(run_dir: Path, manifest: dict) -> None:
    manifest = {"schema_version": SCHEMA_VERSION, **manifest}
    tmp = run_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, run_dir / "manifest.json")


def trial_columns(param_names: list[str], metrics: list[str]) -> list[str]:
    return ["point", "repeat", *param_names, *metrics, *[f"predicted_{m}" for m in metrics]]


def _write_csv(path: Path, columns, rows: list[dict]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        for row in rows:
            w.writerow({k: row.get(k) for k in columns})
    os.replace(tmp, path)


def write_trials(run_dir: Path, columns: list[str], rows: list[dict]) -> None:
    _write_csv(run_dir / "trials.csv", columns, rows)


def write_samples(run_dir: Path, samples: list[dict]) -> None:
    """Per-point samples: {point, metric, sample, value, predicted} each."""
    _write_csv(run_dir / "point_samples.csv", SAMPLE_COLUMNS, samples)


@dataclass
class Run:
    dir: Path
    manifest: dict
    rows: list[dict]
    samples: list[dict] = field(default_factory=list)

    @property
    def experiment(self) -> str:
        return self.manifest["experiment"]


def _number(text: str | None):
    """A CSV cell back to a number where it is one (a choice parameter such as
    cc=cubic stays a string)."""
    if text == "" or text is None:
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            continue
    return text


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(f)]


def read_run(run_dir: str | Path) -> Run:
    run_dir = Path(run_dir)
    mpath = run_dir / "manifest.json"
    if not mpath.is_file():
        raise BadInput(f"{run_dir} is not a wirelab run directory (no manifest.json)")
    try:
        manifest = json.loads(mpath.read_text())
    except ValueError as e:
        raise BadInput(f"{mpath} is not valid JSON: {e}") from None
    if manifest.get("kind") == "across kernels":
        subs = ", ".join(f"{k['dir']}/" for k in manifest.get("kernels", []) if k.get("dir"))
        raise BadInput(f"{run_dir} holds one run per kernel ({subs or 'none finished'}): "
                       f"show or plot one of those; its summary.md compares them")
    version = manifest.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise BadInput(f"{run_dir}: results schema version {version!r}; this wirelab reads "
                       f"versions {', '.join(map(str, READABLE_VERSIONS))}")
    rows = _read_csv(run_dir / "trials.csv") if (run_dir / "trials.csv").exists() else []
    for r in rows:
        for k in ("point", "repeat"):
            if not isinstance(r.get(k), int):
                raise BadInput(f"{run_dir / 'trials.csv'}: column {k!r} holds a value that "
                               "is not a whole number")
    spath = run_dir / "point_samples.csv"
    samples = _read_csv(spath) if version >= 2 and spath.exists() else []
    return Run(run_dir, manifest, rows, samples)
