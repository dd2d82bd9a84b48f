"""The ``wirelab`` command.  The only place exceptions become messages and
exit codes: 0 matches the prediction, 1 deviates, 2 bad input, 3 the
environment cannot run it, 4 the lab failed, 124 timed out, 130 interrupted."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys

from wirelab.errors import BadInput, EnvironmentProblem, TimedOut, WirelabError

EXIT_MATCH, EXIT_DEVIATES, EXIT_BAD_INPUT, EXIT_ENV, EXIT_RUNTIME, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # exit 2 with a message, never a traceback
        self.print_usage(sys.stderr)
        print(f"wirelab: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    from wirelab.backend import CHOICES
    p = _Parser(prog="wirelab", description="Run networking-course claims on a real Linux "
                "network stack and measure them against their predictions.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def kernel_opt(sp):
        sp.add_argument("--kernel", default="auto", choices=CHOICES,
                        help="kernel backend: the host's, User-Mode Linux, or auto (default): "
                             "the host when it has what the lab needs, else UML")

    d = sub.add_parser("doctor", help="what this machine's kernels and tools can do")
    kernel_opt(d)
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.add_argument("--no-tools", action="store_true", help=argparse.SUPPRESS)

    e = sub.add_parser("exec", help="run any command on a kernel backend (a shell, pytest, mn)")
    kernel_opt(e)
    e.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="stop the command (and the UML guest) after S seconds")
    e.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND...")

    sub.add_parser("list", help="the experiments, their claims and what they need")

    r = sub.add_parser("run", help="run an experiment and compare it with its prediction")
    r.add_argument("experiment")
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE[,VALUE...]",
                   help="override a parameter with one value or a comma-separated list")
    r.add_argument("--quick", action="store_true", help="the quick grid (for class and CI)")
    r.add_argument("--repeats", type=int, default=None, metavar="N", help="trials per grid point")
    r.add_argument("--seed", type=int, default=None, help="random seed (recorded either way)")
    r.add_argument("--json", action="store_true",
                   help="print one JSON document (run directory, verdict, points) on stdout")
    kernel_opt(r)

    s = sub.add_parser("show", help="print the summary of a finished run")
    s.add_argument("run_dir")
    pl = sub.add_parser("plot", help="redraw a run's plot from its files")
    pl.add_argument("run_dir")
    sub.add_parser("clean", help="finish the cleanup of runs that died (from their ledgers)")
    return p


def parse_sets(items: list[str]) -> dict:
    """``--set rtt_ms=10`` / ``--set rtt_ms=1,10,50`` -> {"rtt_ms": [...]}."""
    out: dict = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise BadInput(f"--set {item!r}: expected NAME=VALUE (or NAME=V1,V2,...)")
        values = [v.strip() for v in value.split(",")]
        if any(v == "" for v in values):
            raise BadInput(f"--set {item!r}: empty value for {name}")
        if name in out:
            raise BadInput(f"--set {name} given twice")
        out[name] = values if len(values) > 1 else values[0]
    return out


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="wirelab: %(message)s")
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _dispatch(args, argv)
    except KeyboardInterrupt:
        print("\nwirelab: interrupted; the lab was torn down", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BadInput as e:
        print(f"wirelab: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except EnvironmentProblem as e:
        print(f"wirelab: environment: {e}", file=sys.stderr)
        return EXIT_ENV
    except WirelabError as e:
        print(f"wirelab: run failed: {e}", file=sys.stderr)
        return e.exit_code
    except PermissionError as e:
        print(f"wirelab: environment: {e} (labs need root: run with sudo)", file=sys.stderr)
        return EXIT_ENV


def _dispatch(args, argv) -> int:
    if args.command == "doctor":
        from wirelab import doctor
        return doctor.main(args.kernel, args.json, not args.no_tools)
    if args.command == "list":
        return _list()
    if args.command == "clean":
        from wirelab.ledger import clean
        report = clean()
        print("\n".join(report) if report else "wirelab: nothing to clean")
        return 0
    if args.command == "show":
        return _show(args.run_dir)
    if args.command == "plot":
        from wirelab.plot import replot
        print(replot(args.run_dir))
        return 0
    if args.command == "exec":
        return _exec(args, argv)
    if args.command == "run":
        return _run(args, argv)
    raise BadInput(f"unknown command {args.command!r}")


def _require_root() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem("labs create network namespaces and need root: run with sudo")


def _exec(args, argv) -> int:
    from wirelab import backend
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise BadInput("exec needs a command after --, e.g. wirelab exec --kernel uml -- tc qdisc")
    if args.timeout is not None and args.timeout <= 0:
        raise BadInput(f"--timeout {args.timeout:g}: must be more than 0 seconds")
    _require_root()
    choice, _why = backend.resolve(args.kernel, backend.FULL_LAB)
    if choice == "uml":
        with backend.HostLock():
            return backend.run_in_uml(argv, timeout_s=args.timeout)
    try:
        return subprocess.run(cmd, timeout=args.timeout).returncode
    except FileNotFoundError:
        raise BadInput(f"command not found: {cmd[0]}") from None
    except subprocess.TimeoutExpired:
        raise TimedOut(f"{cmd[0]} did not finish within {args.timeout:g} s; it was stopped") from None


def _list() -> int:
    from wirelab.experiment import all_experiments
    for exp in all_experiments():
        aliases = getattr(exp.module, "ALIASES", ())
        print(f"{exp.id}" + (f" (alias: {', '.join(aliases)})" if aliases else ""))
        print(f"    claim: {exp.CLAIM}")
        print(f"    needs: {', '.join(sorted(exp.NEEDS)) or 'namespaces only'}; "
              f"topology {exp.TOPOLOGY}; parameters: "
              + ", ".join(f"{p.name} {list(p.grid) or p.default}" for p in exp.PARAMS))
    return 0


def _show(run_dir: str) -> int:
    from wirelab import analysis
    from wirelab.experiment import load
    from wirelab.results import read_run
    run = read_run(run_dir)
    exp = load(run.experiment)
    pts = analysis.points(exp, run.rows)
    print(analysis.summary_markdown(exp, run.manifest, pts))
    print(f"run directory: {run.dir}")
    v = analysis.verdict(pts, run.manifest.get("status") == "completed")
    return {"match": EXIT_MATCH, "deviates": EXIT_DEVIATES}.get(v, EXIT_RUNTIME)


def _run(args, argv) -> int:
    from wirelab import backend, runner
    from wirelab.experiment import load
    exp = load(args.experiment)
    overrides = parse_sets(args.set)
    exp.grid(overrides, args.quick)          # bad input -> exit 2 before anything exists
    exp.repeats(args.repeats, args.quick)
    _require_root()
    choice, why = backend.resolve(args.kernel, exp.NEEDS)
    if choice == "uml":
        if not args.json:
            print(f"wirelab: running {exp.id} in User-Mode Linux ({why})", file=sys.stderr)
        with backend.HostLock():
            return backend.run_in_uml(argv)
    from wirelab import uml
    with backend.HostLock():
        outcome = runner.run(exp, overrides, quick=args.quick, repeats=args.repeats,
                             seed=args.seed, backend="uml" if uml.inside() else "host",
                             backend_reason=why)
    from wirelab import analysis
    code = EXIT_MATCH if outcome.verdict == "match" else EXIT_DEVIATES
    if args.json:
        print(json.dumps({"run_dir": str(outcome.run_dir), "verdict": outcome.verdict,
                          "exit_code": code, "experiment": exp.id,
                          "points": analysis.json_points(outcome.points)}, indent=1))
    else:
        print((outcome.run_dir / "summary.md").read_text())
        print(f"results: {outcome.run_dir}")
        print(f"plot:    {outcome.run_dir / 'plot.png'}")
    return code
