"""Exceptions, each mapped to one exit status by the CLI (and only there).

0 the run completed and matches its prediction, 1 completed but deviates,
2 bad input, 3 the environment cannot run it, 4 the lab failed at run time,
130 interrupted.
"""


class WirelabError(Exception):
    exit_code = 4


class BadInput(WirelabError):
    """A user error: an unknown name or a value outside what is allowed."""
    exit_code = 2


class EnvironmentProblem(WirelabError):
    """The machine lacks something a lab needs (a package, a kernel feature)."""
    exit_code = 3


class LabError(WirelabError):
    """Building or running a lab failed."""
    exit_code = 4


class GlobalSysctlError(BadInput):
    """A sysctl that is global to the kernel, not per network namespace."""


class TimedOut(WirelabError):
    """A command or guest ran past its deadline and was stopped (as timeout(1))."""
    exit_code = 124
