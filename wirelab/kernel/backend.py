"""Choosing the kernel a lab runs on: the host's own, or User-Mode Linux.

``auto`` runs on the host kernel when it has every feature the lab declares
(probed for real, see :mod:`wirelab.kernel.probe`), and otherwise re-runs the same
command inside UML with ``--kernel host`` (inside the guest, "host" is the UML
kernel itself).  ``host`` refuses, naming what is missing, when the host lacks
a feature; ``uml`` always boots a guest.
"""
from __future__ import annotations

import fcntl
import os
import sys
import time
from functools import lru_cache

from wirelab import settings
from wirelab.errors import BadInput, EnvironmentProblem
from wirelab.kernel import uml

CHOICES = ("auto", "host", "uml")
#: What ``wirelab exec`` assumes a command may need when it declares nothing.
FULL_LAB = frozenset({"netns", "netem", "htb", "tbf", "openvswitch"})


@lru_cache(maxsize=1)
def host_features() -> dict[str, dict]:
    from wirelab.kernel.probe import kernel_features
    return kernel_features()


def missing_on_host(needs) -> list[str]:
    feats = host_features()
    return sorted(n for n in needs if not feats.get(n, {}).get("ok"))


def resolve(requested: str, needs) -> tuple[str, str]:
    """Return ("host" | "uml", why) for a lab needing NEEDS."""
    if requested not in CHOICES:
        raise BadInput(f"unknown kernel backend {requested!r}; allowed: {', '.join(CHOICES)}")
    if settings.inside_guest():
        idle = (settings.guest() or {}).get("idle", "sleep")
        return "host", f"already inside the UML guest (kernel {os.uname().release}, idle {idle})"
    needs = set(needs) | {"netns"}
    missing = missing_on_host(needs)
    if requested == "uml":
        name = settings.current().uml_kernel
        return "uml", f"requested with --kernel uml{':' + name if name else ''}"
    if requested == "host":
        if missing:
            raise EnvironmentProblem(
                f"the host kernel ({os.uname().release}) lacks {', '.join(missing)}, which this "
                "lab needs; use --kernel auto or --kernel uml to run it in User-Mode Linux")
        return "host", "requested with --kernel host"
    if not missing:
        return "host", f"the host kernel has everything needed ({', '.join(sorted(needs))})"
    ok, why = uml.available()
    if not ok:
        raise EnvironmentProblem(
            f"the host kernel lacks {', '.join(missing)} and User-Mode Linux is unavailable: "
            f"{why}. Run `sudo make setup` (installs user-mode-linux).")
    return "uml", f"the host kernel lacks {', '.join(missing)}"


def guest_argv(argv: list[str]) -> list[str]:
    """Our own command line for the guest: ARGV (the subcommand and its options) with
    the backend forced to the guest's own kernel, this process's settings as flags,
    run by this same Python."""
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg == "--kernel":
            skip = True
            continue
        if arg.startswith("--kernel="):
            continue
        out.append(arg)
    # Right after the subcommand's name: before any command words of `exec`.
    out[1:1] = ["--kernel", "host"]
    conf = settings.current()
    flags = ["--results-dir", str(conf.results_dir)] + (["-v"] if conf.verbose else [])
    return [sys.executable, "-m", "wirelab", *flags, *out]


class HostLock:
    """One lab at a time on this machine: two labs would share 2 CPUs and
    make each other's timings lie.  Held across a UML guest's lifetime."""

    def __init__(self, wait_s: float = 600.0):
        self.wait_s = wait_s
        self.path = settings.current().state_dir / "lab.lock"
        self.fd = -1

    def __enter__(self):
        os.makedirs(self.path.parent, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait_s
        announced = False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    owner = os.pread(self.fd, 32, 0).decode(errors="replace").strip()
                    os.close(self.fd)
                    raise EnvironmentProblem(
                        f"another wirelab lab (pid {owner or '?'}) has held {self.path} for "
                        f"{self.wait_s:g} s; wait for it or stop it") from None
                if not announced:
                    print("wirelab: waiting for another lab on this machine to finish...",
                          file=sys.stderr)
                    announced = True
                time.sleep(0.2)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def run_in_uml(argv: list[str], timeout_s: float | None = None,
               read_paths: list[str] | None = None,
               stdout_fd: int | None = None) -> uml.UmlResult:
    """Re-run our own command line inside a UML guest; return how it ended (its exit
    code, and the lines it left for the host, e.g. run directories to plot).  STDOUT_FD:
    where the guest's stdout goes (default: ours).

    The UML guest is listed in a ledger while it runs (``wirelab clean`` kills
    it if we are SIGKILLed and PR_SET_PDEATHSIG somehow did not)."""
    from wirelab.lab.ledger import Ledger, new_tag, proc_starttime
    ledger = Ledger(new_tag())
    item: dict = {}

    def on_start(pid: int, ctl: str) -> None:
        # UML runs in a session of its own (its pid is the session id): `wirelab clean`
        # ends every process of that session started no earlier than it, and removes
        # the control directory.
        item.update(kind="uml", pid=pid, sid=pid, starttime=proc_starttime(pid), ctl=ctl)
        ledger.add(item)
    try:
        result = uml.run(guest_argv(argv), timeout_s=timeout_s, on_start=on_start,
                         read_paths=read_paths, stdout_fd=stdout_fd)
    finally:
        ledger.remove(item)
        ledger.close()
    if settings.current().verbose:
        print(f"wirelab: UML guest booted in {result.boot_s:.2f} s, ran {result.total_s:.2f} s",
              file=sys.stderr)
    return result
