"""The claims catalog as Markdown (``docs/claims.md``): every claim of the course by id,
what the text says, the prediction and the Linux fact; for the measured ones, taken
from the experiment's own declaration, and the planned ones listed as planned."""
from __future__ import annotations

from wirelab.spec.experiment import Experiment

HEADER = """\
# The course's claims

Every claim of the course text, by id, with what the text says, what first principles
predict, and where Linux differs. **measured**: an experiment in `experiments/` runs it
(`wirelab run NAME`); its line here comes from the experiment's own declaration.
**planned**: no experiment yet. ★ marks the claims most worth a class's time; *risky*
ones generate floods or spoofed traffic and run only inside the lab, capped.

This file is generated: `make docs` (or `wirelab list --markdown > docs/claims.md`).

"""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def claims_markdown(claims: list[dict], experiments: list[Experiment]) -> str:
    by_name = {e.id: e for e in experiments}
    known = {c["name"] for c in claims}
    out = [HEADER, "| id | claim | status |", "|---|---|---|"]
    for c in claims:
        exp = by_name.get(c["name"])
        status = f"measured: `{exp.id}`" if exp else "planned"
        mark = " ★" if c.get("teaching") else ""
        out.append(f"| [{c['id']:02d}](#{c['id']:02d}) | {c['name']}{mark} | {status} |")
    out.append("")
    for c in claims:
        exp = by_name.get(c["name"])
        tags = [t for t, on in (("★", c.get("teaching")), ("*risky*", c.get("risky"))) if on]
        out += [f"## [{c['id']:02d}] {c['name']} {' '.join(tags)}".rstrip(), "",
                f"<a id=\"{c['id']:02d}\"></a>",
                f"- **Status:** {'measured by `' + exp.id + '`' if exp else 'planned'}",
                f"- **Course ({c['section']}):** \"{_one_line(c['text_says'])}\""]
        if exp:
            out.append(f"- **Claim, as measured:** {_one_line(exp.CLAIM)}")
            params = ", ".join(f"{p.name} {list(p.grid) or [p.default]}" for p in exp.PARAMS)
            out.append(f"- **Swept:** {params}")
            out.append(f"- **Lab:** {', '.join(sorted(exp.NEEDS)) or 'namespaces only'}; its cgroup "
                       f"caps it at {exp.caps.describe()}")
            judged = [m for m in exp.metrics if m.judged]
            out.append("- **Judged:** " + "; ".join(
                f"{m.name} ({m.tolerance.describe(m.unit_label)})" for m in judged))
        out.append(f"- **Prediction:** {_one_line(c['prediction'])}")
        fact = _one_line(exp.linux_fact.split("\n\n")[0]) if exp and exp.linux_fact \
            else _one_line(c.get("linux_fact", ""))
        if fact:
            out.append(f"- **Linux:** {fact}")
        if c.get("needs"):
            out.append(f"- **Needs:** {', '.join(c['needs'])}")
        out.append("")
    extra = sorted(set(by_name) - known)
    if extra:
        out += ["## Measured, beyond the course's list", ""]
        out += [f"- `{name}`: {_one_line(by_name[name].CLAIM)}" for name in extra] + [""]
    return "\n".join(out)
