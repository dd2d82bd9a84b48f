"""What ``wirelab list`` prints about an experiment: its claim, needs, parameters,
metrics and, in full, what Linux really does (the sidecar)."""
from __future__ import annotations

import textwrap

from wirelab.spec.experiment import Experiment
from wirelab.spec.params import Param


def _first_paragraph(text: str) -> str:
    return text.strip().split("\n\n", 1)[0].replace("\n", " ") if text else ""


def as_json(exp: Experiment) -> dict:
    return {
        "id": exp.id, "aliases": list(exp.aliases), "claim": exp.CLAIM, "section": exp.SECTION,
        "text_says": exp.TEXT_SAYS, "linux_fact": exp.linux_fact, "needs": sorted(exp.NEEDS),
        "caps": {"memory_mb": exp.caps.memory_mb, "tasks": exp.caps.tasks},
        "topology": exp.TOPOLOGY.__name__, "source": getattr(exp.module, "__file__", None),
        "parameters": [{"name": p.name, "default": p.default, "grid": list(p.grid),
                        "quick": list(p.quick or p.grid), "choices": list(p.choices),
                        "min": p.min, "max": p.max, "help": p.help, "sysctl": p.sysctl or None}
                       for p in exp.PARAMS],
        "metrics": [{"name": m.name, "help": m.help, "judged": m.judged,
                     "per_point": m.per_point,
                     "band": m.tolerance.describe(m.unit_label) if m.judged else None}
                    for m in exp.metrics],
        "repeats": exp.REPEATS, "quick_repeats": getattr(exp.module, "QUICK_REPEATS", exp.REPEATS),
    }


def as_text(exp: Experiment, full: bool = False) -> str:
    aliases = f" (alias: {', '.join(exp.aliases)})" if exp.aliases else ""
    lines = [f"{exp.id}{aliases}", f"    claim: {exp.CLAIM}",
             f"    needs: {', '.join(sorted(exp.NEEDS)) or 'namespaces only'}, "
             f"{exp.caps.describe()}; topology {exp.TOPOLOGY.__name__}; parameters: "
             + ", ".join(f"{p.name} {list(p.grid) or p.default}" for p in exp.PARAMS)]
    fact = exp.linux_fact
    if not full:
        if fact:
            lines += textwrap.wrap("Linux: " + _first_paragraph(fact), 88,
                                   initial_indent="    ", subsequent_indent="      ")
        return "\n".join(lines)
    lines += [f"    course ({exp.SECTION}): \"{exp.TEXT_SAYS}\"", "    metrics:"]
    for m in exp.metrics:
        band = m.tolerance.describe(m.unit_label) if m.judged else "reported, not judged"
        lines.append(f"      {m.name}{' (per point)' if m.per_point else ''}: {m.help} [{band}]")
    lines.append("    parameters:")
    for p in exp.PARAMS:
        lines.append(f"      {p.name} = {p.default} ({p.range_text()}); grid {list(p.grid)}, "
                     f"quick {list(p.quick or p.grid)}")
    if fact:
        lines += ["", "    What Linux does:"]
        for para in fact.split("\n\n"):
            lines += textwrap.wrap(para.replace("\n", " "), 88, initial_indent="      ",
                                   subsequent_indent="      ") + [""]
    return "\n".join(lines)


def sysctl_matches(name: str, sysctl: str) -> bool:
    """NAME as a user types it (``tcp_retries2``, ``net.ipv4.tcp_retries2`` or
    ``net/ipv4/tcp_retries2``) names SYSCTL."""
    name = name.strip().replace("/", ".")
    return bool(name) and (sysctl == name or sysctl.endswith("." + name))


def swept_sysctls(exps: list[Experiment]) -> dict[str, list[tuple[Experiment, Param]]]:
    """{sysctl: [(experiment, parameter)]} for every parameter that sets a sysctl."""
    out: dict[str, list[tuple[Experiment, Param]]] = {}
    for exp in exps:
        for p in exp.PARAMS:
            if p.sysctl:
                out.setdefault(p.sysctl, []).append((exp, p))
    return dict(sorted(out.items()))


def sysctl_text(sysctl: str, uses: list[tuple[Experiment, Param]]) -> str:
    """What ``wirelab list --sysctl NAME`` prints: each experiment that sweeps SYSCTL,
    its grid, and the command that plots the effect."""
    lines = [f"{sysctl}: its effect is measured by"]
    for exp, p in uses:
        values = ",".join(str(v) for v in (p.grid or (p.default,)))
        lines += [f"  {exp.id} (parameter {p.name}; default {p.default}, grid {list(p.grid)})",
                  f"      {exp.CLAIM}"]
        if p.advice:
            lines.append(f"      tuning guides: {p.advice}")
        lines.append(f"      wirelab run {exp.id} --set {p.name}={values}")
    return "\n".join(lines)
