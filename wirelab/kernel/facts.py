"""What a prediction may read about the kernel that runs the lab: its release, its tick
(HZ), the effective sysctls inside a lab namespace, and the kernel-wide ones.

It also gives the slab caches a connection allocates: their slot sizes and how SLUB
merged them (wirelab.measure.slab), read where the lab runs (/proc/slabinfo is root's).

And what a receiver's window clamp is before and after its first data segment, on a veth
pair between two throw-away namespaces (:func:`veth_window_probe`, ``kernel["rcv_probe"]``):
from 6.6 on the window is sized by a per-socket ``scaling_ratio`` that the kernel measures
from the first full segment's skb->len / skb->truesize, which no sysctl says
(wirelab.models.tcp reads it back from these two clamps).

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
           "mtu": mtu, "iw_segs": probe["iw_segs"], "slab": slab.caches(SLAB_CACHES),
           "rcv_probe": veth_window_probe() if _uses_scaling_ratio() else {
               "skipped": "a release before 6.6: its window rule (tcp_adv_win_scale) needs no probe"}}
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


# --- the receive window's scaling ratio, over veths --------------------------------

TCP_WINDOW_CLAMP = 10
#: The probe's two links, client - router - server, as the lab's routed paths (h1 - r1 - h2).
PROBE_NETS = (("10.255.255.2", "10.255.255.1"), ("10.255.254.2", "10.255.254.1"))
PROBE_PREFIX = 30
#: Bytes the probe's sender writes at once: one initial window of full segments, as a
#: transfer's first round (the kernel measures the ratio on the first full segment).
PROBE_SEGS = 10
#: netem delay on each of the probe router's egresses, microseconds: an RTT of 20 ms.
PROBE_DELAY_US = 10_000


def _uses_scaling_ratio() -> bool:
    """Whether this kernel sizes windows from a measured scaling_ratio (6.6 on).  Before
    that the probe is not run: it costs three namespaces whose teardown the kernel finishes
    in the background, into the first trial of a timing-sensitive point."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (6, 6)


def veth_window_probe(timeout_s: float = 5.0) -> dict:
    """One TCP connection from a client to a server in throw-away namespaces, across a
    router (veth - forwarding namespace - veth, MTU 1500: the shape of the lab's routed
    paths, h1 - r1 - h2, with netem's delay on the router: a 20 ms RTT), all at the
    kernel's default sysctls.  Returned, for the receiving (connecting) socket: its
    buffer (SO_RCVBUF), advmss, and its window clamp (TCP_WINDOW_CLAMP) right after the
    handshake (tcp_init_buffer_space: the initial scaling_ratio's window, less one
    reserved segment) and again once the server's first PROBE_SEGS full segments have
    arrived, before any is read (6.6+: the ratio measured on the first full segment,
    tcp_measure_rcv_mss -> tcp_set_window_clamp).  Nothing is read before the second
    clamp, so autotuning (tcp_rcv_space_adjust) cannot have moved it.

    Why a delay: the ratio is skb->len / skb->truesize of the first full skb that
    arrives, and how many segments the sender puts in one skb depends on the RTT
    (tcp_tso_autosize: the pacing rate's 1 ms worth, at least tcp_min_tso_segs = 2, plus
    64 KB halved for every 512 us of min_rtt, tcp_tso_rtt_log 9: nothing from ~8 ms on).
    On 6.12 a flight over a bare veth (RTT ~0: one 10-segment skb) measured 227/256,
    a lab path of r = 50 ms (2-segment skbs) 195/256.  Every lab path the window models
    serve has r >= 10 ms: 20 ms puts the probe in their regime.  {"error": why} if the
    probe could not run."""
    try:
        return _veth_window_probe(timeout_s)
    except Exception as e:  # noqa: BLE001 - pyroute2's NetlinkError (no netem...) included
        return {"error": f"{type(e).__name__}: {e}"}


def _veth_window_probe(timeout_s: float) -> dict:
    import select
    from contextlib import ExitStack

    from pyroute2.iproute.linux import IPRoute
    (cli_ip, cli_gw), (srv_ip, srv_gw) = PROBE_NETS
    with ExitStack() as stack:
        nodes = {}
        for name in ("cli", "rtr", "srv"):
            with netns.throwaway():
                ipr = stack.enter_context(IPRoute())
                fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
                stack.callback(os.close, fd)
                sock = stack.enter_context(socket.socket()) if name != "rtr" else None
                if name == "rtr":
                    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                        f.write("1")
                nodes[name] = (ipr, fd, sock)
        ipr_r = nodes["rtr"][0]
        for end, (ip, gw) in (("cli", PROBE_NETS[0]), ("srv", PROBE_NETS[1])):
            ipr, fd, _ = nodes[end]
            ipr_r.link("add", ifname=f"wlp-{end}", kind="veth",
                       peer={"ifname": "wlp-r", "net_ns_fd": fd})
            for i, name, addr in ((ipr_r, f"wlp-{end}", gw), (ipr, "wlp-r", ip)):
                idx = i.link_lookup(ifname=name)[0]
                i.addr("add", index=idx, address=addr, prefixlen=PROBE_PREFIX)
                i.link("set", index=idx, state="up")
                if i is ipr_r:
                    i.tc("add", "netem", idx, handle=0x10000, delay=PROBE_DELAY_US)
            ipr.route("add", dst="0.0.0.0/0", gateway=gw)
        cli, srv = nodes["cli"][2], nodes["srv"][2]
        assert cli is not None and srv is not None
        srv.bind((srv_ip, 0))
        srv.listen(1)
        cli.settimeout(timeout_s)
        cli.connect(srv.getsockname())
        conn, _ = srv.accept()
        stack.enter_context(conn)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        before = cli.getsockopt(socket.IPPROTO_TCP, TCP_WINDOW_CLAMP)
        info = tcpinfo.read(cli)
        size = PROBE_SEGS * info["advmss"]
        conn.sendall(bytes(size))
        deadline = time.monotonic() + timeout_s
        while tcpinfo.read(cli)["bytes_received"] < size:     # all queued, none read
            if time.monotonic() > deadline:
                raise TimeoutError(f"the probe's {size} bytes did not arrive in {timeout_s:g} s")
            select.select([], [], [], 0.001)
        after = cli.getsockopt(socket.IPPROTO_TCP, TCP_WINDOW_CLAMP)
        rcvbuf = cli.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        return {"path": f"veth - router (netem {PROBE_DELAY_US / 1000:g} ms each way) - veth",
                "mtu": 1500, "rcvbuf": rcvbuf,
                "advmss": info["advmss"], "sent_bytes": size,
                "clamp_after_handshake": before, "clamp_after_data": after}


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
