"""``wirelab up``: build a topology, start what it declares, and open the prompt in it.

The same session runs on the host kernel or inside User-Mode Linux: there the host
re-runs this command in the guest, which gets a real terminal (line editing, Ctrl-C
to the running command, full-screen programs) or, with a script, the script's file.
A script comes from ``--script FILE`` or, when standard input is not a terminal, from
standard input (read whole before the lab is built).
"""
from __future__ import annotations

import inspect
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from wirelab import settings
from wirelab.errors import BadInput
from wirelab.spec.params import Choice, Param, parse_sets

#: What a testbed asks of the kernel in auto mode beyond what its links need: live link
#: changes (`link A B delay=...`) need netem.
LIVE_CHANGES = frozenset({"netem"})
T0_ENV = "WIRELAB_UP_T0"


def topology_params(module) -> list[Param]:
    """The topology's declared PARAMS, else its build() keywords (numbers >= 0, booleans)."""
    declared = getattr(module, "PARAMS", None)
    if declared is not None:
        return list(declared)
    out = []
    for name, p in inspect.signature(module.TOPOLOGY.build).parameters.items():
        d = p.default
        if name == "self" or d is inspect.Parameter.empty:
            continue
        if isinstance(d, bool):
            out.append(Choice(name, ("True", "False"), default=str(d)))
        elif isinstance(d, int):
            out.append(Param(name, d, min=0, max=1_000_000, type=int))
        elif isinstance(d, float):
            out.append(Param(name, d, min=0, max=1e9))
    return out


def parse_params(module, overrides: dict) -> dict:
    """--set values checked against the topology's parameters (BadInput, exit 2)."""
    params = topology_params(module)
    by_name = {p.name: p for p in params}
    unknown = set(overrides) - set(by_name)
    if unknown:
        allowed = ", ".join(f"{p.name} ({p.range_text()})" for p in params) or "none"
        raise BadInput(f"unknown parameter {', '.join(sorted(unknown))} for this topology; "
                       f"allowed: {allowed}")
    out = {}
    for p in params:
        raw = overrides.get(p.name, p.default)
        if isinstance(raw, list):
            raise BadInput(f"--set {p.name}: wirelab up takes one value, not a list")
        value = p.parse(raw)
        out[p.name] = (value == "True") if p.choices == ("True", "False") else value
    return out


def needs(module, params: dict, requested: str) -> set[str]:
    """Kernel features the lab needs: its links' shaping (netem for delay, jitter and loss,
    tbf for a rate), plus netem for live changes unless the host kernel was asked for
    (there a `link ... delay=` that the kernel cannot do fails with a message)."""
    out = set(getattr(module, "NEEDS", ()))
    topo = module.TOPOLOGY(**params)
    for _a, _b, info in topo.links(withInfo=True):
        for side in (info, info.get("params1", {}), info.get("params2", {})):
            if any(side.get(k) for k in ("delay_ms", "jitter_ms", "loss_pct")):
                out.add("netem")
            if side.get("bw_mbps"):
                out.add("tbf")
    return out | (set() if requested == "host" else set(LIVE_CHANGES))


def script_from_stdin() -> Path:
    """Standard input (not a terminal), read whole into a script file of its own folder."""
    return script_file(sys.stdin.read())


def script_file(text: str) -> Path:
    """TEXT as a script file in a folder of its own under /tmp (one the UML guest is given
    to read: the guest's own /tmp is a fresh tmpfs, and a file directly in the host's /tmp
    would not be seen)."""
    d = Path(tempfile.mkdtemp(prefix="wirelab-up-"))
    path = d / "script.txt"
    path.write_text(text)
    return path


def with_script(argv: list[str], path: Path) -> list[str]:
    """ARGV with its --script option (either spelling) replaced by PATH."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--script":
            skip = True
        elif not arg.startswith("--script="):
            out.append(arg)
    return [*out, "--script", str(path)]


def serve(module, params: dict, script: Path | None, name: str) -> int:
    """Build the lab here (the host, or already the guest), run the prompt or script."""
    from wirelab.kernel.backend import HostLock
    from wirelab.lab.net import Lab
    from wirelab.testbed import services
    from wirelab.testbed.console import Console
    lines = script.read_text().splitlines() if script else None
    interactive = lines is None and sys.stdin.isatty()
    t0 = float(os.environ.get(T0_ENV) or time.time())

    def progress(text: str) -> None:
        print(f"wirelab: {text}", file=sys.stderr, flush=True)
    topo = module.TOPOLOGY(**params)
    with HostLock(), Lab(topo) as lab:
        progress(f"{name}: {len(lab.nodes)} nodes built in {lab.build_s:.2f} s")
        envs = services.start(lab, progress)
        console = Console(lab, envs, results_dir=settings.current().results_dir, name=name,
                          interactive=interactive)
        progress(f"{name} is up {time.time() - t0:.1f} s after the command; "
                 + ("type help; exit or Ctrl-D tears it down" if interactive else "running the script"))
        rc = console.loop() if lines is None else console.run_script(lines)
    progress(f"{name} torn down")
    return rc


def main(args, argv: list[str]) -> int:
    """The ``up`` command (ARGV: our own command line, for the guest)."""
    from wirelab.kernel import backend
    from wirelab.run import catalog
    os.environ.setdefault(T0_ENV, repr(time.time()))
    module = catalog.load_topology_module(args.topology)
    params = parse_params(module, parse_sets(args.set))
    source = getattr(module, "__file__", None)
    name = Path(source).stem if source else args.topology
    script = Path(args.script) if args.script else None
    if script is not None and not script.is_file():
        raise BadInput(f"--script {args.script}: no such file")
    settings.require_root()
    choice, why = backend.resolve(args.kernel, needs(module, params, args.kernel))
    from_stdin = script is None and not sys.stdin.isatty()
    own_copy = from_stdin or (script is not None and choice == "uml")
    if from_stdin:
        script = script_from_stdin()
    elif own_copy and script is not None:      # the guest reads its own copy
        script = script_file(script.read_text())
    try:
        if choice == "uml":
            if own_copy and script is not None:
                argv = with_script(argv, script)
            reads = [str(script.resolve().parent)] if script else []
            if catalog.is_path(args.topology):
                reads.append(str(Path(args.topology).resolve().parent))
            print(f"wirelab: {name} in User-Mode Linux ({why})", file=sys.stderr, flush=True)
            with backend.HostLock():
                return backend.run_in_uml(argv, read_paths=reads).returncode
        return serve(module, params, script, name)
    finally:
        if own_copy and script is not None:
            shutil.rmtree(script.parent, ignore_errors=True)
