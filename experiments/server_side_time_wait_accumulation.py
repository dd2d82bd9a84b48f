"""[16] server_side_time_wait_accumulation: a server that closes first keeps a TIME_WAIT
socket per connection for 60 s, up to tcp_max_tw_buckets; past it the kernel makes none
(TcpExtTCPTimeWaitOverflow counts them) and no connection fails: the TIME_WAIT sockets sit
on the listening port and use no ephemeral port.

Clients h1-h3 connect to port 80 of one server, which accepts and closes at once; the client
reads the EOF and closes.  Trial k uses server h(4+k), a namespace of its own (no TIME_WAIT
yet, its own cap).  Clients bind their own ports, so every connection has its own 4-tuple,
as from distinct clients: with connect() choosing, Linux 6.x steps the port by a random 2-16,
one address reuses a 4-tuple after about pool / 9 connections, its SYN takes over the
server's TIME_WAIT, and the server counts 4-tuples.  The servers set tcp_rfc1337 = 1: a
client's late ACK can draw the TIME_WAIT's ACK, the closed client answers with RST, and the
RST would end the TIME_WAIT (1 to 5 in 10,000 on the 6.18 host).  tw_objects_ratio, tw_sock_TCP
objects in use (/proc/slabinfo) per TIME_WAIT socket, is judged where the cache is its own and
SLUB's slack (kernel["slab"]) is within SLAB_BAND of the count: 256 objects, 8,534 sockets here.
"""
from __future__ import annotations

import time
from pathlib import Path

from wirelab.errors import LabError
from wirelab.lab import netns
from wirelab.lab.wait import poll
from wirelab.measure import netstat, slab
from wirelab.peers.listener import Listener
from wirelab.spec import REPORTED, Bars, Metric, Param, Tolerance
from wirelab.topologies.dumbbell import Dumbbell

ID = "server_side_time_wait_accumulation"
ALIASES = ("server_time_wait",)
CLAIM = ("A server that closes first holds min(connections in the last 60 s, tcp_max_tw_buckets) "
         "TIME_WAIT sockets, uses no ephemeral port for them, and never refuses a connection")
SECTION = "§3 TIME_WAIT problems: a busy server closing 10,000 connections/second"
TEXT_SAYS = ("A busy server closing 10,000 connections/second accumulates 600,000 TIME_WAIT "
             "sockets ... port exhaustion! New connections fail")
TOPOLOGY = Dumbbell
NEEDS: set[str] = set()
PARAMS = [
    Param("connections_count", default=10000, min=100, max=90000, type=int, grid=(10000, 50000),
          quick=(10000,), help="connections per trial, made as fast as one thread can (within 60 s)"),
    Param("tw_buckets_count", default=20000, min=1, max=1048576, type=int, grid=(300, 5000, 100000),
          quick=(300, 20000), help="tcp_max_tw_buckets in the server's namespace",
          sysctl="net.ipv4.tcp_max_tw_buckets", effect=("time_wait_count", "overflow_count"),
          advice="guides raise it to 1440000, or cut it to 5000 to clear TIME_WAIT"),
]
REPEATS = 3
QUICK_REPEATS = 2
SERVERS = 3                         # clients h1-h3, servers h4-h6: one fresh server per trial
SERVER_NAMES = tuple(f"h{SERVERS + 1 + k}" for k in range(SERVERS))
PORT, FIRST_CLIENT_PORT = 80, 1024
SLAB_BAND = 0.03                    # judged where SLUB's per-CPU slack is within it
CACHE = "tw_sock_TCP"
_EXACT = Tolerance(abs=0.0, rel=0.0, symmetric=True)
METRICS = [
    Metric("time_wait_count", "TIME_WAIT sockets on the server after the trial", _EXACT),
    Metric("overflow_count", "rise of TcpExtTCPTimeWaitOverflow in the server's namespace", _EXACT),
    Metric("failure_count", "connections that failed (connect, EOF)", _EXACT),
    Metric("server_ports_count", "distinct local ports among the server's sockets", _EXACT, plot=False),
    Metric("tw_objects_ratio", "tw_sock_TCP objects in use per TIME_WAIT socket",
           Tolerance(abs=0.0, rel=SLAB_BAND, symmetric=True), plot=False),
    Metric("tw_slab_bytes", "tw_sock_TCP slab bytes per TIME_WAIT socket", REPORTED, plot=False),
]
X = "tw_buckets_count"
FIGURE = Bars("Does a pile of server-side TIME_WAIT sockets make new connections fail?", (
    ("TIME_WAIT sockets on the server", "time_wait_count"),
    ("closes past the cap (overflow counter)", "overflow_count"),
    ("failed connections", "failure_count")), x="tw_buckets_count", unit="count",
    ylabel="sockets", labels={str(v): f"tcp_max_tw_buckets = {v:,}" for v in (300, 5000, 20000, 100000)},
    notes=(("tw_slab_bytes", "{value:.0f} B of slab per TIME_WAIT socket"),))


def lab_sysctls(params: dict) -> dict:
    cap = str(int(params["tw_buckets_count"]))
    return {h: {"net.ipv4.tcp_max_tw_buckets": cap, "net.ipv4.tcp_rfc1337": "1"} for h in SERVER_NAMES}


def topology_params(params: dict) -> dict:
    return {"pairs": SERVERS}


def predict(params: dict, kernel: dict) -> dict:
    n, cap = int(params["connections_count"]), int(params["tw_buckets_count"])
    out = {"time_wait_count": float(min(n, cap)), "overflow_count": float(max(0, n - cap)),
           "failure_count": 0.0, "server_ports_count": 1.0}
    # judged where its own cache (a merged one's row counts others' objects too) and the
    # free objects SLUB may count as in use, per CPU, are within SLAB_BAND of the count
    tw = kernel.get("slab", {}).get(CACHE) or {}
    slack = tw["slack_objects"] if tw.get("own") else None
    if slack is not None and min(n, cap) * SLAB_BAND >= slack:
        out |= {"tw_objects_ratio": 1.0, "tw_slab_bytes": float(tw["size_bytes"])}
    return out


class _Server(Listener):
    def handle(self, conn) -> None:
        """Nothing: the connection is closed on return, before the client says anything."""


def prepare(lab, params: dict, ctx) -> None:
    cap = str(int(params["tw_buckets_count"]))
    for name in SERVER_NAMES:
        got = lab[name].sysctls.get("net.ipv4.tcp_max_tw_buckets")
        if got != cap:
            raise LabError(f"{name}: tcp_max_tw_buckets reads back {got!r}, not {cap}")
        srv = _Server(lab[name], PORT, backlog=4096, name=f"server-{name}")
        lab.undo.push(f"stop the server in {name}", srv.close)


def _settled(ns: str) -> list[tuple[int, str]] | None:
    """(local port, state in hex) of every TCP socket in namespace NS once each is TIME_WAIT
    (06) or the listener (0A), else None (a FIN_WAIT2 one counts against the cap as well)."""
    with netns.entered(ns):
        text = Path("/proc/thread-self/net/tcp").read_text()
    socks = [(int(f[1].rsplit(":", 1)[1], 16), f[3]) for f in
             (line.split() for line in text.splitlines()[1:])]
    return socks if all(st in ("06", "0A") for _, st in socks) else None


def _settled_slab() -> int:
    """Active tw_sock_TCP objects once the count has held for 0.3 s (the previous point's
    namespaces are freed asynchronously), or after 5 s."""
    last, since, deadline = _active(), time.monotonic(), time.monotonic() + 5.0
    while time.monotonic() < deadline and time.monotonic() - since < 0.3:
        time.sleep(0.05)
        if (now := _active()) != last:
            last, since = now, time.monotonic()
    return last


def _active() -> int:
    return slab.read()[CACHE][0]


def _connect_all(lab, server, n: int) -> tuple[int, float]:
    """N connections, client i % 3 from its own next port; (failures, seconds taken)."""
    clients = [(lab[f"h{k + 1}"], lab[f"h{k + 1}"].ip()) for k in range(SERVERS)]
    addr, failed, t0 = (server.ip(), PORT), 0, time.perf_counter()
    for i in range(n):
        node, ip = clients[i % SERVERS]
        with node.socket() as s:
            try:
                s.settimeout(5)
                s.bind((ip, FIRST_CLIENT_PORT + i // SERVERS))
                s.connect(addr)
                failed += s.recv(1) != b""
            except OSError:
                failed += 1
    return failed, time.perf_counter() - t0


def trial(lab, params: dict, ctx) -> dict:
    if ctx.repeat >= SERVERS:
        raise LabError(f"trial {ctx.repeat + 1}: each needs a server of its own; there are {SERVERS}")
    server, n = lab[SERVER_NAMES[ctx.repeat]], int(params["connections_count"])
    before = _settled_slab() if (slab_on := "tw_objects_ratio" in ctx.predicted) else 0
    ovf0 = netstat.read_counter(server.ns, "TcpExt", "TCPTimeWaitOverflow")
    failed, took = _connect_all(lab, server, n)
    if took > 50:
        raise LabError(f"{n} connections took {took:.0f} s: the first TIME_WAITs may have ended")
    socks = poll(lambda: _settled(server.ns), 10, f"the sockets in {server.name} to settle")
    tw = sum(st == "06" for _, st in socks)
    ovf = netstat.read_counter(server.ns, "TcpExt", "TCPTimeWaitOverflow") - ovf0
    row = {"time_wait_count": float(tw), "overflow_count": float(ovf),
           "failure_count": float(failed), "server_ports_count": float(len({p for p, _ in socks}))}
    if slab_on and tw:
        size, grown = slab.read()[CACHE][1], _active() - before
        row |= {"tw_objects_ratio": grown / tw, "tw_slab_bytes": size * grown / tw}
    ctx.raw.write_text("trials.csv", "" if ctx.repeat else
                       "repeat,server,connections,failed,seconds,per_s,time_wait,overflow,slab_bytes\n")
    ctx.raw.write_text("trials.csv", f"{ctx.repeat},{server.name},{n},{failed},{took:.3f},"
                                     f"{n / took:.0f},{tw},{ovf},{row.get('tw_slab_bytes', '')}\n")
    return row
