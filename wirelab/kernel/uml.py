"""Run one command inside Debian's User-Mode Linux kernel.

Why: the development and CI machines' kernel has no netem, fq, fq_codel or
openvswitch and cannot load modules.  ``linux.uml`` boots a full 6.1 kernel as
an ordinary process in about two seconds, with the host filesystem as its root
and a module tree that has all of them.

How a boot is wired (see ``guest-init.sh`` for the guest half):

* root = host ``/`` over hostfs, **read-only**; the guest puts a tmpfs
  overlay on top, so its writes stay in the guest; only the project directory
  and a per-boot control directory are written through;
* the command, its working directory and environment go in as a generated
  script (every word ``shlex.quote``d) in the control directory; the exit
  status comes back as a file there;
* the guest's stdout and stderr are UML consoles tty1/tty2 wired to duplicates
  of our own stdout/stderr, so output streams live; the kernel's own console
  goes to a log file that is shown only when the guest fails to start;
* UML runs in its own session with ``PR_SET_PDEATHSIG``: Ctrl-C or a timeout
  here sends it SIGTERM (UML's handler kills every guest process and exits),
  then SIGKILL to the whole process group after a grace period.  If we die,
  the kernel kills it: UML is PID 1 of a PID namespace of its own (util-linux
  ``unshare --pid --fork --kill-child``, itself under our death signal), so
  when it dies the kernel also ends its helper processes and every guest
  process, which no death signal reaches.  No UML process outlives the command.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

from wirelab import settings
from wirelab.errors import BadInput, EnvironmentProblem, TimedOut
from wirelab.kernel import pace

MODULE_ROOT = Path("/usr/lib/uml/modules")
INIT_SCRIPT = Path(__file__).with_name("guest-init.sh")
#: Modules need no preloading: the guest pivots into a root where
#: /lib/modules/<release> is the UML tree, so the kernel autoloads netem,
#: openvswitch, bbr ... on first use.  WIRELAB_UML_MODULES can name extras.
#: Environment variables never passed into the guest.
_ENV_SKIP = {"TERM_SESSION_ID", "SSH_AUTH_SOCK", "DISPLAY", "XAUTHORITY", "OLDPWD", "PWD",
             "SHLVL", "_", "LS_COLORS"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # what dash accepts in `export`
PR_SET_PDEATHSIG = 1
# UML as PID 1 of a new PID namespace: when it dies, however, the kernel kills its helper
# processes too (they carry no death signal).  unshare blocks SIGINT/SIGTERM while it waits,
# so our SIGTERM reaches UML's own handler; it exits as UML did.
PID_NAMESPACE = ["unshare", "--pid", "--fork", "--kill-child"]
GUEST_CTL = "/run/wirelab-ctl"  # where guest-init.sh mounts the control directory
XSTATE_SHIM_SOURCE = Path(__file__).with_name("xstate_shim.c")
IDLE_SHIM_SOURCE = Path(__file__).with_name("idle_shim.c")


@dataclass
class UmlResult:
    returncode: int
    boot_s: float          # from starting linux.uml to the guest starting the command
    total_s: float
    log: str = field(repr=False, default="")
    #: lines the guest appended to /run/wirelab-ctl/outputs (e.g. run dirs)
    outputs: list[str] = field(default_factory=list)


def project_dir() -> Path | None:
    """The checkout this wirelab runs from (written through in UML), or None when it
    is installed (not editable)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "setup.cfg").is_file() and (root / "wirelab").is_dir() else None


def available() -> tuple[bool, str]:
    """Whether the selected UML kernel can be booted here, and if not, why (no boot)."""
    from wirelab.kernel import kernels
    name = settings.current().uml_kernel
    binary = settings.current().uml_binary
    if not name and not os.access(binary, os.X_OK):
        return False, f"{binary} is missing: install Debian's user-mode-linux package"
    try:
        k = kernels.select(name)
    except (EnvironmentProblem, BadInput) as e:
        return False, str(e) if name else f"no UML module tree under {MODULE_ROOT}"
    if not os.access("/dev/shm", os.W_OK):
        return False, "/dev/shm is not writable (UML keeps guest memory there)"
    others = [f"uml:{n}" for n in kernels.available_kernels() if n != k.name]
    return True, (f"{k.binary}, modules {k.release} ({k.origin})"
                  + (f"; also {', '.join(others)}" if others else ""))


def xstate_shim() -> Path | None:
    """The LD_PRELOAD library that lets UML 6.1 run on CPUs with a large
    XSAVE area (AVX-512, AMX): see xstate_shim.c.  None when there is no C compiler
    (the guest then boots only where the host's XSAVE area is the 832 bytes UML knows)."""
    return _shim(XSTATE_SHIM_SOURCE, "xstate")


def idle_shim() -> Path | None:
    """The LD_PRELOAD library that makes an idle guest poll (idle_shim.c, idle_mode);
    None when there is no C compiler."""
    return _shim(IDLE_SHIM_SOURCE, "idle")


def _shim(source: Path, name: str) -> Path | None:
    """SOURCE built with the system's C compiler on first use, named by a hash of it."""
    import hashlib
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    cache = settings.current().cache_dir
    lib = cache / f"uml-{name}-{digest}.so"
    if lib.exists():
        return lib
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    cache.mkdir(parents=True, exist_ok=True)
    tmp = lib.with_suffix(f".{os.getpid()}.tmp")
    res = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(source), "-ldl"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise EnvironmentProblem(f"cannot build the UML {name} shim with {cc}: "
                                 f"{res.stderr.strip()[-400:]}")
    os.replace(tmp, lib)
    return lib


def idle_mode(interactive: bool) -> str:
    """What the guest's CPU does when idle: WIRELAB_UML_IDLE, else "poll" for a command
    that measures and "sleep" at an interactive terminal.

    A sleeping UML guest waits for its next timer in sigsuspend(), so every timer it
    arms (netem's delay, TCP's timers, a sleeping reader's wake-up) fires only once the
    host has woken its process, and that wake-up is as slow as the host makes it: with a
    lowest-priority task running on the host, netem's 50 ms round trip came out 2 ms late
    at the median (benchmarks/netem_timing.py), and a CI run saw the UML timings 0.5-1.8
    ms late.  Polling (idle_shim.c) keeps the UML process running, so the guest's timers
    fire on time whatever the host does; it costs one host CPU while the guest runs."""
    return settings.current().uml_idle or ("sleep" if interactive else "poll")

def command_script(argv: list[str], cwd: str, env: dict[str, str], idle: str = "sleep") -> str:
    """The guest-side script that runs ARGV: every word quoted, no shell
    interpretation of anything the caller passed."""
    lines = ["# generated by wirelab: runs one command inside the UML guest"]
    for key in sorted(env):
        if key in _ENV_SKIP or not _ENV_NAME.fullmatch(key):
            continue
        lines.append(f"export {key}={shlex.quote(env[key])}")
    protocol = {"outputs": f"{GUEST_CTL}/outputs", "stderr_tty": sys.stderr.isatty(),
                "idle": idle}
    lines.append(f"export {settings.GUEST_ENV}={shlex.quote(json.dumps(protocol))}")
    lines.append(f"echo $$ > {GUEST_CTL}/pid  # the session the host's Ctrl-C goes to")
    lines.append(f"cd {shlex.quote(cwd)} 2>/dev/null || cd /")
    lines.append("exec " + " ".join(shlex.quote(a) for a in argv))
    return "\n".join(lines) + "\n"


#: Host directories never written through from a guest.
_SYSTEM_DIRS = ("/", "/etc", "/usr", "/var", "/run", "/tmp", "/boot", "/dev", "/proc", "/sys")


def write_through(results_dir: str, project: str | None) -> list[str]:
    """Host directories besides the project that the guest writes to: the results
    directory when it is outside the project (created here)."""
    path = os.path.realpath(results_dir)
    if project and (path + "/").startswith(project.rstrip("/") + "/"):
        return []
    if path in _SYSTEM_DIRS:
        raise EnvironmentProblem(f"results directory {results_dir!r} would write a system "
                                 "directory through from the UML guest; choose another")
    os.makedirs(path, exist_ok=True)
    return [path]


def visible(paths: list[str], writable: list[str]) -> list[str]:
    """Host directories under /tmp that the guest needs to read (its own /tmp is a
    fresh tmpfs): the Python environment, the working directory, an experiment file's
    folder.  Each is mounted from the host (hostfs), like the writable ones."""
    out: list[str] = []
    for p in paths:
        real = os.path.realpath(p)
        if real.startswith("/tmp/") and not any((real + "/").startswith(w.rstrip("/") + "/")
                                                for w in [*writable, *out]):
            out.append(real)
    return out


def kernel_cmdline(ctl: str, mem_mb: int) -> list[str]:
    return [
        f"mem={mem_mb}M", "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "ro",
        f"init={INIT_SCRIPT}", "quiet", "loglevel=3",
        f"uml_dir={ctl}", f"WIRELAB_CTL={ctl}",
    ]


def _pdeathsig() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _uml_pid(proc: subprocess.Popen) -> int | None:
    """UML's own pid: the one child of the ``unshare`` that PROC is (None once gone)."""
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _kill_group(proc: subprocess.Popen, grace_s: float = 3.0) -> None:
    """SIGTERM the guest (UML's handler tears every guest process down), then SIGKILL
    it, which ends its PID namespace's every process before ``unshare`` (PROC) returns,
    then SIGKILL whatever is left of PROC's process group, then reap."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        pid = _uml_pid(proc)
        if pid is None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


#: How long an interrupted guest command gets to tear its lab down before the guest is
#: halted anyway.
INTERRUPT_GRACE_S = 20.0


def _terminal_size() -> tuple[int, int]:
    size = shutil.get_terminal_size((80, 24))
    return size.lines, size.columns


def _raw_terminal() -> list | None:
    """Put our terminal in raw mode (the guest's own terminal does the line editing,
    the echo and Ctrl-C); the settings to restore, or None if stdin is no terminal."""
    try:
        saved = termios.tcgetattr(0)
    except termios.error:
        return None
    tty.setraw(0, termios.TCSADRAIN)
    return saved


def _interrupt(proc: subprocess.Popen, sig_w: int, signals: list[int]) -> None:
    """Ctrl-C (or SIGTERM) on the host: pass SIGINT to the guest's command (guest-init
    reads the line on tty3), let it tear its lab down and exit, then halt what is left.
    A second signal halts the guest at once."""
    try:
        os.write(sig_w, b"INT\n")
    except OSError:
        pass
    deadline = time.monotonic() + INTERRUPT_GRACE_S
    while proc.poll() is None and len(signals) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    _kill_group(proc)


def run(argv: list[str], *, cwd: str | None = None, env: dict[str, str] | None = None,
        timeout_s: float | None = None, interactive: bool | None = None,
        on_start=None, stdout_fd: int | None = None,
        read_paths: list[str] | None = None) -> UmlResult:
    """Boot a guest, run ARGV in it, return its exit status.

    Raises EnvironmentProblem when UML is missing or the guest never started
    the command.  A timeout or SIGINT/SIGTERM to us halts the guest and
    re-raises (KeyboardInterrupt / TimedOut).  ON_START(pid, control_dir) is called
    with the UML process id, also its session and process group id, and the per-boot
    control directory (for the run's ledger).  READ_PATHS are host folders the
    command reads (an experiment file's folder): mounted read-only in the guest when
    its root does not show them (under /tmp).
    """
    ok, why = available()
    if not ok:
        raise EnvironmentProblem(f"cannot use the UML kernel backend: {why}")
    if not argv:
        raise ValueError("no command given")
    cwd = cwd or os.getcwd()
    env = dict(os.environ if env is None else env)
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty() and stdout_fd is None
    conf = settings.current()
    from wirelab.kernel import kernels
    kernel = kernels.select(conf.uml_kernel)
    project = project_dir()
    proj = str(project) if project else ""
    rw = write_through(str(conf.results_dir), proj or None)
    ro = visible([sys.prefix, cwd, *(read_paths or [])], [proj, *rw] if proj else rw)

    ctl = tempfile.mkdtemp(prefix="wirelab-uml-")
    log_path = os.path.join(ctl, "console.log")
    out_fd = os.dup(sys.stdout.fileno() if stdout_fd is None else stdout_fd)
    err_fd = os.dup(sys.stderr.fileno())
    try:
        rows, cols = _terminal_size() if interactive else (24, 80)
        idle = idle_mode(interactive)
        if idle == "poll" and idle_shim() is None:
            idle = "sleep (no C compiler for the idle shim)"
        Path(ctl, "boot.env").write_text(
            f"PROJECT={shlex.quote(proj)}\nINTERACTIVE={int(interactive)}\n"
            f"MODULES={shlex.quote(conf.uml_modules)}\nROWS={rows}\nCOLS={cols}\n"
            f"MODULE_ROOT={shlex.quote(str(kernel.module_root))}\n")
        Path(ctl, "cmd.sh").write_text(command_script(argv, cwd, env, idle))
        Path(ctl, "rw_dirs").write_text("".join(f"{d}\n" for d in rw))
        Path(ctl, "ro_dirs").write_text("".join(f"{d}\n" for d in ro))
        in_spec = "fd:0" if interactive else "null"
        sig_r, sig_w = os.pipe()      # the host's Ctrl-C, forwarded to the guest's tty3
        cmd = [*PID_NAMESPACE, *kernel.command(), *kernel_cmdline(ctl, conf.uml_mem_mb),
               "con=null", "con0=null,fd:1",
               f"con1={in_spec},fd:{out_fd}", f"con2=null,fd:{err_fd}", f"con3=fd:{sig_r},null"]
        uml_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR": "/dev/shm", "HOME": ctl,
                   "WIRELAB_UML_IDLE": idle}
        shims = [xstate_shim(), idle_shim() if idle == "poll" else None]
        if any(shims):
            uml_env["LD_PRELOAD"] = " ".join(str(p) for p in shims if p is not None)
        t0 = time.monotonic()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, stdin=0 if interactive else subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=uml_env, pass_fds=(out_fd, err_fd, sig_r),
                start_new_session=True, preexec_fn=_pdeathsig, cwd="/")
        os.close(sig_r)
        # How much of a CPU the guest gets, for its runner to judge each trial by (pace.py).
        meter = pace.Meter(proc.pid, os.path.join(ctl, pace.FILE)) if idle == "poll" else None
        if on_start:
            on_start(proc.pid, ctl)
        state = Path(ctl, "state")
        boot_s = None
        deadline = None if timeout_s is None else t0 + timeout_s
        # Signals only set a flag while the guest runs: an exception raised in the middle
        # of Popen.poll() could leave its internal lock held, and the next wait() would
        # hang for ever.
        signals: list[int] = []
        resized: list[int] = []
        main = threading.current_thread() is threading.main_thread()
        old = {s: signal.signal(s, lambda signum, frame: signals.append(signum))
               for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        if interactive and main:
            old[signal.SIGWINCH] = signal.signal(signal.SIGWINCH,
                                                 lambda signum, frame: resized.append(signum))
        saved = _raw_terminal() if interactive else None
        try:
            while proc.poll() is None and not signals:
                if resized:
                    resized.clear()
                    with contextlib.suppress(OSError):
                        os.write(sig_w, "WINCH {} {}\n".format(*_terminal_size()).encode())
                if boot_s is None and state.exists():
                    boot_s = time.monotonic() - t0
                if deadline is not None and time.monotonic() > deadline:
                    raise TimedOut(f"the command in the UML guest did not finish within "
                                   f"{timeout_s:g} s; the guest was halted")
                if meter is not None:
                    meter.tick()
                time.sleep(0.02)
            if signals:
                _interrupt(proc, sig_w, signals)
                raise KeyboardInterrupt(f"signal {signals[0]}")
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            if saved is not None:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
            for s, handler in old.items():
                signal.signal(s, handler)
            os.close(sig_w)
            if meter is not None:
                meter.close()
        # UML has exited; make sure nothing of its process group is left.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        total = time.monotonic() - t0
        if boot_s is None and state.exists():
            boot_s = total
        log_text = Path(log_path).read_text(errors="replace")
        rc_file = Path(ctl, "rc")
        if not rc_file.exists():
            tail = console_excerpt(log_text)
            if "ptrace set fp regs failed" in log_text and shims[0] is None:
                tail += ("\n(this CPU's register state is larger than UML 6.1 knows: install a "
                         "C compiler, e.g. `apt-get install gcc libc6-dev`, so wirelab can "
                         "build its xstate shim)")
            raise EnvironmentProblem(
                "the UML guest stopped before the command finished "
                f"(linux.uml exit status {proc.returncode}); its console said:\n{tail}")
        out_file = Path(ctl, "outputs")
        outputs = out_file.read_text().splitlines() if out_file.exists() else []
        return UmlResult(int(rc_file.read_text().strip() or 255), boot_s or total, total,
                         log_text, outputs)
    finally:
        os.close(out_fd)
        os.close(err_fd)
        if not conf.keep_uml_ctl:
            shutil.rmtree(ctl, ignore_errors=True)


def console_excerpt(log_text: str, keep: int = 8) -> str:
    """What a person needs from a failed boot's console: our init's own
    messages and the panic line first, then the last lines that are not
    stack-trace frames."""
    lines = [ln.rstrip() for ln in log_text.splitlines() if ln.strip()]
    key = [ln for ln in lines if "wirelab-uml:" in ln or "Kernel panic" in ln]
    rest = [ln for ln in lines if not ln.lstrip().startswith(("[<", "<4> [<")) and ln not in key]
    return "\n".join(key + rest[-keep:])
