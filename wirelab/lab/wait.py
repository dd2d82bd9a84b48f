"""Waiting for readiness: poll a condition with a deadline, never a bare sleep."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(condition: Callable[[], T], timeout_s: float, what: str,
         interval_s: float = 0.01) -> T:
    """Call CONDITION until it returns something truthy; return that.  Raise
    TimeoutError naming WHAT after TIMEOUT_S.  The interval backs off to 0.1 s."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)
        interval_s = min(interval_s * 1.5, 0.1)
