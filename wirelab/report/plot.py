"""A run's figure, drawn only from what the run wrote: the experiment's declared picture
(wirelab.report.figures), or an experiment's own ``plot(run, exp, out)``."""
from __future__ import annotations

from pathlib import Path

from wirelab.report import figures
from wirelab.report.results import Run
from wirelab.spec.experiment import Experiment


def plot_run(run: Run, exp: Experiment, out: Path | None = None, fmt: str = "png") -> Path:
    """Write the figure of RUN as OUT (default: plot.<fmt> in the run directory)."""
    if fmt not in figures.FORMATS:
        from wirelab.errors import BadInput
        raise BadInput(f"--format {fmt}: one of {', '.join(figures.FORMATS)}")
    out = out or Path(run.dir) / f"plot.{fmt}"
    custom = getattr(exp.module, "plot", None)
    if custom is not None:
        return custom(run, exp, out)
    sysctl_plots(run, exp, fmt)
    return figures.save(figures.render(run, exp), out)


def sysctl_plots(run: Run, exp: Experiment, fmt: str = "png") -> list[Path]:
    """plot-<sysctl>.<fmt> in the run directory for each sysctl the run swept."""
    from wirelab.report import analysis
    pts = analysis.of_run(exp, run)
    return [figures.save(figures.render_sysctl(run, exp, p),
                         Path(run.dir) / f"plot-{p.sysctl.rsplit('.', 1)[-1]}.{fmt}")
            for p in figures.varied_sysctls(exp, pts)]
