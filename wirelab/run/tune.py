"""``wirelab tune``: the course's TCP TUNING block (section 9), measured as an A/B.

For each of the block's seven sysctls the kernel's default (A) and the course's value (B)
run the same workload: a quick point of the experiment that sysctl affects, with the
sysctl put on top of the experiment's own settings (``wirelab run --sysctl``), in the
backend that experiment needs (the host kernel for namespaces only, User-Mode Linux for
netem or a kernel-wide sysctl).  The experiments' own predictions are beside the point
here: tune reads what was measured (median and p10-p90 over the trials) and calls a
workload's effect *helps* (or *hurts*) only when B's median differs from A's by more than
either side's spread and 2 % of the larger; else *no measurable effect*.  A sysctl helps
when every workload shows it, *only when ...* when some do, and a sysctl this kernel
lacks is reported as such.

One results directory: ``tune.csv`` and ``tune.json`` (a row per workload), ``summary.md``
(the table and a verdict per sysctl), ``plot-<sysctl>.png`` (A against B per workload),
and ``runs/`` with every run it made, each a normal run directory.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from wirelab.errors import BadInput, LabError


@dataclass(frozen=True)
class Workload:
    what: str                           # in a student's words: what runs, what is read
    experiment: str
    sets: tuple[tuple[str, str], ...]   # --set NAME=VALUE: one quick point
    metric: str
    better: str                         # "higher" or "lower"
    host: str = "*"                     # where the sysctl goes: "*", a host, "kernel"
    when: str = ""                      # the condition it stands for, in a verdict
    quick: bool = True                  # False: too slow for --quick (the table says so)
    slow_why: str = ""


@dataclass(frozen=True)
class Knob:
    sysctl: str
    course: str                         # the value the course recommends
    comment: str                        # the course's comment beside it
    workloads: tuple[Workload, ...]


BACKLOG, PORTS, FIN, FLOW = ("accept_backlog_overflow", "client_ephemeral_port_exhaustion_tw_reuse",
                             "time_wait_duration_and_fin_timeout",
                             "flow_control_rwnd_bdp_and_buffer_sysctls")
BLOCK = (
    Knob("net.core.somaxconn", "4096", "listen() backlog", (
        Workload("a server calling listen(4096): the backlog the kernel gives it (ss Send-Q)",
                 BACKLOG, (("case", "capped"),), "backlog_limit_count", "higher", "h2",
                 when="a program asks listen() for more than the default"),)),
    Knob("net.ipv4.tcp_max_syn_backlog", "4096", "SYN queue size", (
        Workload("8 clients at once on listen(3), SYN cookies on: clients left hanging",
                 BACKLOG, (("case", "cookies"),), "phantom_count", "lower", "h2",
                 when="SYN cookies on"),
        Workload("the same with SYN cookies off: clients served", BACKLOG,
                 (("case", "no_cookies"),), "served_count", "higher", "h2", when="SYN cookies off",
                 quick=False, slow_why="kept for the full run (the quick one stays under 5 min)"))),
    Knob("net.ipv4.ip_local_port_range", "1024 65535", "ephemeral ports", (
        Workload("a client closing first: connections to one server port before EADDRNOTAVAIL",
                 PORTS, (("case", "client_closes"), ("ports_count", "28232")),
                 "first_failure_count", "higher", "h1", when="a client closing first", quick=False,
                 slow_why="using up 28,232 ports takes 34 s here and 64,512 longer than "
                 "TIME_WAIT lasts"),)),
    Knob("net.ipv4.tcp_tw_reuse", "1", "reuse TIME_WAIT sockets", (
        Workload("a client closing first, 2,000 connections at 500/s from 1,000 ports: failures",
                 PORTS, (("case", "tw_reuse"), ("ports_count", "1000")), "failure_count", "lower", "h1",
                 when="the client closes first (it reuses its own TIME_WAIT ports)"),
        Workload("the same with the server closing first: failures", PORTS,
                 (("case", "server_closes"), ("ports_count", "1000")), "failure_count", "lower", "h1",
                 when="the server closes first"))),
    Knob("net.ipv4.tcp_fin_timeout", "15", "reduce FIN_WAIT_2 timeout", (
        Workload("a client closing first: its TIME_WAIT timer, s", FIN,
                 (("case", "client_closes"), ("watch_s", "0")), "tw_timer_s", "lower",
                 when="TIME_WAIT (still 60 s)"),
        Workload("an orphaned FIN_WAIT_2 (the peer never closes): its timer, s", FIN,
                 (("case", "orphan"), ("watch_s", "0")), "fw2_timer_s", "lower",
                 when="orphaned FIN_WAIT_2 sockets"))),
    Knob("net.core.rmem_max", "16777216", "max receive buffer", (
        Workload("a reader with SO_RCVBUF 256 KiB, 20 Mbit/s, r = 100 ms: goodput, Mbit/s", FLOW,
                 (("case", "256k"),), "goodput_mbps", "higher", "kernel",
                 when="sockets that set SO_RCVBUF above 208 KiB on a path whose BDP needs it"),
        Workload("an autotuned reader (no SO_RCVBUF), same path: goodput, Mbit/s", FLOW,
                 (("case", "auto"),), "goodput_mbps", "higher", "kernel", when="autotuned readers"))),
    Knob("net.core.wmem_max", "16777216", "max send buffer", (
        Workload("an autotuned sender (no SO_SNDBUF), 20 Mbit/s, r = 100 ms: goodput, Mbit/s", FLOW,
                 (("case", "auto"),), "goodput_mbps", "higher", "kernel", when="autotuned senders"),)),
)


def effect(a: dict, b: dict, better: str) -> str:
    """"helps", "hurts" or "no measurable effect": B's median against A's, beyond the wider
    p10-p90 spread of the two and 2 % of the larger median."""
    diff = b["median"] - a["median"]
    spread = max(a["p90"] - a["p10"], b["p90"] - b["p10"], 0.0)
    if abs(diff) <= max(spread, 0.02 * max(abs(a["median"]), abs(b["median"])), 1e-9):
        return "no measurable effect"
    return "helps" if (diff > 0) == (better == "higher") else "hurts"


def verdict(knob: Knob, rows: list[dict]) -> str:
    """One line for a sysctl from its workloads' rows."""
    if any(r["status"] == "missing" for r in rows):
        return "not in this kernel"
    measured = [r for r in rows if r["status"] == "measured"]
    if not measured:
        return "not measured (" + "; ".join(sorted({r["status"] for r in rows})) + ")"
    if all(r["default"] == r["value"] for r in measured):
        return f"no change: {knob.course} is already this kernel's default"
    helps = [r for r in measured if r["effect"] == "helps"]
    hurts = [r for r in measured if r["effect"] == "hurts"]
    if hurts:
        return "hurts: " + "; ".join(r["when"] for r in hurts)
    if not helps:
        return "no measurable effect (" + "; ".join(r["when"] for r in measured) + ")"
    if len(helps) == len(rows):
        return "helps"
    rest = [r["when"] for r in rows if r not in helps]
    return "only for " + "; ".join(r["when"] for r in helps) + " (not: " + "; ".join(rest) + ")"


def _side(wl: Workload, sysctl: str, value: str, runs: Path, repeats: int | None) -> dict:
    """Run one side of a workload: {"median", "p10", "p90", "applied", "run_dir"} or
    {"status": why not}."""
    target = "" if wl.host == "*" else f"{wl.host}:"
    argv = [sys.executable, "-m", "wirelab", "--results-dir", str(runs), "run", wl.experiment,
            "--quick", "--json", "--sysctl", f"{target}{sysctl}={value}"]
    argv += [f"--set={k}={v}" for k, v in wl.sets]
    argv += ["--repeats", str(repeats)] if repeats else []
    res = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if res.returncode == 3 and "has no sysctl" in res.stderr:
        return {"status": "missing"}
    if res.returncode not in (0, 1):
        raise LabError(f"{' '.join(argv[2:])} exited {res.returncode}: {res.stderr.strip()[-800:]}")
    doc = json.loads(res.stdout[res.stdout.index("{"):])
    point = doc["points"][0]
    if wl.metric not in point["measured"]:
        raise LabError(f"{wl.experiment} measured no {wl.metric} at {dict(wl.sets)}")
    manifest = json.loads((Path(doc["run_dir"]) / "manifest.json").read_text())
    first = manifest["points"][0]
    applied, facts = first["effective_sysctls"], first["kernel_facts"]
    host = wl.host if wl.host != "*" else sorted(h for h in applied if h != "kernel")[0]
    # what was in force: as the lab set it, else (a kernel-wide value left as it was) as read
    got = (applied.get(host, {}).get(sysctl) or facts.get("global", {}).get(sysctl)
           or facts.get("sysctls", {}).get(sysctl))
    if got is None:
        raise LabError(f"{wl.experiment}: the run does not say what {sysctl} was")
    return {"status": "measured", "median": point["measured"][wl.metric],
            "p10": point["p10"][wl.metric], "p90": point["p90"][wl.metric],
            "applied": got, "run_dir": doc["run_dir"]}


def run(out_root: Path, *, quick: bool, repeats: int | None = None, only: str | None = None,
        progress=sys.stderr) -> Path:
    """Run the block (or the one sysctl ONLY); returns the results directory."""
    knobs = [k for k in BLOCK if only in (None, k.sysctl, k.sysctl.rsplit(".", 1)[-1])]
    if not knobs:
        raise BadInput(f"--only {only}: not in the course's block ("
                       + ", ".join(k.sysctl for k in BLOCK) + ")")
    out = out_root / "tune" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (out / "runs").mkdir(parents=True)
    rows: list[dict] = []
    todo = [(k, w) for k in knobs for w in k.workloads]
    for i, (knob, wl) in enumerate(todo, 1):
        row: dict = {"sysctl": knob.sysctl, "course": knob.course, "workload": wl.what, "when": wl.when,
               "experiment": wl.experiment, "metric": wl.metric, "better": wl.better}
        if quick and not wl.quick:
            row |= {"status": f"not run with --quick: {wl.slow_why}"}
        else:
            t0 = time.monotonic()
            print(f"[{i}/{len(todo)}] {knob.sysctl}: {wl.experiment} {dict(wl.sets)} ...",
                  file=progress, flush=True)
            try:
                a = _side(wl, knob.sysctl, "default", out / "runs", repeats)
                same = a["status"] != "measured" or a["applied"].split() == knob.course.split()
                b = a if same else _side(wl, knob.sysctl, knob.course, out / "runs", repeats)
            except LabError as e:       # recorded, the block goes on; the command exits 4
                a = b = {"status": f"lab fault: {e}"}
            row |= {"status": a["status"], "wall_s": round(time.monotonic() - t0, 1)}
            if a["status"] == "measured":
                row |= {"default": a["applied"], "value": b["applied"], "effect": effect(a, b, wl.better)}
                row |= {f"{side}_{k}": s[k] for side, s in (("a", a), ("b", b))
                        for k in ("median", "p10", "p90", "run_dir")}
        rows.append(row)
        print(f"[{i}/{len(todo)}] {knob.sysctl}: {wl.what}: " + (
            f"{row['a_median']:.4g} -> {row['b_median']:.4g} ({row['effect']}, {row['wall_s']} s)"
            if row.get("effect") else row["status"]), file=progress, flush=True)
    verdicts = {k.sysctl: verdict(k, [r for r in rows if r["sysctl"] == k.sysctl]) for k in knobs}
    write(out, knobs, rows, verdicts, quick)
    return out


COLUMNS = ("sysctl", "course", "default", "value", "workload", "experiment", "metric", "better",
           "a_median", "a_p10", "a_p90", "b_median", "b_p10", "b_p90", "effect", "status", "wall_s",
           "a_run_dir", "b_run_dir")


def write(out: Path, knobs: list[Knob], rows: list[dict], verdicts: dict, quick: bool) -> None:
    with open(out / "tune.csv", "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "tune.json").write_text(json.dumps({"quick": quick, "rows": rows, "verdicts": verdicts},
                                              indent=1))
    (out / "summary.md").write_text(summary(knobs, rows, verdicts, quick))
    from wirelab.report.tune_plot import plot_knob
    for knob in knobs:
        mine = [r for r in rows if r["sysctl"] == knob.sysctl]
        if any(r.get("effect") for r in mine):
            plot_knob(out / f"plot-{knob.sysctl.rsplit('.', 1)[-1]}.png", knob, mine, verdicts[knob.sysctl])


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def summary(knobs: list[Knob], rows: list[dict], verdicts: dict, quick: bool) -> str:
    lines = ["# The course's TCP tuning block, measured" + (" (--quick)" if quick else ""), "",
             "Each sysctl at the kernel's default (A) and at the course's value (B), on the "
             "workload it affects; median [p10, p90] over the trials.", "",
             "| sysctl | default | course | workload | A | B | effect |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("effect"):
            a = f"{_num(r['a_median'])} [{_num(r['a_p10'])}, {_num(r['a_p90'])}]"
            b = f"{_num(r['b_median'])} [{_num(r['b_p10'])}, {_num(r['b_p90'])}]"
            lines.append(f"| `{r['sysctl']}` | {r['default']} | {r['value']} | {r['workload']} | {a} | {b} "
                         f"| {r['effect']} |")
        else:
            lines.append(f"| `{r['sysctl']}` | | {r['course']} | {r['workload']} | | | {r['status']} |")
    lines += ["", "## Verdicts", ""]
    for knob in knobs:
        lines.append(f"- `{knob.sysctl} = {knob.course}` (\"{knob.comment}\"): **{verdicts[knob.sysctl]}**")
    lines += ["", textwrap.fill(
        "A workload's effect counts only beyond the spread of its trials and 2 % of the larger "
        "median. Every run is a normal run directory under runs/ (`wirelab show` reads it).", 90), ""]
    return "\n".join(lines)
