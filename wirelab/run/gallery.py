"""The figure gallery: every experiment's figure drawn from stored runs, on one page, so
anyone can review them at once (``make gallery``: docs/figures.md from tests/data/runs)."""
from __future__ import annotations

import os
from pathlib import Path

from wirelab.report import analysis, figures
from wirelab.report.results import read_run
from wirelab.run import catalog


def write(runs_root: Path, out_dir: Path, page: Path) -> list[Path]:
    """Draw the newest stored run of each experiment under RUNS_ROOT into OUT_DIR and
    write PAGE (Markdown) showing them; return the images."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# Figures", "",
             "Every experiment's figure, drawn from a quick run made on the development machine "
             f"(stored under `{runs_root}`; regenerate with `make gallery`). The rules they "
             "follow are in `docs/CONTRIBUTING.md`.", ""]
    images = []
    for exp_dir in sorted(p for p in runs_root.iterdir() if p.is_dir()):
        run_dir = sorted(p for p in exp_dir.iterdir() if p.is_dir())[-1]
        run = read_run(run_dir)
        exp = catalog.load(run.manifest["experiment"])
        image = figures.save(figures.render(run, exp), out_dir / f"{exp.id}.png")
        images.append(image)
        pts = analysis.of_run(exp, run)
        extra = [figures.save(figures.render_sysctl(run, exp, p),
                              out_dir / f"{exp.id}-{p.sysctl.rsplit('.', 1)[-1]}.png")
                 for p in figures.varied_sysctls(exp, pts)]
        images += extra
        spec = getattr(exp.module, "FIGURE", None)
        question = spec.question if spec is not None else exp.CLAIM
        verdict = analysis.verdict(pts, run.manifest.get("status") == "completed")
        kern = run.manifest.get("kernel", {})
        lines += [f"## {exp.id}", "", f"*{question}*  verdict: **{verdict}** "
                  f"({sum(p['ok'] for p in pts)} of {len(pts)} points), kernel "
                  f"{kern.get('release', '?')}, run `{run_dir.name}`", "",
                  f"![{exp.id}]({os.path.relpath(image, page.parent)})", ""]
        lines += [f"![{exp.id}: {x.stem}]({os.path.relpath(x, page.parent)})\n" for x in extra]
    page.write_text("\n".join(lines))
    return images
