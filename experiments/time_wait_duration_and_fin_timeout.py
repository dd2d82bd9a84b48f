"""[14] time_wait_duration_and_fin_timeout: how long the side that closes first keeps a
connection in TIME_WAIT, and what tcp_fin_timeout bounds instead.

Client h1 makes CONNS connections to server h2 and one side closes first:

    client_closes   the client closes, the server on its EOF: the client holds TIME_WAIT
    server_closes   the server closes at once, the client on its EOF: the server holds it
    orphan          the client closes and the server never does: the client's socket,
                    closed by its program (an orphan), waits in FIN_WAIT_2

tcp_fin_timeout is set in both namespaces.  Each socket's timer is read from
/proc/net/tcp (the kernel's own expiry, 10 ms resolution) just after the close, and,
when watch_s allows, the sockets are watched (every 50 ms, no process start) until they
are gone.  Prediction: TIME_WAIT is TCP_TIMEWAIT_LEN = 60 s whatever tcp_fin_timeout
says; the orphan's FIN_WAIT_2 lasts tcp_fin_timeout.  Timers fire late, never early (the
timer wheel rounds a timer T ticks ahead up by up to 8/63 of T).
"""
from __future__ import annotations

import contextlib
import json
import socket
import time

from wirelab.errors import LabError
from wirelab.lab import netns
from wirelab.peers.listener import Listener
from wirelab.spec import Bars, Choice, Metric, Param, Tolerance
from wirelab.topologies.single_link import SingleLink

ID = "time_wait_duration_and_fin_timeout"
ALIASES = ("time_wait",)
CLAIM = ("TIME_WAIT lasts 60 s on the side that closed first, whatever tcp_fin_timeout says; "
         "tcp_fin_timeout bounds only an orphaned FIN_WAIT_2")
SECTION = "§3 connection teardown: TIME_WAIT (2 x MSL); §9 tcp_fin_timeout"
TEXT_SAYS = "TIME_WAIT (2 x MSL) typically 60 seconds ... net.ipv4.tcp_fin_timeout = 15"
TOPOLOGY, TOPOLOGY_PARAMS = SingleLink, ()
NEEDS: set[str] = set()
CASES = ("client_closes", "server_closes", "orphan")
PARAMS = [
    Choice("case", CASES, default="client_closes", grid=CASES, quick=CASES,
           help="who closes first; orphan: the server never closes"),
    Param("fin_timeout_s", default=60, min=1, max=120, type=int, grid=(15, 60), quick=(5,),
          help="net.ipv4.tcp_fin_timeout on both hosts", sysctl="net.ipv4.tcp_fin_timeout",
          advice="set it to 15 to get rid of TIME_WAIT sockets faster",
          effect=("tw_timer_s", "tw_lifetime_s", "fw2_lifetime_s")),
    Param("watch_s", default=75, min=0, max=300, type=int, grid=(75,), quick=(10,),
          help="how long to watch the closed sockets go (timers are read either way)"),
    Param("conns_count", default=20, min=1, max=200, type=int, grid=(20,), quick=(20,),
          help="connections per trial"),
]
REPEATS = 2
QUICK_REPEATS = 2
TIME_WAIT_S, POLL_S = 60.0, 0.05            # TCP_TIMEWAIT_LEN (include/net/tcp.h)
_LATE = Tolerance(abs=2 * POLL_S, rel=8 / 63, below=0.02)       # the timer wheel's rounding
_ARMED = Tolerance(abs=0.05, rel=0.0, below=0.02)               # 10 ms resolution, read after
_EXACT = Tolerance(abs=0.0, rel=0.0, symmetric=True)
METRICS = [
    Metric("tw_timer_s", "the TIME_WAIT timer as armed: age at reading + time left", _ARMED),
    Metric("tw_lifetime_s", "from the peer's FIN until the TIME_WAIT socket was gone", _LATE,
           full_only=True),
    Metric("fw2_timer_s", "the orphaned FIN_WAIT_2's timer as armed", _ARMED),
    Metric("fw2_lifetime_s", "from close() until the orphaned FIN_WAIT_2 socket was gone", _LATE),
    Metric("closer_tw_count", "TIME_WAIT sockets on the side that closed first", _EXACT, plot=False),
    Metric("other_tw_count", "TIME_WAIT sockets on the other side", _EXACT, plot=False),
]
X = "case"
FIGURE = Bars("How long does a closed connection linger?", (
    ("TIME_WAIT timer", "tw_timer_s"), ("TIME_WAIT observed", "tw_lifetime_s"),
    ("FIN_WAIT_2 timer", "fw2_timer_s"), ("FIN_WAIT_2 observed", "fw2_lifetime_s")),
    x="case", unit="s", ylabel="seconds after the state began",
    labels={"client_closes": "client closes first", "server_closes": "server closes first",
            "orphan": "server never closes"})
PORT, STATES = 7400, {"05": "FIN_WAIT2", "06": "TIME_WAIT"}


def lab_sysctls(params: dict) -> dict:     # rfc1337: no late RST ends a TIME_WAIT early ([15])
    both = {"net.ipv4.tcp_fin_timeout": str(int(params["fin_timeout_s"])), "net.ipv4.tcp_rfc1337": "1"}
    return {"h1": dict(both), "h2": dict(both)}


def wheel_late_s(timeout_s: float, hz: int) -> float:
    """How late the timer wheel may fire a timer armed TIMEOUT_S ahead: a whole bucket of
    its level (1, 8, 64, 512 ... ticks for timers up to 63, 504, 4032, 32256 ... ticks)."""
    ticks, level = timeout_s * hz, 0
    while level < 8 and ticks >= 63 * 8 ** level:
        level += 1
    return 8 ** level / hz


def observed(params: dict) -> bool:
    """Whether watch_s covers the socket's end (its nominal time, 8/63 late, + 1 s)."""
    nominal = float(params["fin_timeout_s"]) if params["case"] == "orphan" else TIME_WAIT_S
    return float(params["watch_s"]) >= nominal * (1 + 8 / 63) + 1


def predict(params: dict, kernel: dict) -> dict:
    if params["case"] == "orphan":
        fin = float(params["fin_timeout_s"])
        return {"fw2_timer_s": fin} | ({"fw2_lifetime_s": fin} if observed(params) else {})
    out = {"tw_timer_s": TIME_WAIT_S, "closer_tw_count": float(params["conns_count"]),
           "other_tw_count": 0.0}
    return out | ({"tw_lifetime_s": TIME_WAIT_S} if observed(params) else {})


class _Server(Listener):
    """Closes at once (server_closes), on EOF (client_closes), or never (orphan: kept)."""

    def __init__(self, node, port: int, case: str):
        self.case, self.kept, self.closed_at = case, [], {}      # closed_at: {client port: t}
        super().__init__(node, port, backlog=256, name=f"server-{port}")

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.case == "orphan":
                self.kept.append(conn)
                continue
            peer = conn.getpeername()[1]
            with contextlib.suppress(OSError):
                if self.case == "server_closes":    # FIN first, then wait for the client's
                    conn.shutdown(socket.SHUT_WR)
                conn.recv(1)                        # EOF: the client's FIN arrived
            self.closed_at[peer] = time.perf_counter()  # server_closes: its TIME_WAIT began
            conn.close()


def sockets(node, port: int) -> dict[tuple[int, int], tuple[str, float]]:
    """{(local port, remote port): (state, seconds left on its timer)} of NODE's TCP
    sockets to or from PORT in TIME_WAIT or FIN_WAIT_2, read in-process."""
    out = {}
    with netns.entered(node.ns), open("/proc/thread-self/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            lport, rport = (int(a.split(":")[1], 16) for a in fields[1:3])
            if fields[3] in STATES and port in (lport, rport):
                out[(lport, rport)] = (STATES[fields[3]], int(fields[5].split(":")[1], 16) / 100.0)
    return out


def prepare(lab, params: dict, ctx) -> None:
    for k in range(3 * max(REPEATS, QUICK_REPEATS)):
        srv = _Server(lab["h2"], PORT + k, params["case"])
        lab.undo.push(f"stop the server on {PORT + k}", srv.close)
        lab.undo.push(f"close the kept connections on {PORT + k}", lambda s=srv: [c.close() for c in s.kept])
        setattr(ctx.state, f"server{k}", srv)


def _connect_all(lab, port: int, n: int, case: str) -> dict[int, float]:
    """N connections closed as CASE says: {client port: when its state began}.  TIME_WAIT
    begins when the peer's FIN arrives (the first closer waits for it), not at close()."""
    began = {}
    for _ in range(n):
        with lab["h1"].socket() as s:
            s.settimeout(5)
            s.connect((lab["h2"].ip(), port))
            if case == "client_closes":
                s.shutdown(socket.SHUT_WR)
            if case != "orphan" and s.recv(1) != b"":
                raise LabError("the server sent data instead of closing")
            began[s.getsockname()[1]] = time.perf_counter()
    return began


def trial(lab, params: dict, ctx) -> dict:
    case, n, port = params["case"], int(params["conns_count"]), PORT + ctx.repeat
    srv = getattr(ctx.state, f"server{ctx.repeat}")
    closed = _connect_all(lab, port, n, case)
    time.sleep(0.2)                         # the last FINs and ACKs
    if case == "server_closes":             # the server's sockets: (server port, client port)
        closer, other, closed_at = lab["h2"], lab["h1"], {(port, c): t for c, t in srv.closed_at.items()}
    else:
        closer, other, closed_at = lab["h1"], lab["h2"], {(c, port): t for c, t in closed.items()}
    read_at, held = time.perf_counter(), sockets(closer, port)
    want = "FIN_WAIT2" if case == "orphan" else "TIME_WAIT"
    timers = sorted(read_at - closed_at[k] + left for k, (state, left) in held.items()
                    if state == want and k in closed_at)
    if len(timers) != n:
        raise LabError(f"{len(timers)} of {n} sockets in {want} on {closer.name}: {held}")
    out = {"closer_tw_count": float(sum(s == "TIME_WAIT" for s, _ in held.values())),
           "other_tw_count": float(sum(s == "TIME_WAIT" for s, _ in sockets(other, port).values()))}
    gone: dict = {}
    end = read_at + float(params["watch_s"]) if observed(params) else read_at
    while held and time.perf_counter() < end:
        time.sleep(POLL_S)
        now, left = time.perf_counter(), sockets(closer, port)
        for key in [k for k in held if k not in left]:
            gone[key] = now - closed_at[key]
            del held[key]
    ctx.raw.write_text("lifetimes.jsonl", json.dumps({
        "repeat": ctx.repeat, "case": case, "timers_s": timers, "gone_s": sorted(gone.values()),
        "left": len(held)}) + "\n")
    mid = timers[n // 2]
    out = {"fw2_timer_s": mid} if case == "orphan" else out | {"tw_timer_s": mid}
    if gone and not held:
        out["fw2_lifetime_s" if case == "orphan" else "tw_lifetime_s"] = sorted(gone.values())[n // 2]
    return out
