"""[30] accept_backlog_overflow: what a listen() backlog really holds, and what happens to
the clients that do not fit.

Server h2 calls listen(backlog) and does not accept() until ACCEPT_START_S (0.65 s), then
takes one connection every ACCEPT_EVERY_S (0.4 s) and writes one byte to it (a
server-speaks-first protocol).  CLIENTS non-blocking connects leave h1 at once, across r1 (rtt_ms).  Each
client records when connect() returned and when the server's byte came (or a reset);
the listener's Recv-Q/Send-Q are read just before accepting starts, the namespace's
ListenOverflows after the trial.  Cases:

    cookies      tcp_syncookies = 1 (the default), listen(backlog)
    no_cookies   tcp_syncookies = 0
    abort        tcp_syncookies = 0, tcp_abort_on_overflow = 1
    capped       listen(4096) with net.core.somaxconn = backlog + 1: the kernel caps it

The prediction runs the kernel's queue rules event by event (wirelab.models.listen_queue)
with the SYN schedule of the running kernel: counts exact, connect times (sorted, as the
kernel picks which client wins a tie) inside [model - 5 ms, model x 1.13 + 50 ms].
"""
from __future__ import annotations

import json
import socket
import threading

from wirelab.errors import LabError
from wirelab.measure.netstat import read_counters
from wirelab.models.listen_queue import simulate
from wirelab.models.retransmit import linear_timeouts, syn_schedule
from wirelab.peers.greeting import Start, accept_queue, backlog_of, connect_burst, greeter
from wirelab.spec import Bars, Choice, Metric, Param, Tolerance
from wirelab.topologies.routed_path import RoutedPath

ID = "accept_backlog_overflow"
ALIASES = ("backlog",)
CLAIM = ("A listen() backlog of B holds B + 1 connections, capped at somaxconn; clients beyond it "
         "are delayed on the SYN schedule, not dropped, or hang as phantoms when SYN cookies answer")
SECTION = "§7 listen(fd, backlog=128); §9 somaxconn, tcp_max_syn_backlog"
TEXT_SAYS = "listen(fd, backlog=128) -> max 128 pending connections ... beyond that: dropped"
TOPOLOGY, TOPOLOGY_PARAMS = RoutedPath, ("rtt_ms",)
NEEDS = {"netem"}
CASES = ("cookies", "no_cookies", "abort", "capped")
PARAMS = [
    Choice("case", CASES, default="cookies", grid=CASES, quick=CASES,
           help="SYN cookies on or off, RST on overflow, or a backlog capped by somaxconn"),
    Param("backlog_count", default=3, min=1, max=64, type=int, grid=(3,), quick=(3,),
          help="listen()'s backlog (with case capped: net.core.somaxconn - 1)"),
    Param("clients_count", default=8, min=1, max=64, type=int, grid=(8, 12), quick=(8,),
          help="clients connecting at once"),
    Param("rtt_ms", default=50, min=10, max=500, grid=(50,), quick=(50,),
          help="round-trip time added by the router, ms"),
]
REPEATS = 3
QUICK_REPEATS = 2
# The first accept() comes before the SYNs resent at 1 s, so they find room in the accept
# queue but more of them get request socks than it has left: their ACKs overflow.  No
# event of the model comes within 0.25 s of an accept() (a unit test holds the counts
# unchanged with every kernel timer up to 0.25 s late).
ACCEPT_START_S, ACCEPT_EVERY_S, UNTIL_S, PORT = 0.65, 0.4, 4.0, 7300
_EXACT = Tolerance(abs=0.0, rel=0.0, symmetric=True)
METRICS = [
    Metric("queue_count", "the accept queue (Recv-Q) just before accepting starts", _EXACT),
    Metric("backlog_limit_count", "the listener's Send-Q: its backlog after the somaxconn cap",
           _EXACT, plot=False),
    Metric("served_count", "clients that got the server's byte", _EXACT),
    Metric("phantom_count", "clients whose connect() returned but the server never accepted", _EXACT),
    Metric("reset_count", "clients reset (ECONNRESET)", _EXACT),
    Metric("overflow_count", "ListenOverflows in the server's namespace", _EXACT, plot=False),
    Metric("schedule_miss_count", "connect times outside [model - 5 ms, model x 1.13 + 50 ms]",
           _EXACT, plot=False),
]
X = "case"
FIGURE = Bars("What happens to clients beyond the listen() backlog?", (
    ("accept queue before accept()", "queue_count"), ("served", "served_count"),
    ("phantom (connected, never served)", "phantom_count"), ("reset", "reset_count")),
    x="case", unit="count", ylabel="clients", labels={
        "cookies": "syncookies = 1", "no_cookies": "syncookies = 0",
        "abort": "syncookies = 0,\nabort_on_overflow = 1", "capped": "listen(4096),\nsomaxconn = B + 1"})


def lab_sysctls(params: dict) -> dict:
    case = params["case"]
    server = {"net.ipv4.tcp_syncookies": "1" if case == "cookies" else "0",
              "net.ipv4.tcp_abort_on_overflow": "1" if case == "abort" else "0"}
    if case == "capped":
        server["net.core.somaxconn"] = str(int(params["backlog_count"]) + 1)
    return {"h2": server}


def listen_backlog(params: dict) -> int:
    return 4096 if params["case"] == "capped" else int(params["backlog_count"])


def somaxconn(params: dict, kernel: dict) -> int:
    """The server namespace's net.core.somaxconn: the lab's value, else the kernel's."""
    value = lab_sysctls(params)["h2"].get("net.core.somaxconn")
    return int(value if value is not None else kernel.get("global", {}).get("net.core.somaxconn", 4096))


def model(params: dict, kernel: dict, slack_s: float = 0.0):
    retries = int(kernel.get("sysctls", {}).get("net.ipv4.tcp_syn_retries", 6))
    syns, _ = syn_schedule(retries, linear_timeouts(kernel))
    return simulate(int(params["clients_count"]), min(listen_backlog(params), somaxconn(params, kernel)),
                    float(params["rtt_ms"]) / 1e3, syns, syncookies=params["case"] == "cookies",
                    abort_on_overflow=params["case"] == "abort", accept_start_s=ACCEPT_START_S,
                    accept_every_s=ACCEPT_EVERY_S, until_s=UNTIL_S, probe_s=(ACCEPT_START_S - 0.05,),
                    slack_s=slack_s)


def predict(params: dict, kernel: dict) -> dict:
    out = model(params, kernel)
    return {"queue_count": float(next(iter(out.queue_at.values()))),
            "backlog_limit_count": float(min(listen_backlog(params), somaxconn(params, kernel))),
            "served_count": float(len(out.served_s)), "phantom_count": float(len(out.phantoms())),
            "reset_count": float(len(out.reset)), "overflow_count": float(out.overflows),
            "schedule_miss_count": 0.0}


def misses(measured: list[float], nominal: list[float]) -> int:
    """Connect times (sorted) outside [nominal - 5 ms, nominal x 1.13 + 50 ms], or missing."""
    inside = sum(1 for m, n in zip(sorted(measured), sorted(nominal), strict=False)
                 if n - 0.005 <= m <= n * 1.13 + 0.05)
    return max(len(measured), len(nominal)) - inside


def prepare(lab, params: dict, ctx) -> None:
    res = lab["h1"].run(["ping", "-c1", "-W2", lab["h2"].ip()], check=False)  # ARP, untimed
    ctx.raw.write_text("warmup.txt", res.stdout)


def trial(lab, params: dict, ctx) -> dict:
    port, names = PORT + ctx.repeat, ("ListenOverflows", "TCPReqQFullDoCookies", "TCPReqQFullDrop")
    lsock = lab["h2"].socket()
    lab.undo.push(f"close the listener on {port}", lsock.close)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", port))
    lsock.listen(listen_backlog(params))
    before, taken, start = read_counters(lab["h2"].ns, "TcpExt", names), [], Start()
    server = threading.Thread(target=greeter, daemon=True, args=(
        lsock, start, taken, ACCEPT_START_S, ACCEPT_EVERY_S, UNTIL_S))
    server.start()
    queues: list = []       # read 50 ms before the first accept(), on the burst's clock
    probe = start.at(ACCEPT_START_S - 0.05, lambda: queues.append(accept_queue(lab["h2"], port)))
    connects, served, resets = connect_burst(lab["h1"], (lab["h2"].ip(), port),
                                             int(params["clients_count"]), start, UNTIL_S)
    server.join()
    probe.join()
    after, backlog = read_counters(lab["h2"].ns, "TcpExt", names), backlog_of(lab["h2"], port)
    lsock.close()
    for conn in taken:
        conn.close()
    counters = {k: after[k] - before[k] for k in names}
    nominal = sorted(model(params, ctx.kernel).connect_s.values())
    ctx.raw.write_text("clients.jsonl", json.dumps({
        "repeat": ctx.repeat, "connect_s": sorted(connects), "served_s": sorted(served),
        "resets": resets, "queues": queues, "counters": counters, "model_connect_s": nominal}) + "\n")
    if not queues:
        raise LabError("the accept queue was not read before accepting started")
    return {"queue_count": float(queues[0]), "backlog_limit_count": float(backlog),
            "served_count": float(len(served)),
            "phantom_count": float(len(connects) - len(served) - resets),
            "reset_count": float(resets), "overflow_count": float(counters["ListenOverflows"]),
            "schedule_miss_count": float(misses(connects, nominal))}
