"""[05] tcp_handshake_one_rtt: a TCP connect costs one round trip.

Client h1 connects to server h2 across router r1, which delays each direction by
rtt_ms/2 (netem on r1's two egresses, not on either end host).  Both sockets are made
in-process inside the hosts' namespaces, so a trial starts no process: ``connect()`` is
timed with ``perf_counter`` in the client's thread and ``accept()`` returns in a server
thread of the same process, on the same clock.

    h1 --SYN-->            r1 (d)            --> h2        t = 0 .. d
    h1 <--SYN/ACK--        r1 (d)            <-- h2        connect() returns at 2d = r
    h1 --ACK-->            r1 (d)            --> h2        accept() returns at 3d = 1.5 r
"""
from __future__ import annotations

import socket
import time

from wirelab.peers.listener import RecordingListener
from wirelab.spec import Metric, Param, Sweep, Tolerance
from wirelab.topologies.routed_path import RoutedPath

ID = "tcp_handshake_one_rtt"
ALIASES = ("tcp_handshake",)
CLAIM = "A TCP connect costs one RTT; the server's accept() completes after 1.5 RTT"
SECTION = "§3 TCP three-way handshake; §8 latency numbers ('TCP handshake: 1 RTT')"
TEXT_SAYS = "TIME COST: 1 full round-trip (RTT) before any data can be sent."
TOPOLOGY = RoutedPath
NEEDS = {"netem"}
PARAMS = [
    Param("rtt_ms", default=50, min=0, max=5000, grid=(1, 10, 50, 100, 200), quick=(1, 10, 50),
          help="round-trip time added by the router, ms"),
]
REPEATS = 20
QUICK_REPEATS = 20
_BAND = Tolerance(abs=0.5, rel=0.03)   # never below: nothing beats its round trips
METRICS = [
    Metric("connect_ms", "time for connect() to return at the client", _BAND),
    Metric("accept_ms", "time from the client's connect() call to the server's accept() "
                        "return", _BAND),
]
X = "rtt_ms"
FIGURE = Sweep("Does connect() cost exactly one round trip, and accept() one and a half?")
SYSCTLS = {"*": {"net.ipv4.tcp_syncookies": "1"}}
PORT = 5001
CONNECT_TIMEOUT_S = 30.0


def predict(params: dict, kernel: dict) -> dict:
    """connect() after one RTT, accept() after 1.5.  No kernel constant enters unless
    a SYN is lost (claim 06); the link is loss-free here."""
    r = float(params["rtt_ms"])
    return {"connect_ms": r, "accept_ms": 1.5 * r}


class _Server(RecordingListener):
    """A listening socket in h2 whose thread timestamps each accept()."""

    def serve(self, conn: socket.socket) -> None:
        self.put(time.perf_counter())


def _connect_once(lab, server: _Server) -> tuple[float, float]:
    client = lab["h1"].socket()
    client.settimeout(CONNECT_TIMEOUT_S)
    try:
        t0 = time.perf_counter()
        client.connect((lab["h2"].ip(), PORT))
        t1 = time.perf_counter()
        t2 = server.record(CONNECT_TIMEOUT_S)
    finally:
        client.close()
    return (t1 - t0) * 1e3, (t2 - t0) * 1e3


def prepare(lab, params: dict, ctx) -> _Server:
    server = _Server(lab["h2"], PORT, name="accept")
    lab.undo.push("stop the accept thread", server.close)
    # One untimed connect first: it resolves ARP on both hops (which crosses the
    # router's delay too) and warms the code path.
    warm = _connect_once(lab, server)
    ctx.raw.write_text("warmup.txt", f"warm-up connect (not a trial): connect_ms={warm[0]:.3f} "
                                     f"accept_ms={warm[1]:.3f}\n")
    return server


def trial(lab, params: dict, ctx) -> dict:
    connect_ms, accept_ms = _connect_once(lab, ctx.state)
    return {"connect_ms": connect_ms, "accept_ms": accept_ms}
