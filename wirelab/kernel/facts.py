"""What a prediction may read about the kernel that runs the lab: its release, its tick
(HZ), the effective sysctls inside a lab namespace, and the kernel-wide ones.

It also gives the slab caches a connection allocates: their slot sizes and how SLUB
merged them (wirelab.measure.slab), read where the lab runs (/proc/slabinfo is root's).

Predictions are functions of these facts, read at run time and recorded in the run's
manifest; nothing a model needs is assumed where the kernel can say it.
"""
from __future__ import annotations

import fcntl
import gzip
import os
import socket
import struct
import time
from functools import lru_cache

from wirelab.lab import netns
from wirelab.lab.sysctl import read_global, sysctl_path
from wirelab.measure import slab, tcpinfo

#: Read in a lab namespace and recorded, whatever the experiment sets.
RECORDED_SYSCTLS = (
    "net.ipv4.tcp_congestion_control", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_timestamps", "net.ipv4.tcp_sack", "net.ipv4.tcp_window_scaling",
    "net.ipv4.tcp_syn_retries", "net.ipv4.tcp_synack_retries", "net.ipv4.tcp_fastopen",
    "net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_no_metrics_save",
    "net.ipv4.tcp_syn_linear_timeouts", "net.core.default_qdisc", "net.ipv4.ip_forward",
    "net.ipv4.tcp_adv_win_scale", "net.ipv4.tcp_app_win", "net.ipv4.tcp_moderate_rcvbuf",
    "net.ipv4.tcp_mem", "net.ipv4.tcp_retries2", "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_tw_reuse", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_recovery",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_pingpong_thresh",
)
#: Kernel-wide (not per namespace): read once, in the lab process's own namespace.
GLOBAL_SYSCTLS = ("net.core.rmem_max", "net.core.wmem_max", "net.core.somaxconn")
TIMER_LIST = "/proc/timer_list"
#: Slab caches recorded (kernel["slab"]): what a TCP socket end, its file, its port, its skbs
#: and its TIME_WAIT allocate.  A cache the kernel lacks is absent.
SLAB_CACHES = ("TCP", "sock_inode_cache", "filp", "dentry", "lsm_inode_cache", "lsm_file_cache",
               "tcp_bind_bucket", "tcp_bind2_bucket", "skbuff_head_cache", "skbuff_small_head",
               "tw_sock_TCP")


SIOCGIFMTU = 0x8921


def read(ns: str) -> dict:
    """The facts a prediction reads, with the sysctls as seen inside namespace NS, the
    MTU of its first interface, and what a loopback connection there shows of TCP's
    constants: the initial congestion window and the minimum RTO; and the SLAB_CACHES
    (slab.caches: {} where /proc/slabinfo is unreadable)."""
    sysctls = {}
    with netns.entered(ns):
        for name in RECORDED_SYSCTLS:
            path = sysctl_path(name)
            if path.exists():
                sysctls[name] = path.read_text().strip()
        mtu = _first_mtu()
        probe = _loopback_tcp()
    glob = {}
    for name in GLOBAL_SYSCTLS:
        try:
            glob[name] = read_global(name)
        except OSError:
            continue
    hz = tick()["hz"]
    out = {"release": os.uname().release, "hz": hz, "sysctls": sysctls, "global": glob,
           "mtu": mtu, "iw_segs": probe["iw_segs"], "slab": slab.caches(SLAB_CACHES)}
    if hz:
        # icsk_rto = ceil((srtt + rto_min) / tick) ticks with 0 < srtt << tick on loopback:
        # the minimum RTO is the RTO less one tick.
        out["rto_min_ms"] = probe["rto_ms"] - 1000.0 / hz
    return out


def _first_mtu() -> int | None:
    """The MTU of this namespace's first interface that is not loopback."""
    names = [n for _, n in socket.if_nameindex() if n != "lo"]
    if not names:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16si12x", names[0].encode()[:15], 0)
        return struct.unpack("16si12x", fcntl.ioctl(s, SIOCGIFMTU, req))[1]


def _loopback_tcp() -> dict:
    """One loopback connection in the calling thread's namespace: the accepted socket's
    cwnd before it sends (the initial window; the loopback route sets no initcwnd) and
    the client's RTO after one round trip (the minimum RTO plus at most one tick).

    The client closes first and the server after reading its EOF, so the only TIME_WAIT
    left is the client's, on a port connect() chose: a port the listener took with bind()
    would stay barred from connect() for 60 s in this namespace, one fewer in the
    ephemeral pool an experiment counts ([15])."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        with socket.create_connection(srv.getsockname(), timeout=5) as cli:
            conn, _ = srv.accept()
            with conn:
                iw = tcpinfo.read(conn)["snd_cwnd"]
                cli.sendall(b"x")
                conn.recv(1)
                conn.sendall(b"y")
                cli.recv(1)
                rto_ms = tcpinfo.read(cli)["rto"] / 1000.0
                cli.close()
                conn.settimeout(5)
                conn.recv(1)                # the client's FIN: the server closes second
    return {"iw_segs": iw, "rto_ms": rto_ms}


# --- the tick -------------------------------------------------------------------

def parse_jiffies(text: str) -> int:
    """The ``jiffies:`` value of /proc/timer_list text."""
    for line in text.splitlines():
        if line.startswith("jiffies:"):
            return int(line.split()[1])
    raise LookupError("no 'jiffies:' line in timer_list")


def read_jiffies() -> int:
    """The kernel's jiffies counter now (ticks since boot, offset)."""
    with open(TIMER_LIST) as f:
        for line in f:  # it follows CPU 0's timers: stop there, not at EOF
            if line.startswith("jiffies:"):
                return parse_jiffies(line)
    raise LookupError(f"no 'jiffies:' line in {TIMER_LIST}")


def measure_jiffy_ms(ticks: int = 10, timeout_s: float = 5.0) -> float:
    """The tick length, measured: the time between two edges of the jiffies counter
    TICKS apart, found by polling it (each read ~0.5 ms under UML, so about 1% over
    10 ticks at HZ=100)."""
    deadline = time.monotonic() + timeout_s

    def next_edge(after: int) -> tuple[int, float]:
        while True:
            j, t = read_jiffies(), time.monotonic()
            if j > after:
                return j, t
            if t > deadline:
                raise TimeoutError(f"the jiffies counter did not move within {timeout_s:g} s")
    j0, t0 = next_edge(read_jiffies())
    j1, t1 = next_edge(j0 + ticks - 1)
    return (t1 - t0) * 1000.0 / (j1 - j0)


@lru_cache(maxsize=1)
def tick() -> dict:
    """The kernel's tick rate (CONFIG_HZ): from /proc/config.gz where the kernel has
    it, else measured from the jiffies counter over 0.3 s and rounded to the nearest
    configurable value.  Delayed-ACK and RTO minimums are whole jiffies."""
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            for line in f:
                if line.startswith("CONFIG_HZ="):
                    return {"hz": int(line.split("=")[1]), "source": "/proc/config.gz"}
    except OSError:
        pass
    try:
        j0, t0 = read_jiffies(), time.monotonic()
        time.sleep(0.3)
        j1, t1 = read_jiffies(), time.monotonic()
    except (OSError, LookupError):
        return {"hz": None, "source": "unknown (no /proc/config.gz or /proc/timer_list)"}
    rate = (j1 - j0) / (t1 - t0)
    hz = min((100, 250, 300, 1000), key=lambda h: abs(h - rate))
    return {"hz": hz, "source": f"{TIMER_LIST}: {rate:.1f} jiffies/s measured"}
