"""Which kernel releases a model holds for.  A model that knows the rule of only some
releases refuses the others (exit 3, naming the release and the rule) rather than
silently applying one release's rule to another.

A model also says which release's rule it applied (:func:`used`; :func:`require` does it
for the models it lets through): the runner collects these per grid point into the
manifest (``points[i].rules``), and a run across kernels shows them side by side."""
from __future__ import annotations

import contextlib
import contextvars
import re

from wirelab.errors import EnvironmentProblem


class ModelOutOfRange(EnvironmentProblem):
    """The running kernel is outside the releases a model knows."""


_rules: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("rules", default=None)


@contextlib.contextmanager
def recording():
    """Collect the rules the models apply inside the block (a list, in order, once each)."""
    rules: list[str] = []
    token = _rules.set(rules)
    try:
        yield rules
    finally:
        _rules.reset(token)


def used(model: str, rule: str) -> None:
    """Say that MODEL applied RULE (e.g. "the rule of kernels before 6.6 (6.1.176)")."""
    rules = _rules.get()
    text = f"{model}: {rule}"
    if rules is not None and text not in rules:
        rules.append(text)


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
        span = _span(since, before)
        raise ModelOutOfRange(f"{model} holds for kernels {span}; this is "
                              f"{kernel.get('release')}" + (f": {why}" if why else ""))
    used(model, f"the rule of kernels {_span(since, before)} ({kernel.get('release')})")


def _span(since: tuple[int, int] | None, before: tuple[int, int] | None) -> str:
    lo = f"{since[0]}.{since[1]}" if since else ""
    hi = f"{before[0]}.{before[1]}" if before else ""
    return (f"{lo} up to (not including) {hi}" if lo and hi else
            f"before {hi}" if hi else f"{lo} and later")
