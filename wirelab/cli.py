"""The ``wirelab`` command: argument parsing and dispatch, and the only place exceptions
become messages and exit codes.

Exit status: 0 the measurement matches its prediction, 1 it deviates, 2 bad input
(nothing is created), 3 this machine cannot run it, 4 the lab failed (a crash is
always 4, never a deviation), 124 timed out, 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import traceback

from wirelab import __version__, settings
from wirelab.errors import BadInput, EnvironmentProblem, TimedOut, WirelabError
from wirelab.settings import require_root as _require_root
from wirelab.spec.experiment import Experiment
from wirelab.spec.params import parse_sets

EXIT_MATCH, EXIT_DEVIATES, EXIT_BAD_INPUT, EXIT_ENV, EXIT_LAB, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
KERNELS = ("auto", "host", "uml")


def _kernel_arg(value: str) -> str:
    if value in KERNELS or re.fullmatch(r"uml:\d+\.\d+", value):
        return value
    raise argparse.ArgumentTypeError(f"{value!r}: allowed auto, host, uml, or uml:X.Y "
                                     "(a UML kernel `wirelab kernels` lists, e.g. uml:6.12)")


def _kernels_arg(value: str) -> str:
    """One backend, or (run only) a list of UML kernels: uml:6.1,uml:6.12."""
    if "," not in value:
        return _kernel_arg(value)
    from wirelab.run.across import kernel_list
    try:
        kernel_list(value)
    except BadInput as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix(f"--kernel {value}: ")
                                         + f" (got {value!r})") from None
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # exit 2 with a message, never a traceback
        self.print_usage(sys.stderr)
        print(f"wirelab: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _common(sub: bool) -> _Parser:
    """Options allowed before or after the subcommand (-v anywhere)."""
    p = _Parser(add_help=False)
    quiet: dict = {"default": argparse.SUPPRESS} if sub else {}
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks",
                   **quiet)
    p.add_argument("--results-dir", metavar="DIR", help="where runs are written and read "
                   "(default: $WIRELAB_RESULTS, else ./results)", **quiet)
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common(sub=True)
    p = _Parser(prog="wirelab", parents=[_common(sub=False)],
                description="Run networking-course claims on a real Linux network stack and "
                "measure them against their predictions.")
    p.add_argument("--version", action="version", version=f"wirelab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, func, help: str, **kw) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, parents=[common], **kw)
        sp.set_defaults(func=func)
        return sp

    def kernel_opt(sp, many: bool = False):
        sp.add_argument("--kernel", default="auto", type=_kernels_arg if many else _kernel_arg,
                        metavar="{auto,host,uml,uml:X}" + (",..." if many else ""),
                        help="kernel backend: the host's, User-Mode Linux (uml: the system's; "
                             "uml:6.1, uml:6.12: that one, see `wirelab kernels`), or auto "
                             "(default): the host when it has what the lab needs, else UML"
                             + ("; uml:6.1,uml:6.12 runs the grid on each kernel and writes "
                                "one results directory comparing them" if many else ""))

    def json_opt(sp, what: str):
        sp.add_argument("--json", action="store_true", help=f"print {what} as JSON")

    k = add("kernels", cmd_kernels, "the UML kernels this machine can boot (--kernel uml:X)")
    k.add_argument("action", nargs="?", choices=("list", "fetch"), default="list",
                   help="list (default), or fetch Debian 13's 6.12 into the project's cache")
    json_opt(k, "the kernels")

    d = add("doctor", cmd_doctor, "what this machine's kernels and tools can do")
    kernel_opt(d)
    json_opt(d, "the report")
    d.add_argument("--no-tools", action="store_true", help=argparse.SUPPRESS)

    e = add("exec", cmd_exec, "run any command on a kernel backend (a shell, pytest, mn)")
    kernel_opt(e)
    e.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="stop the command (and the UML guest) after S seconds")
    e.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND...")

    ls = add("list", cmd_list, "the experiments, their claims and what they need")
    ls.add_argument("name", nargs="?", help="one experiment, in full (its Linux facts too)")
    json_opt(ls, "the list")
    ls.add_argument("--markdown", action="store_true",
                    help="the whole claims catalog as Markdown (what docs/claims.md holds)")
    ls.add_argument("--sysctl", metavar="NAME",
                    help="the experiments that sweep this sysctl and plot its effect "
                    "(tcp_retries2 or net.ipv4.tcp_retries2); 'all' lists every such sysctl")

    r = add("run", cmd_run, "run an experiment and compare it with its prediction")
    r.add_argument("experiment", help="a name from `wirelab list`, or a path to an "
                   "experiment module (my_claim.py)")
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE[,VALUE...]",
                   help="override a parameter with one value or a comma-separated list")
    r.add_argument("--sysctl", action="append", default=[], metavar="[HOST:]NAME=VALUE",
                   help="set a sysctl on every lab host (or one HOST; 'kernel:' for a kernel-wide "
                   "one, UML only) on top of the experiment's own; VALUE 'default' is the kernel's")
    r.add_argument("--quick", action="store_true", help="the quick grid (for class and CI)")
    r.add_argument("--repeats", type=int, default=None, metavar="N", help="rows per grid point")
    r.add_argument("--seed", type=int, default=None, help="random seed (recorded either way)")
    json_opt(r, "one document (run directory, verdict, points)")
    kernel_opt(r, many=True)

    u = add("up", cmd_up, "build a topology and open a prompt inside it (a testbed to "
            "enter and break)")
    u.add_argument("topology", help="a name from topologies/ (router_chain, home_nat, vpc, "
                   "dns_hierarchy, bgp_pops, ...), or a path to a topology module")
    u.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a topology parameter (e.g. --set n=5)")
    u.add_argument("--script", metavar="FILE", help="run FILE's commands (echoed with their "
                   "output) instead of the prompt; stop at the first that fails (exit 1)")
    kernel_opt(u)

    s = add("show", cmd_show, "print the summary of a finished run")
    s.add_argument("run_dir")
    json_opt(s, "the verdict and points")
    pl = add("plot", cmd_plot, "redraw a run's figure from its files")
    pl.add_argument("run_dir")
    pl.add_argument("--format", default="png", choices=("png", "svg", "pdf"),
                    help="png (default), or svg / pdf for slides: plot.<format> in the run")
    t = add("tune", cmd_tune, "the course's TCP tuning block as an A/B: each sysctl at the "
            "kernel's default and at the course's value, on the workload it affects")
    t.add_argument("--quick", action="store_true", help="the quick points (under 5 minutes)")
    t.add_argument("--repeats", type=int, default=None, metavar="N", help="trials per side")
    t.add_argument("--only", metavar="SYSCTL", help="one sysctl of the block (e.g. tcp_tw_reuse)")

    g = add("gallery", cmd_gallery, "draw every experiment's figure from stored runs on one page")
    g.add_argument("runs", help="a folder of <experiment>/<run> directories (tests/data/runs)")
    g.add_argument("--out", default="docs/figures", help="where the images go")
    g.add_argument("--page", default="docs/figures.md", help="the Markdown page to write")
    add("clean", cmd_clean, "finish the cleanup of runs that died (from their ledgers)")
    return p


def command_part(argv: list[str]) -> list[str]:
    """ARGV without the global options in front of the subcommand."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-v", "--verbose") or a.startswith("--results-dir="):
            i += 1
        elif a == "--results-dir":
            i += 2
        else:
            break
    return argv[i:]


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="wirelab: %(message)s")
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        settings.configure(results_dir=getattr(args, "results_dir", None),
                           verbose=verbose or None)
        kernel = getattr(args, "kernel", None)
        if isinstance(kernel, str) and "," in kernel:     # run on several UML kernels
            from wirelab.kernel import kernels
            from wirelab.run.across import kernel_list
            args.kernels = kernel_list(kernel)
            for name in args.kernels:
                kernels.select(name)                # bad input before anything starts
            args.kernel = "uml"
        elif isinstance(kernel, str) and kernel.startswith("uml:"):
            from wirelab.kernel import kernels
            if not settings.inside_guest():         # the guest runs the kernel it is
                kernels.select(kernel[4:])          # bad input before anything starts
            settings.override(uml_kernel=kernel[4:])
            args.kernel = "uml"
        return args.func(args, command_part(argv))
    except KeyboardInterrupt:
        print("\nwirelab: interrupted; the lab was torn down", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BadInput as e:
        print(f"wirelab: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except EnvironmentProblem as e:
        print(f"wirelab: environment: {e}", file=sys.stderr)
        return EXIT_ENV
    except PermissionError as e:
        print(f"wirelab: environment: {e} (labs need root: run with sudo)", file=sys.stderr)
        return EXIT_ENV
    except TimedOut as e:
        print(f"wirelab: {e}", file=sys.stderr)
        return e.exit_code
    except WirelabError as e:
        _crash("lab failed", e, verbose)
        return e.exit_code
    except Exception as e:  # a crash is a lab failure, never a deviation
        _crash("crashed", e, verbose)
        return EXIT_LAB


def _crash(what: str, e: BaseException, verbose: bool) -> None:
    if verbose:
        traceback.print_exception(e)
    cause = f"{type(e).__name__}: {e}" if not isinstance(e, WirelabError) else str(e)
    print(f"wirelab: {what}: {cause}" + ("" if verbose else " (-v for the traceback)"),
          file=sys.stderr)


# --- commands -----------------------------------------------------------------------

def cmd_doctor(args, argv) -> int:
    from wirelab.kernel import doctor
    return doctor.main(args.kernel, args.json, not args.no_tools)


def cmd_kernels(args, argv) -> int:
    from wirelab.kernel import kernels
    if args.action == "fetch":
        _require_root()
        k = kernels.fetch_debian13(progress=lambda m: print(f"wirelab: {m}", file=sys.stderr))
        print(f"uml:{k.name}  {k.release}  {k.binary}  ({k.origin.strip()})")
        return 0
    have = kernels.available_kernels()
    if args.json:
        print(json.dumps({n: {"release": k.release, "binary": str(k.binary), "origin": k.origin.strip(),
                              "modules": str(k.module_root / k.release),
                              "loader": str(k.loader) if k.loader else "the system's"}
                          for n, k in have.items()}, indent=1))
        return 0
    system = kernels.system_kernel()
    for n, k in have.items():
        default = "  (the default for --kernel uml)" if system and system.name == n else ""
        print(f"uml:{n}  {k.release}  {k.binary}  {k.origin.strip()}{default}")
    if "6.12" not in have:
        print("uml:6.12 is not here: `sudo wirelab kernels fetch` (or `sudo make setup`) "
              "fetches Debian 13's", file=sys.stderr)
    return 0 if have else EXIT_ENV


def cmd_clean(args, argv) -> int:
    from wirelab.lab.ledger import clean
    report = clean()
    print("\n".join(report) if report else "wirelab: nothing to clean")
    if report.left:
        print(f"wirelab: {report.left} items could not be undone; they stay in their "
              "ledgers", file=sys.stderr)
        return EXIT_LAB
    return 0


def cmd_exec(args, argv) -> int:
    from wirelab.kernel import backend
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise BadInput("exec needs a command after --, e.g. wirelab exec --kernel uml -- tc qdisc")
    if args.timeout is not None and args.timeout <= 0:
        raise BadInput(f"--timeout {args.timeout:g}: must be more than 0 seconds")
    _require_root()
    choice, _why = backend.resolve(args.kernel, backend.FULL_LAB)
    if choice == "uml":
        with backend.HostLock():
            return backend.run_in_uml(argv, timeout_s=args.timeout).returncode
    try:
        return subprocess.run(cmd, timeout=args.timeout).returncode
    except FileNotFoundError:
        raise BadInput(f"command not found: {cmd[0]}") from None
    except subprocess.TimeoutExpired:
        raise TimedOut(f"{cmd[0]} did not finish within {args.timeout:g} s; it was stopped") from None


def cmd_list(args, argv) -> int:
    from wirelab.report import listing
    from wirelab.run import catalog
    if args.markdown:
        from wirelab.report.claims_doc import claims_markdown
        print(claims_markdown(catalog.claims(), catalog.all_experiments()), end="")
        return 0
    exps = [catalog.load(args.name)] if args.name else catalog.all_experiments()
    if args.sysctl:
        return _list_sysctl(args.sysctl, exps, as_json=args.json)
    if args.json:
        print(json.dumps([listing.as_json(e) for e in exps], indent=1))
    else:
        print("\n".join(listing.as_text(e, full=bool(args.name)) for e in exps))
    return 0


def _list_sysctl(name: str, exps: list, as_json: bool) -> int:
    from wirelab.report import listing
    swept = listing.swept_sysctls(exps)
    found = {s: uses for s, uses in swept.items() if name == "all" or listing.sysctl_matches(name, s)}
    if not found:
        raise BadInput(f"--sysctl {name!r}: no experiment sweeps it; swept sysctls: "
                       f"{', '.join(swept) or 'none'}")
    if as_json:
        print(json.dumps({s: [{"experiment": e.id, "parameter": p.name, "grid": list(p.grid)}
                              for e, p in uses] for s, uses in found.items()}, indent=1))
    else:
        print("\n".join(listing.sysctl_text(s, uses) for s, uses in found.items()))
    return 0


def _experiment_of(run) -> Experiment:
    """The experiment a run directory came from: by its name, else its source file."""
    from wirelab.run import catalog
    try:
        return catalog.load(run.experiment)
    except BadInput:
        source = run.manifest.get("source")
        if source:
            return catalog.load_path(source)
        raise


def cmd_show(args, argv) -> int:
    from wirelab.report import analysis
    from wirelab.report.results import read_run
    from wirelab.report.summary import summary_markdown
    run = read_run(args.run_dir)
    exp = _experiment_of(run)
    pts = analysis.of_run(exp, run)
    v = analysis.verdict(pts, run.manifest.get("status") == "completed")
    code = {"match": EXIT_MATCH, "deviates": EXIT_DEVIATES}.get(v, EXIT_LAB)  # lab fault: 4
    if args.json:
        print(json.dumps({"run_dir": str(run.dir), "experiment": exp.id, "verdict": v,
                          "status": run.manifest.get("status"), "exit_code": code,
                          "points": analysis.json_points(pts)}, indent=1))
    else:
        print(summary_markdown(exp, run.manifest, pts))
        print(f"run directory: {run.dir}")
    return code


def cmd_plot(args, argv) -> int:
    from wirelab.report.plot import plot_run
    from wirelab.report.results import read_run
    run = read_run(args.run_dir)
    print(plot_run(run, _experiment_of(run), fmt=args.format))
    return 0


_SYSCTL_NAME = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_-]+)+$")


def parse_sysctls(words: list[str]) -> dict[str, dict[str, str]]:
    """``--sysctl [HOST:]NAME=VALUE`` words -> {HOST or "*": {NAME: VALUE}}."""
    out: dict[str, dict[str, str]] = {}
    for word in words:
        host, _, rest = word.rpartition(":") if ":" in word.split("=", 1)[0] else ("*", "", word)
        name, eq, value = rest.partition("=")
        if not eq or not _SYSCTL_NAME.match(name) or not value.strip():
            raise BadInput(f"--sysctl {word!r}: expected [HOST:]NAME=VALUE, e.g. "
                           "net.ipv4.tcp_tw_reuse=1 or h1:net.ipv4.tcp_fin_timeout=15")
        out.setdefault(host, {})[name] = value.strip()
    return out


def cmd_run(args, argv) -> int:
    from wirelab.kernel import backend
    from wirelab.run import catalog
    exp = catalog.load(args.experiment)
    overrides = parse_sets(args.set)
    on_top = parse_sysctls(args.sysctl)
    exp.grid(overrides, args.quick)          # bad input -> exit 2 before anything exists
    exp.repeats(args.repeats, args.quick)
    _require_root()
    if getattr(args, "kernels", None):
        return _run_across(exp, args, argv)
    choice, why = backend.resolve(args.kernel, exp.NEEDS)
    if choice == "uml":
        if not args.json:
            print(f"wirelab: running {exp.id} in User-Mode Linux ({why})", file=sys.stderr)
        source = getattr(exp.module, "__file__", None)
        with backend.HostLock():
            res = backend.run_in_uml(argv, read_paths=[os.path.dirname(source)] if source else [])
        _plot_guest_runs(res.outputs, exp)
        return res.returncode
    from wirelab.report import analysis
    from wirelab.run import runner
    with backend.HostLock():
        try:
            outcome = runner.run(exp, overrides, quick=args.quick, repeats=args.repeats,
                                 seed=args.seed, backend="uml" if settings.inside_guest() else "host",
                                 backend_reason=why, extra_sysctls=on_top)
        except Exception as e:
            from wirelab.run.across import tell_host
            tell_host(e)                    # a guest says why it stopped (runs across kernels)
            raise
    code = {"match": EXIT_MATCH, "deviates": EXIT_DEVIATES}.get(outcome.verdict, EXIT_LAB)
    if args.json:
        print(json.dumps({"run_dir": str(outcome.run_dir), "verdict": outcome.verdict,
                          "exit_code": code, "experiment": exp.id,
                          "points": analysis.json_points(outcome.points)}, indent=1))
    else:
        print((outcome.run_dir / "summary.md").read_text())
        print(f"results: {outcome.run_dir}")
        print(f"plot:    {outcome.run_dir / 'plot.png'}")
        for extra in sorted(outcome.run_dir.glob("plot-*.png")):
            print(f"         {extra}")
    return code


def _run_across(exp, args, argv) -> int:
    """--kernel uml:6.1,uml:6.12: the grid on each kernel, one results directory."""
    from wirelab.report import across as report
    from wirelab.run import across
    root, parts = across.run(exp, argv, args.kernels, quick=args.quick)
    code = report.exit_code(parts)
    if args.json:
        print(json.dumps(report.json_doc(exp, root, parts), indent=1))
    else:
        print((root / "summary.md").read_text())
        print(f"results: {root}")
        print(f"plot:    {root / 'plot.png'}")
        for pt in parts:
            print(f"{pt.kernel}: {pt.run.dir if pt.run else pt.state}")
    for pt in parts:
        if pt.why:
            print(f"wirelab: {pt.kernel}: {pt.state}", file=sys.stderr)
    return code


def cmd_tune(args, argv) -> int:
    from pathlib import Path

    from wirelab.run import tune
    if args.repeats is not None and args.repeats < 1:
        raise BadInput(f"--repeats {args.repeats}: at least 1")
    _require_root()
    out = tune.run(Path(settings.current().results_dir), quick=args.quick, repeats=args.repeats,
                   only=args.only)
    print((out / "summary.md").read_text())
    print(f"results: {out}")
    for image in sorted(out.glob("plot-*.png")):
        print(f"plot:    {image}")
    faults = [r for r in json.loads((out / "tune.json").read_text())["rows"]
              if r["status"].startswith("lab fault")]
    return EXIT_LAB if faults else 0


def cmd_gallery(args, argv) -> int:
    from pathlib import Path

    from wirelab.run import gallery
    runs = Path(args.runs)
    if not runs.is_dir():
        raise BadInput(f"{args.runs}: no such folder of stored runs")
    for image in gallery.write(runs, Path(args.out), Path(args.page)):
        print(image)
    print(args.page)
    return 0


def cmd_up(args, argv) -> int:
    from wirelab.testbed import session
    return session.main(args, argv)


def topology_main(path: str, words: list[str]) -> int:
    """``python topologies/X.py [name=value ...]``: ``wirelab up X --set name=value``."""
    sets = []
    for w in words:
        if "=" not in w or w.startswith("-"):
            print(f"usage: {os.path.basename(path)} [name=value ...]", file=sys.stderr)
            return EXIT_BAD_INPUT
        sets += ["--set", w]
    return main(["up", os.path.abspath(path), *sets])


def _plot_guest_runs(lines: list[str], exp) -> None:
    """Draw the figures of runs a UML guest made (matplotlib is slow to import there)."""
    from wirelab.report.plot import plot_run
    from wirelab.report.results import read_run
    for line in lines:
        verb, _, arg = line.partition(" ")
        if verb == "plot" and arg:
            plot_run(read_run(arg), exp)
