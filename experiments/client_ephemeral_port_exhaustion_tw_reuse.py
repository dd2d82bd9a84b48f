"""[15] client_ephemeral_port_exhaustion_tw_reuse: a client that closes first keeps every
local port it used in TIME_WAIT for 60 s, so one (client IP, server IP, server port) runs out
after as many connections as ip_local_port_range holds.

Client h1 connects to server h2 and closes, paced at RATE_PER_S, until connect() fails with
EADDRNOTAVAIL or 2 x pool connections have been made; the server (a thread) reads to EOF
and closes.  Namespaces only: runs on the host kernel where it can.

    client_closes   the first EADDRNOTAVAIL after exactly pool = hi - lo + 1 connections,
                    pool sockets in TIME_WAIT; a second server port then takes pool more
                    (connect() shares local ports across distinct 4-tuples)
    server_closes   the server holds the TIME_WAIT: 2 x pool connections, no failure
    tw_reuse        tcp_tw_reuse = 1 (timestamps on): a TIME_WAIT port is reused once 1 s
                    old, so at pool / 2 per second 2 x pool connections never fail

The client sets tcp_rfc1337 = 1: on a kernel with two CPUs the server's ACK of the
client's FIN can leave after its own FIN, the client's TIME_WAIT answers it, the closed
server answers with RST and the RST kills the TIME_WAIT (RFC 1337's "assassination"; 6 to
40 ports in 1000 came free early on the 6.18 host).  The count would then depend on a race.
"""
from __future__ import annotations

from wirelab.measure import proc_tcp
from wirelab.peers import churn
from wirelab.spec import Bars, Choice, Metric, Param, Tolerance
from wirelab.topologies.single_link import SingleLink

ID = "client_ephemeral_port_exhaustion_tw_reuse"
ALIASES = ("port_exhaustion",)
CLAIM = ("A client that closes first runs out of ephemeral ports after exactly the size of "
         "ip_local_port_range per destination; tcp_tw_reuse or the server closing first avoids it")
SECTION = "§3 'Available ephemeral ports ~28,000 ... port exhaustion'; §9 ip_local_port_range, tcp_tw_reuse"
TEXT_SAYS = "Available ephemeral ports: ~28,000 (default range 32768-60999)"
TOPOLOGY, TOPOLOGY_PARAMS = SingleLink, ()
NEEDS: set[str] = set()
CASES = ("client_closes", "server_closes", "tw_reuse")
PARAMS = [
    Choice("case", CASES, default="client_closes", grid=CASES, quick=CASES,
           help="who closes first, and whether the client reuses TIME_WAIT ports"),
    Param("ports_count", default=28232, min=100, max=32768, type=int, grid=(1000, 28232), quick=(1000,),
          help="how many ports ip_local_port_range holds (from 32768 up; 28232 is the default)",
          sysctl="net.ipv4.ip_local_port_range", effect=("first_failure_count",),
          advice="widen it to 1024 65535 when a client runs out of ports"),
]
REPEATS = 2
QUICK_REPEATS = 2
_EXACT = Tolerance(abs=0.0, rel=0.0, symmetric=True)
METRICS = [
    Metric("first_failure_count", "connections before the first EADDRNOTAVAIL", _EXACT),
    Metric("time_wait_count", "the client's TIME_WAIT sockets at that moment", _EXACT, plot=False),
    Metric("second_port_count", "then, connections to a second server port before it fails",
           _EXACT, plot=False),
    Metric("failure_count", "EADDRNOTAVAIL over 2 x pool connections", _EXACT),
]
X = "case"
FIGURE = Bars("How many connections before a client runs out of ports?", (
    ("connections before EADDRNOTAVAIL", "first_failure_count"),
    ("failures in 2 x pool connections", "failure_count")), x="case", unit="count",
    ylabel="connections", labels={"client_closes": "client closes first",
                                  "server_closes": "server closes first",
                                  "tw_reuse": "client closes, tcp_tw_reuse = 1"})
BASE_PORT, LOW = 7700, 32768        # trial k: server ports BASE_PORT + 2k + 1, + 2


def lab_sysctls(params: dict) -> dict:
    hi = LOW + int(params["ports_count"]) - 1
    client = {"net.ipv4.ip_local_port_range": f"{LOW} {hi}", "net.ipv4.tcp_rfc1337": "1",
              "net.ipv4.tcp_tw_reuse": "1" if params["case"] == "tw_reuse" else "2"}
    return {"h1": client}


def pool(kernel: dict) -> int:
    lo, hi = (int(x) for x in kernel["sysctls"]["net.ipv4.ip_local_port_range"].split())
    return hi - lo + 1


def rate_per_s(pool_count: int) -> float:
    """Half the pool per second: two seconds to exhaust it, and twice what tcp_tw_reuse's
    one-second delay needs to free a port in time."""
    return pool_count / 2.0


def predict(params: dict, kernel: dict) -> dict:
    n = float(pool(kernel))
    if params["case"] == "client_closes":
        return {"first_failure_count": n, "time_wait_count": n, "second_port_count": n}
    return {"failure_count": 0.0}


def ports(repeat: int) -> tuple[int, int]:
    """A trial's own two server ports: another destination is another pool, so a trial
    never meets the previous one's TIME_WAIT (60 s)."""
    return BASE_PORT + 2 * repeat + 1, BASE_PORT + 2 * repeat + 2


def prepare(lab, params: dict, ctx) -> None:
    for k in range(3 * max(QUICK_REPEATS, REPEATS)):       # the runner's most trials
        for port in ports(k):
            # reads to EOF and closes; server_closes: closes at once (the server's TIME_WAIT)
            srv = churn.Closer(lab["h2"], port, params["case"] == "server_closes")
            lab.undo.push(f"stop the server on {port}", srv.close)


def _time_wait(lab, port: int) -> int:
    """The client's TIME_WAIT sockets toward server PORT."""
    return proc_tcp.count(proc_tcp.read(lab["h1"].ns), "TIME_WAIT", port)


def trial(lab, params: dict, ctx) -> dict:
    n, (port, other) = pool(ctx.kernel), ports(ctx.repeat)       # the range as set (--sysctl too)
    h1, server = lab["h1"], lab["h2"].ip()
    if params["case"] == "client_closes":       # connect and close until EADDRNOTAVAIL
        first = churn.until_exhausted(h1, (server, port), 2 * n + 10)
        # every port in TIME_WAIT once the server (a thread, late under load) sent its FIN
        tw = proc_tcp.count(proc_tcp.settled(h1.ns, port), "TIME_WAIT", port)
        second = churn.until_exhausted(h1, (server, other), 2 * n + 10)
        ctx.raw.write_text("exhaustion.csv", f"{ctx.repeat},{first},{tw},{second}\n")
        return {"first_failure_count": float(first), "time_wait_count": float(tw),
                "second_port_count": float(second)}
    made, failed = churn.paced(h1, (server, port), 2 * n, rate_per_s(n),
                               wait_eof=params["case"] == "server_closes")
    ctx.raw.write_text("paced.csv", f"{ctx.repeat},{made},{failed},{_time_wait(lab, port)}\n")
    return {"failure_count": float(failed)}
