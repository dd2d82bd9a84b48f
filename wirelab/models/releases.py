"""Which kernel releases a model holds for.  A model that knows the rule of only some
releases refuses the others (exit 3, naming the release and the rule) rather than
silently applying one release's rule to another."""
from __future__ import annotations

import re

from wirelab.errors import EnvironmentProblem


class ModelOutOfRange(EnvironmentProblem):
    """The running kernel is outside the releases a model knows."""


def version(kernel: dict) -> tuple[int, int]:
    """(major, minor) of the kernel facts' release ("6.1.176" -> (6, 1))."""
    m = re.match(r"(\d+)\.(\d+)", str(kernel.get("release", "")))
    if m is None:
        raise ModelOutOfRange(f"kernel release {kernel.get('release')!r} is not a version")
    return int(m.group(1)), int(m.group(2))


def require(kernel: dict, model: str, *, before: tuple[int, int] | None = None,
            since: tuple[int, int] | None = None, why: str = "") -> None:
    """Refuse unless the kernel's release is in [SINCE, BEFORE)."""
    v = version(kernel)
    if (before is not None and v >= before) or (since is not None and v < since):
        lo = f"{since[0]}.{since[1]}" if since else ""
        hi = f"{before[0]}.{before[1]}" if before else ""
        span = (f"{lo} up to (not including) {hi}" if lo and hi else
                f"before {hi}" if hi else f"{lo} and later")
        raise ModelOutOfRange(f"{model} holds for kernels {span}; this is "
                              f"{kernel.get('release')}" + (f": {why}" if why else ""))
