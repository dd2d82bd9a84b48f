"""[18] socket_memory_per_connection: what a TCP connection costs the kernel, idle and with
unread data, against the slot sizes of the running kernel's slab caches.  h1 opens N
connections to a listener on h2, both ends in this process (2N ends, each with an fd).  A
trial reads /proc/slabinfo around the N connects (idle); has each client send UNREAD_BYTES the
server never reads and reads SO_MEMINFO (ss -m's skmem) of each end (filled); then the server
reads and the client closes first: N TIME_WAIT sockets (closed).  Slab is the whole kernel's:
no other lab runs (host lock), and each delta spans about a second.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import resource
import socket
import struct
import termios
import time
from pathlib import Path
from types import SimpleNamespace

from wirelab.errors import LabError
from wirelab.lab import netns
from wirelab.lab.cgroup import Caps
from wirelab.lab.sysctl import read_global
from wirelab.lab.wait import poll
from wirelab.measure import slab
from wirelab.peers.listener import recv_into_exact
from wirelab.spec import REPORTED, Bars, Metric, Param, Tolerance
from wirelab.topologies.single_link import SingleLink

ID = "socket_memory_per_connection"
ALIASES = ("socket_memory",)
CLAIM = ("An idle TCP socket end costs the slab objects it allocates (about 3.7 KB), a TIME_WAIT "
         "socket 256 B; unread data costs its skbs' truesize on top, charged in whole pages")
SECTION = "§3 'Each socket holds: memory (~3.5KB on Linux)'; §7 '1 million connections: ~3.5GB'"
TEXT_SAYS = "Each socket holds: memory (~3.5KB on Linux) ... 1 million connections: ~3.5GB kernel memory"
TOPOLOGY, TOPOLOGY_PARAMS = SingleLink, ()
NEEDS: set[str] = set()
CAPS = Caps(memory_mb=8192)     # 4,000 filled ends hold ~300 MB; N is sized from 1/16 of the room
PARAMS = [Param("connections_count", default=4000, min=100, max=50000, type=int, grid=(4000, 8000),
                quick=(4000,), help="connections per trial (capped by the fd hard limit and memory)")]
REPEATS = QUICK_REPEATS = 3
PORT, UNREAD_BYTES, MIN_CONNECTIONS, PAGE = 5001, 65536, 2000, os.sysconf("SC_PAGE_SIZE")
SO_MEMINFO = 55             # getsockopt: 9 x u32, what ss -m shows as skmem
MEMINFO = Path("/proc/meminfo")
#: (cache, objects per end): socket() and accept() each make a struct sock (TCP), a socket
#: inode, a struct file (filp) and its dentry; an LSM keeping blobs adds one per inode and file;
#: the client's port takes a bind and a bind2 bucket: half a pair per end.  Absent caches: 0.
END_OBJECTS = (("TCP", 1), ("sock_inode_cache", 1), ("filp", 1), ("dentry", 1), ("lsm_inode_cache", 1),
               ("lsm_file_cache", 1), ("tcp_bind_bucket", 0.5), ("tcp_bind2_bucket", 0.5))
#: an skb's truesize: its struct sk_buff and the small head the sender allocated (6.3+)
SKB_CACHES, TW_CACHE = ("skbuff_head_cache", "skbuff_small_head"), "tw_sock_TCP"
METRICS = [
    # SLUB counts free slots of per-CPU slabs as used: up to ~130 B per end here, either way
    Metric("slab_per_end_bytes", "growth of the caches a socket end allocates, per end",
           Tolerance(abs=0.0, rel=0.03, symmetric=True)),
    Metric("slab_all_per_end_bytes", "growth of every slab cache per end (adds memcg vectors)", REPORTED),
    Metric("time_wait_bytes", "growth of tw_sock_TCP per TIME_WAIT socket", REPORTED),
    # >= one skb; a burst meeting a tail still cloned stays its own: IW/2 = 5 at most (+5.0%)
    Metric("rmem_per_conn_bytes", "truesize of 64 KB unread, per connection (skmem r)",
           Tolerance(0.0, 0.06)),
    Metric("charged_per_conn_bytes", "charged to TCP per connection (skmem r + f + w, whole pages)",
           Tolerance(abs=float(PAGE), rel=0.0)),
]
X = "connections_count"
#: the client: room for three trials' TIME_WAIT ports, and no RST ends one early ([15])
SYSCTLS = {"h1": {"net.ipv4.ip_local_port_range": "10000 65535", "net.ipv4.tcp_rfc1337": "1",
                  "net.ipv4.tcp_max_tw_buckets": "262144"}}
FIGURE = Bars("What does a TCP connection cost the kernel, idle and with 64 KB unread?", (
    ("slab per idle socket end", "slab_per_end_bytes"), ("all slab caches per end", "slab_all_per_end_bytes"),
    ("one TIME_WAIT socket", "time_wait_bytes"), ("64 KB unread: skb truesize", "rmem_per_conn_bytes"),
    ("64 KB unread: charged to TCP", "charged_per_conn_bytes")), x="metric", unit="bytes",
    ylabel="kernel memory", labels={"4000": "4,000 connections", "8000": "8,000 connections"})


def predict(params: dict, kernel: dict) -> dict:
    """Slot sizes of the running kernel's caches (kernel["slab"], read in the lab).  Before
    6.3 the head comes from kmalloc, a size not modelled: idle metrics only."""
    size = {c: v["size_bytes"] for c, v in kernel.get("slab", {}).items()}
    if "TCP" not in size or TW_CACHE not in size:
        raise LabError("no slot sizes of the TCP slab caches in the kernel facts (/proc/slabinfo unread)")
    end = sum(k * size.get(c, 0) for c, k in END_OBJECTS)
    out = {"slab_per_end_bytes": end, "slab_all_per_end_bytes": end, "time_wait_bytes": size[TW_CACHE] * 1.0}
    if set(SKB_CACHES) <= set(size):
        truesize = float(UNREAD_BYTES + size[SKB_CACHES[0]] + size[SKB_CACHES[1]])
        out |= {"rmem_per_conn_bytes": truesize, "charged_per_conn_bytes": PAGE * math.ceil(truesize / PAGE)}
    return {k: float(v) for k, v in out.items()}


def capacity(wanted: int, free_fds: int, predicted: dict, avail_bytes: int) -> tuple[int, int]:
    """(connections to open, to fill): 2 fds each, at twice the predicted cost an eighth of
    the memory the lab may use (AVAIL_BYTES: MemAvailable or its cgroup's room); filled ones
    within half of tcp_mem's low mark (kernel-wide: no pressure)."""
    avail = avail_bytes / 16
    low, cost = int(read_global("net.ipv4.tcp_mem").split()[0]) * PAGE / 2, UNREAD_BYTES + 2 * PAGE
    n = int(min(wanted, (free_fds - 64) // 2, avail / (2 * predicted["slab_per_end_bytes"])))
    return n, int(min(n, low / cost, avail / cost))


def grown(before: dict, after: dict, rows=None) -> float:
    """Bytes of slab objects added between two snapshots, in ROWS (default: every cache)."""
    return float(sum((after[r][0] - before[r][0]) * after[r][1] for r in (rows or after) if r in before))


def sockstat(ns: str) -> dict[str, int]:
    """The TCP line of /proc/net/sockstat in namespace NS (tw is per namespace, mem global)."""
    with netns.entered(ns):
        f = next(x for x in Path("/proc/thread-self/net/sockstat").read_text().splitlines()
                 if x.startswith("TCP:")).split()[1:]
    return dict(zip(f[::2], map(int, f[1::2]), strict=True))


def skmem(s: socket.socket) -> tuple[int, ...]:
    """(bytes to read, SO_MEMINFO: rmem_alloc, rcvbuf, wmem_alloc, sndbuf, fwd_alloc, wmem_queued...)"""
    inq = fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0" * 4)
    return struct.unpack("i9I", inq + s.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36))


def prepare(lab, params: dict, ctx) -> SimpleNamespace:
    (soft, hard), fds = resource.getrlimit(resource.RLIMIT_NOFILE), len(os.listdir("/proc/self/fd"))
    n, filled = capacity(int(params["connections_count"]), hard - fds, ctx.predicted,
                         lab.available_memory_bytes())
    if n < MIN_CONNECTIONS:
        raise LabError(f"only {n} connections fit (fd limit {hard}, memory): slab needs {MIN_CONNECTIONS}")
    if soft < 2 * n + fds + 64:         # this process only, and put back
        resource.setrlimit(resource.RLIMIT_NOFILE, (2 * n + fds + 64, hard))
        lab.undo.push("put the fd limit back",
                      lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))
    ls = lab["h2"].socket()
    lab.undo.push("close the listener", ls.close)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", PORT))
    ls.listen(4096)
    rows = {c: v["row"] for c, v in ctx.kernel["slab"].items()}  # its own, or the one merged into
    st = SimpleNamespace(n=n, filled=filled, listener=ls, held=[], tw=rows[TW_CACHE],
                         socket_rows={rows[c] for c, _ in END_OBJECTS if c in rows})
    lab.undo.push("close the connections", lambda: [s.close() for s in st.held])
    return st


def trial(lab, params: dict, ctx) -> dict:
    st, n, h1, h2 = ctx.state, ctx.state.n, lab["h1"].ns, lab["h2"].ns
    # The last trial's inodes go after an RCU grace period, and a lab torn down just before
    # (its namespaces are cleaned up asynchronously) keeps freeing dentries: wait (<= 10 s)
    # until the socket caches hold still, within 0.05% of what N ends cost, twice running.
    last, still = None, 0
    for _ in range(50):
        now = grown(dict.fromkeys(st.socket_rows, (0, 0)), slab.read(), st.socket_rows)
        still = still + 1 if last is not None and abs(now - last) < 0.0005 * n * ctx.predicted[
            "slab_per_end_bytes"] else 0
        if still >= 2:
            break
        last = now
        time.sleep(0.2)
    s0, m0 = slab.read(), MEMINFO.read_text()
    with netns.entered(h1):             # (sockets live in the namespace they were made in)
        st.held += (clients := [socket.socket() for _ in range(n)])
    servers = []
    for c in clients:                   # idle: N connections, both ends here
        c.settimeout(10)
        c.connect((lab["h2"].ip(), PORT))
        servers.append(st.listener.accept()[0])
        st.held.append(servers[-1])
    s1, m1, tcp1 = slab.read(), MEMINFO.read_text(), sockstat(h2)["mem"]
    m, pairs = st.filled, list(zip(clients, servers, strict=True))[:st.filled]
    for c, _ in pairs:                  # filled: UNREAD_BYTES in the first m server queues
        c.sendall(bytes(UNREAD_BYTES))
    poll(lambda: all(skmem(s)[0] == UNREAD_BYTES and skmem(c)[6] == 0 for c, s in pairs), 20.0,
         f"{UNREAD_BYTES} B in {m} server queues, acknowledged")
    mem, s2, tcp2 = [skmem(x)[1:] for p in pairs for x in p], slab.read(), sockstat(h2)["mem"]
    for _, s in pairs:                  # closed: the server reads, the client closes first
        recv_into_exact(s, memoryview(bytearray(UNREAD_BYTES)))
    tw0, s3 = sockstat(h1)["tw"], slab.read()
    for c in clients:
        c.close()
    for s in servers:
        s.recv(1)                       # the client's FIN: the server closes second
        s.close()
    tw = poll(lambda: (k := sockstat(h1)["tw"] - tw0) >= n and k, 10.0, f"{n} TIME_WAIT sockets in h1")
    s4, kb = slab.read(), [int(t.split("\nSlab:")[1].split()[0]) for t in (m0, m1)]
    charged, rmem = [x[0] + x[4] + x[5] for x in mem], [x[0] for x in mem]
    row = {"slab_per_end_bytes": grown(s0, s1, st.socket_rows) / (2 * n),
           "slab_all_per_end_bytes": grown(s0, s1) / (2 * n), "time_wait_bytes": grown(s3, s4, [st.tw]) / n,
           "rmem_per_conn_bytes": sum(rmem) / m, "charged_per_conn_bytes": sum(charged) / m}
    ctx.raw.write_text("memory.jsonl", json.dumps({      # and the caches that moved by >= n / 20
        "repeat": ctx.repeat, "connections": n, "filled": m, "time_wait": tw, "rows": sorted(st.socket_rows),
        "meminfo_slab_per_end_bytes": (kb[1] - kb[0]) * 1024 / (2 * n), "max_charged_bytes": max(charged),
        "tcp_mem_per_conn_bytes": (tcp2 - tcp1) * PAGE / m, "max_rmem_bytes": max(rmem),
        "slab_objects": {phase: {r: [b[r][0] - a[r][0], b[r][1]] for r in b if r in a
                                 and abs(b[r][0] - a[r][0]) * 20 >= n}
                         for phase, a, b in (("idle", s0, s1), ("filled", s1, s2), ("closed", s3, s4))},
        **row}) + "\n")
    return {k: v for k, v in row.items() if k in ctx.predicted}     # before 6.3: idle metrics only
