"""Running a program in a lab node with files of the lab's own bound over the system's.

A lab node is a network namespace only: its processes see the machine's /etc.  ``ip
netns exec`` gives a process its own resolv.conf by entering a private *mount*
namespace and bind-mounting ``/etc/netns/NAME/resolv.conf`` over ``/etc/resolv.conf``;
that needs files under the machine's /etc.  :func:`preexec` does the same without
touching /etc: the child (between fork and exec, so no extra process start) enters the
node's network namespace and a fresh mount namespace, makes every mount private there
(nothing propagates back to the machine), and bind-mounts each ``(source, target)``.
The system's files are never written and the binds vanish with the process.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable

from wirelab.lab import netns

CLONE_NEWNS = 0x00020000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

Binds = list[tuple[str, str]]


def _mount(src: str | None, dst: str, flags: int) -> None:
    ret = _libc.mount(src.encode() if src else None, dst.encode(), None, flags, None)
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} on {dst}: {os.strerror(err)}")


def preexec(ns: str, binds: Binds | None = None) -> Callable[[], None]:
    """A ``preexec_fn``: enter network namespace NS; with BINDS, then a private mount
    namespace in which each (source, target) is bound over the target."""
    enter = netns.preexec_enter(ns)
    if not binds:
        return enter
    pairs = [(str(src), str(dst)) for src, dst in binds]

    def _pre() -> None:
        enter()
        if _libc.unshare(CLONE_NEWNS) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare(CLONE_NEWNS): {os.strerror(err)}")
        # Private first: a bind made in a shared peer group would appear in the
        # machine's own mount namespace.
        _mount(None, "/", MS_REC | MS_PRIVATE)
        for src, dst in pairs:
            _mount(src, dst, MS_BIND)
    return _pre
