"""One settings object for a wirelab process, built from the command line's flags and
the environment, read where it is needed (no module computes a path at import time).

User settings (flags win over the environment):

======================  ========================  ====================================
flag                    environment               default
======================  ========================  ====================================
``--results-dir DIR``   ``WIRELAB_RESULTS``       ``./results``
(none)                  ``WIRELAB_STATE_DIR``     ``/run/wirelab`` (ledgers, the lab lock)
(none)                  ``WIRELAB_CACHE_DIR``     ``/var/cache/wirelab`` (built helpers)
(none)                  ``WIRELAB_UML_BINARY``    ``/usr/bin/linux.uml``
(none)                  ``WIRELAB_UML_MEM_MB``    1024 (128 to 16384)
(none)                  ``WIRELAB_UML_MODULES``   none: modules to load at guest boot
``--kernel uml:X``      ``WIRELAB_UML_KERNEL``    the system's: which UML kernel (6.1, 6.12)
(none)                  ``WIRELAB_KERNELS_DIR``   ``build/kernels``: where fetched kernels live
(none)                  ``WIRELAB_KEEP_UML_CTL``  0: keep a guest's control directory
``-v``                  ``WIRELAB_VERBOSE``       0
======================  ========================  ====================================

The host-to-guest protocol is not a user setting: it travels in the one internal
variable :data:`GUEST_ENV` (JSON), set only inside a User-Mode Linux guest.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from wirelab.errors import BadInput, EnvironmentProblem

#: The internal host-to-guest variable: {"outputs": path, "stderr_tty": bool}.
GUEST_ENV = "WIRELAB_GUEST"
UML_MEM_RANGE_MB = (128, 16384)


@dataclass(frozen=True)
class Settings:
    results_dir: Path
    state_dir: Path
    cache_dir: Path
    uml_binary: Path
    uml_mem_mb: int
    uml_modules: str
    keep_uml_ctl: bool
    uml_kernel: str
    uml_idle: str
    verbose: bool

    def env(self) -> dict[str, str]:
        """These settings as environment variables (for a child wirelab)."""
        return {"WIRELAB_RESULTS": str(self.results_dir), "WIRELAB_STATE_DIR": str(self.state_dir),
                "WIRELAB_CACHE_DIR": str(self.cache_dir),
                "WIRELAB_UML_BINARY": str(self.uml_binary),
                "WIRELAB_UML_MEM_MB": str(self.uml_mem_mb),
                "WIRELAB_UML_MODULES": self.uml_modules,
                "WIRELAB_KEEP_UML_CTL": str(int(self.keep_uml_ctl)),
                "WIRELAB_UML_KERNEL": self.uml_kernel,
                "WIRELAB_UML_IDLE": self.uml_idle,
                "WIRELAB_VERBOSE": str(int(self.verbose))}


def _flag(environ, name: str) -> bool:
    value = environ.get(name, "0").strip().lower()
    if value in ("", "0", "no", "false"):
        return False
    if value in ("1", "yes", "true"):
        return True
    raise BadInput(f"{name}={value!r}: allowed 0 or 1")


def _mem_mb(environ) -> int:
    raw = environ.get("WIRELAB_UML_MEM_MB", "1024")
    lo, hi = UML_MEM_RANGE_MB
    try:
        value = int(raw)
    except ValueError:
        raise EnvironmentProblem(f"WIRELAB_UML_MEM_MB={raw!r} is not a whole number of MiB "
                                 f"(allowed: {lo}-{hi})") from None
    if not lo <= value <= hi:
        raise EnvironmentProblem(f"WIRELAB_UML_MEM_MB={value} is outside {lo}-{hi}")
    return value


#: What a UML guest's CPU does when it has nothing to run (WIRELAB_UML_IDLE): "poll" keeps
#: it busy with a lowest-priority spinner, so the guest's timers fire on a running host
#: process; "sleep" lets it sleep until the next timer (the host then has to wake it);
#: empty: poll for measurements, sleep for an interactive session.
UML_IDLE_CHOICES = ("", "poll", "sleep")


def _idle(environ) -> str:
    value = environ.get("WIRELAB_UML_IDLE", "").strip().lower()
    if value not in UML_IDLE_CHOICES:
        raise BadInput(f"WIRELAB_UML_IDLE={value!r}: allowed poll, sleep, or empty (poll for "
                       "measurements, sleep at an interactive terminal)")
    return value


def from_environment(environ=None, *, results_dir: str | Path | None = None,
                     verbose: bool | None = None) -> Settings:
    """Settings from ENVIRON (os.environ by default), flags on top."""
    env = os.environ if environ is None else environ
    results = results_dir if results_dir is not None else env.get("WIRELAB_RESULTS") or "results"
    return Settings(
        results_dir=Path(os.path.abspath(results)),
        state_dir=Path(env.get("WIRELAB_STATE_DIR") or "/run/wirelab"),
        cache_dir=Path(env.get("WIRELAB_CACHE_DIR") or "/var/cache/wirelab"),
        uml_binary=Path(env.get("WIRELAB_UML_BINARY") or "/usr/bin/linux.uml"),
        uml_mem_mb=_mem_mb(env),
        uml_modules=env.get("WIRELAB_UML_MODULES", ""),
        keep_uml_ctl=_flag(env, "WIRELAB_KEEP_UML_CTL"),
        uml_kernel=env.get("WIRELAB_UML_KERNEL", "").strip(),
        uml_idle=_idle(env),
        verbose=_flag(env, "WIRELAB_VERBOSE") if verbose is None else verbose)


_current: Settings | None = None


def current() -> Settings:
    """This process's settings (from the environment until :func:`configure`)."""
    global _current
    if _current is None:
        _current = from_environment()
    return _current


def configure(**flags) -> Settings:
    """Settle this process's settings: the environment, then the CLI's FLAGS."""
    global _current
    _current = from_environment(**flags)
    return _current


def override(**fields) -> Settings:
    """The current settings with FIELDS replaced (tests, embedding)."""
    global _current
    _current = replace(current(), **fields)
    return _current


def reset() -> None:
    global _current
    _current = None


# --- the host-to-guest protocol ------------------------------------------------

def guest() -> dict | None:
    """What the host told this process when it runs inside a UML guest, else None."""
    raw = os.environ.get(GUEST_ENV)
    return json.loads(raw) if raw else None


def inside_guest() -> bool:
    return guest() is not None


def require_root() -> None:
    """Labs create network namespaces: EnvironmentProblem (exit 3) unless root."""
    if os.geteuid() != 0:
        raise EnvironmentProblem("labs create network namespaces and need root: run with sudo")
