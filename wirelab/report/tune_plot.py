"""The figure of one sysctl in ``wirelab tune``: a panel per workload, the kernel's default
against the course's value, the median as the bar and p10-p90 as the whisker, the effect
in the panel's title and the sysctl's verdict in the figure's (figures.py's rules)."""
from __future__ import annotations

import textwrap
from pathlib import Path

from wirelab.report.figures import DPI, PALETTE, RC, SIZE_IN, _plt


def plot_knob(out: Path, knob, rows: list[dict], verdict: str) -> Path:
    measured = [r for r in rows if r.get("effect")]
    plt = _plt()
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, len(measured), figsize=SIZE_IN, dpi=DPI, squeeze=False)
        fig.suptitle(f"Does {knob.sysctl} = {knob.course} help?\n{verdict}", x=0.01, ha="left")
        for ax, r in zip(axes[0], measured, strict=True):
            labels = [f"default\n{r['default']}", f"course\n{r['value']}"]
            for i, side in enumerate(("a", "b")):
                med, lo, hi = r[f"{side}_median"], r[f"{side}_p10"], r[f"{side}_p90"]
                ax.bar(i, med, color=PALETTE[i], width=0.6)
                ax.errorbar(i, med, yerr=[[max(0.0, med - lo)], [max(0.0, hi - med)]], fmt="none",
                            ecolor="black", capsize=8, lw=2)
                ax.annotate(f"{med:.4g}", (i, med), ha="center", va="bottom", fontsize=13,
                            xytext=(0, 4), textcoords="offset points")
            ax.set_xticks([0, 1], labels)
            ax.set_xlim(-0.6, 1.6)
            ax.set_ylabel(r["metric"].rsplit("_", 1)[0].replace("_", " "))
            ax.set_title("\n".join(textwrap.wrap(r["workload"], 42)) + f"\n{r['effect']}", fontsize=14)
            ax.grid(True, axis="y", alpha=0.3)
        fig.text(0.01, 0.01, "bars: median, whiskers: p10-p90 of the trials; each side is a run "
                 "under runs/", fontsize=12, color="#555555")
        fig.tight_layout(rect=(0, 0.04, 1, 0.9))
        fig.savefig(out, dpi=DPI)
        plt.close(fig)
    return out
