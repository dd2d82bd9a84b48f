"""``wirelab run X --kernel uml:6.1,uml:6.12``: the experiment's grid on each kernel in
turn, each in its own UML guest (as a single ``--kernel uml:X`` run), one after the other
under the host lock, written as one results directory (see wirelab.report.across).

Each guest runs the ordinary single-kernel command with ``--json`` and its results
directory pointed at a staging folder inside the combined one; its run directory is then
renamed ``kernel-<X.Y>/``.  A kernel that stops early (a model refusing the release is
exit 3, a lab fault exit 4, a guest that never started) is recorded with why, and the
next kernel still runs.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from wirelab import settings
from wirelab.errors import BadInput, WirelabError
from wirelab.report import across, results
from wirelab.spec.experiment import Experiment

_ONE = re.compile(r"uml:\d+\.\d+")


def kernel_list(value: str) -> list[str]:
    """``uml:6.1,uml:6.12`` -> ["6.1", "6.12"]; BadInput naming the value and what is
    allowed (UML kernels only, each once, at least two)."""
    items = [w.strip() for w in value.split(",")]
    for w in items:
        if not _ONE.fullmatch(w):
            raise BadInput(f"--kernel {value}: {w!r} cannot be in a list of kernels; a list "
                           "names UML kernels only, each as uml:X.Y (`wirelab kernels` lists "
                           "them), e.g. --kernel uml:6.1,uml:6.12")
    seen: set[str] = set()
    for w in items:
        if w in seen:
            raise BadInput(f"--kernel {value}: {w} is listed twice; name each UML kernel (uml:X.Y) once, "
                           "e.g. --kernel uml:6.1,uml:6.12")
        seen.add(w)
    if len(items) < 2:
        raise BadInput(f"--kernel {value}: a list needs two or more kernels")
    return [w[4:] for w in items]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _guest_words(argv: list[str]) -> list[str]:
    """The subcommand's words for each guest: with --json (its document is read back) and
    without --results-dir (each guest writes into its staging folder)."""
    out, skip = [], False
    for w in argv:
        if skip:
            skip = False
            continue
        if w == "--results-dir":
            skip = True
            continue
        if w.startswith("--results-dir="):
            continue
        out.append(w)
    return out if "--json" in out else [*out, "--json"]


def tell_host(e: BaseException) -> None:
    """Inside a guest: leave the error that ends the command where the host reads it."""
    guest = settings.guest()
    if guest is None:
        return
    code = e.exit_code if isinstance(e, WirelabError) else 4
    text = str(e) if isinstance(e, WirelabError) else f"{type(e).__name__}: {e}"
    try:
        with open(guest["outputs"], "a") as f:
            f.write(f"error {code} {' '.join(text.split())}\n")
    except OSError:
        pass


def _one(exp: Experiment, argv: list[str], name: str, root: Path, say) -> dict:
    """Run the experiment on uml:NAME; its run directory becomes ROOT/kernel-NAME."""
    from wirelab.kernel import backend, kernels
    k = kernels.select(name)
    staging = root / f".staging-{name}"
    before = settings.current()
    settings.override(uml_kernel=name, results_dir=staging)
    source = getattr(exp.module, "__file__", None)
    code, error, outputs, text = 4, "", [], ""
    try:
        with tempfile.TemporaryFile() as out:
            try:
                res = backend.run_in_uml(_guest_words(argv), stdout_fd=out.fileno(),
                                         read_paths=[os.path.dirname(source)] if source else [])
                code, outputs = res.returncode, res.outputs
            except WirelabError as e:           # the guest never ran the command
                code, error = e.exit_code, str(e)
            out.seek(0)
            text = out.read().decode(errors="replace")
    finally:
        settings.override(uml_kernel=before.uml_kernel, results_dir=before.results_dir)
    for line in outputs:
        verb, _, rest = line.partition(" ")
        if verb == "error" and not error:
            error = rest.partition(" ")[2]
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError:
        doc = {}
    found = [Path(doc["run_dir"])] if doc.get("run_dir") else sorted(
        p.parent for p in staging.glob(f"{exp.id}/*/manifest.json"))
    dest = root / f"kernel-{name}"
    if found and found[-1].is_dir():
        os.replace(found[-1], dest)
    shutil.rmtree(staging, ignore_errors=True)
    entry = {"kernel": f"uml:{name}", "release": k.release, "origin": k.origin.strip(),
             "dir": dest.name if dest.is_dir() else None, "exit_code": code, "error": error}
    if dest.is_dir():
        run = results.read_run(dest)
        if run.rows:
            try:
                from wirelab.report.plot import plot_run
                plot_run(run, exp)
            except Exception as e:  # noqa: BLE001 - a figure never decides a verdict
                say(f"wirelab: uml:{name}: could not draw its figure: {type(e).__name__}: {e}")
    return entry


def run(exp: Experiment, argv: list[str], names: list[str], *, quick: bool,
        say=lambda m: print(m, file=sys.stderr)) -> tuple[Path, list[across.Part]]:
    """Run the grid on each kernel of NAMES in turn; return the combined directory and
    its parts.  KeyboardInterrupt stops at once (what ran is kept and summarised)."""
    from wirelab.kernel import backend
    from wirelab.kernel.uml import project_dir
    root = results.new_run_dir(exp.id, settings.current().results_dir)
    (root / "raw").rmdir()
    manifest: dict = {
        "kind": across.KIND, "experiment": exp.id, "claim": exp.CLAIM,
        "source": str(getattr(exp.module, "__file__", "")), "quick": quick,
        "requested": [f"uml:{n}" for n in names], "kernels": [], "argv": sys.argv,
        "git_revision": results.git_revision(project_dir()),
        "started": _now(), "ended": None, "status": "running"}
    results.write_manifest(root, manifest)
    parts: list[across.Part] = []
    try:
        with backend.HostLock():
            for i, name in enumerate(names):
                say(f"wirelab: [{i + 1}/{len(names)}] running {exp.id} on uml:{name} in "
                    "User-Mode Linux")
                entry = _one(exp, argv, name, root, say)
                manifest["kernels"].append(entry)
                results.write_manifest(root, manifest)
                parts.append(across.part(exp, entry["kernel"], entry["exit_code"],
                                         root / entry["dir"] if entry["dir"] else None,
                                         entry["error"]))
        manifest["status"] = "completed"
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        raise
    except BaseException as e:
        manifest["status"] = f"failed: {type(e).__name__}: {e}"
        raise
    finally:
        manifest["ended"] = _now()
        results.write_manifest(root, manifest)
        for leftover in root.glob(".staging-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if parts:
            across.write(root, exp, manifest, parts)
    return root, parts
