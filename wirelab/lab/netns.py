"""Network namespaces, in-process.

Named namespaces (``/run/netns/NAME``, the same place ``ip netns`` uses, so a
student can ``ip netns exec wl1a2b-h1 bash`` into a running lab) are created,
entered and removed with ``unshare(2)``, ``setns(2)`` and ``mount(2)`` through
ctypes.  Nothing here forks or execs: inside User-Mode Linux a process start
costs 20-70 ms, and a lab builds dozens of namespaces.

Namespaces are per *thread* in Linux, so :func:`entered` switches only the
calling thread and always switches back.  A socket keeps the namespace it was
created in, which is how the lab makes netlink sockets and test sockets for
every host from one Python thread.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _check(ret: int, what: str, name: str = "") -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} failed: {os.strerror(err)}", name)


def ns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def _ensure_run_dir() -> None:
    """Make /run/netns a shared mount point, as iproute2 does, so a namespace
    bind-mounted there is visible to every mount namespace."""
    os.makedirs(NETNS_RUN_DIR, exist_ok=True)
    if _libc.mount(b"", NETNS_RUN_DIR.encode(), b"none", MS_SHARED | MS_REC, None) == 0:
        return
    _check(_libc.mount(NETNS_RUN_DIR.encode(), NETNS_RUN_DIR.encode(), b"none",
                       MS_BIND | MS_REC, None), "bind /run/netns")
    _check(_libc.mount(b"", NETNS_RUN_DIR.encode(), b"none", MS_SHARED | MS_REC, None),
           "share /run/netns")


def setns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


def create(name: str) -> None:
    """Create the named namespace NAME; raise FileExistsError if it exists."""
    _ensure_run_dir()
    path = ns_path(name)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    os.close(fd)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare", name)
        try:
            _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none",
                               MS_BIND, None), "bind namespace", name)
        finally:
            setns(home)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    finally:
        os.close(home)


def remove(name: str) -> None:
    """Unmount and unlink the named namespace.  The kernel frees it when the
    last process and socket in it are gone."""
    path = ns_path(name)
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"umount {path}: {os.strerror(err)}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def exists(name: str) -> bool:
    return os.path.exists(ns_path(name))


def inode(name: str) -> int:
    return os.stat(ns_path(name)).st_ino


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the body with the calling thread inside namespace NAME."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(ns_path(name), os.O_RDONLY)
    try:
        setns(target)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(target)
        os.close(home)


@contextlib.contextmanager
def throwaway() -> Iterator[None]:
    """Run the body in a fresh anonymous namespace that vanishes afterwards
    (used by probes: nothing is named, nothing can be left behind)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare")
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(home)


def preexec_fresh() -> None:
    """A ``preexec_fn`` that puts a child process in a new, empty network namespace
    of its own (gone when it exits): for probes that must not touch a real one."""
    _check(_libc.unshare(CLONE_NEWNET), "unshare")


def preexec_enter(name: str):
    """A ``preexec_fn`` that moves a child process into NAME before exec:
    one process start instead of ``ip netns exec``'s two."""
    path = ns_path(name)

    def _enter() -> None:
        fd = os.open(path, os.O_RDONLY)
        setns(fd)
        os.close(fd)
    return _enter


def pids_in(ns_inode: int) -> list[int]:
    """PIDs of processes whose network namespace is the one with NS_INODE
    (found through /proc/PID/ns/net, never by program name)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino == ns_inode:
                pids.append(int(entry))
        except OSError:
            continue
    return pids
