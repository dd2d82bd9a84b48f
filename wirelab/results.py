"""The results directory of a run: written once, read by ``show`` and ``plot``.

``results/<experiment>/<run-id>/``

* ``manifest.json``: schema version, experiment, parameters and grid,
  repeats, seed, kernel and backend, effective sysctls per namespace, tool
  versions, git revision, start and end times, status;
* ``trials.csv``: one row per trial: point index, repeat, parameters,
  measured and predicted values (numbers, units in the column names);
* ``raw/``: tool output as captured, one folder per grid point;
* ``plot.png`` and ``summary.md``, both derived from the two files above.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wirelab.errors import BadInput

SCHEMA_VERSION = 1
RESULTS_ROOT = Path(os.environ.get("WIRELAB_RESULTS", Path(__file__).resolve().parents[1] / "results"))


def new_run_dir(experiment: str, root: Path | None = None) -> Path:
    """A fresh directory for one run; never reuses an existing one."""
    base = (root or RESULTS_ROOT) / experiment
    base.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for _ in range(100):
        path = base / f"{stamp}-{secrets.token_hex(2)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        (path / "raw").mkdir()
        return path
    raise RuntimeError(f"could not create a new run directory under {base}")


class RawWriter:
    """Writes captured tool output under raw/<point>/."""

    def __init__(self, run_dir: Path, point: int):
        self.dir = run_dir / "raw" / f"point{point:03d}"

    def write_text(self, name: str, text: str) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / name
        with open(path, "a") as f:
            f.write(text)
        return path


def git_revision() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        res = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
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
    return (["point", "repeat", *param_names, *metrics, *[f"predicted_{m}" for m in metrics]])


def write_trials(run_dir: Path, columns: list[str], rows: list[dict]) -> None:
    tmp = run_dir / "trials.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for row in rows:
            w.writerow({k: row.get(k) for k in columns})
    os.replace(tmp, run_dir / "trials.csv")


@dataclass
class Run:
    dir: Path
    manifest: dict
    rows: list[dict]

    @property
    def experiment(self) -> str:
        return self.manifest["experiment"]


def _number(text: str):
    """A CSV cell back to a number where it is one (a choice parameter such
    as cc=cubic stays a string)."""
    if text == "" or text is None:
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            continue
    return text


def read_run(run_dir: str | Path) -> Run:
    run_dir = Path(run_dir)
    mpath = run_dir / "manifest.json"
    if not mpath.is_file():
        raise BadInput(f"{run_dir} is not a wirelab run directory (no manifest.json)")
    manifest = json.loads(mpath.read_text())
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BadInput(f"{run_dir}: results schema version {version!r}; this wirelab reads "
                       f"version {SCHEMA_VERSION}")
    rows = []
    tpath = run_dir / "trials.csv"
    if tpath.exists():
        with open(tpath, newline="") as f:
            rows = [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(f)]
        bad = [k for r in rows for k, v in r.items() if k in ("point", "repeat")
               and not isinstance(v, int)]
        if bad:
            raise BadInput(f"{tpath}: column {bad[0]!r} holds a value that is not a whole number")
    return Run(run_dir, manifest, rows)
