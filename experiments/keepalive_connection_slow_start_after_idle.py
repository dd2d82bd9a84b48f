"""[13] keepalive_connection_slow_start_after_idle: a kept-alive connection
skips the handshake, but not slow start once it has been idle longer than
an RTO.

Server h2 sends 1 MiB per request to client h1 across router r1 (netem
rtt_ms/2 on each of r1's egresses).  Both ends are in-process sockets; the
server runs in a thread and reads TCP_INFO just before and just after it
queues each response, so every response is explained by the connection's
own state at that moment.  One trial is one connection:

    connect, R1          new connection: handshake + slow start from IW   -> new_conn_ms
    50 ms, R2            warm-up: after R1 cwnd is about N, R2 may need a 2nd round
    50 ms, R3            warm reference: cwnd >= N, one round              -> warm_ms
    I, R4, I, R5, I, R6  R3..R6: four responses with idle gaps I     -> reuse_ms = mean(R4..R6)

With the sysctl at 1 and an idle delta (server's time since its last data,
about I + r) longer than the RTO, ``tcp_cwnd_restart`` halves cwnd once per
RTO of idle, down to min(IW, cwnd).  The response then slow-starts again
from there.  After 1 s at r = 50 (RTO 260 ms at HZ=100) that is 4 halvings:
a warm cwnd W becomes W/16, and 1 MiB (N = 725 segments of 1448 B) takes 4
rounds if W/16 >= N/15, else 5.  W itself is what the previous response
left, about W/16 + N, whose fixed point 16N/15 sits exactly on that
boundary; so consecutive reused responses take 4 or 5 rounds.  The nominal
prediction follows that chain; the exact check per response uses the state
read from TCP_INFO (cwnd, ssthresh, tcpi_rto, tcpi_snd_mss, time since last
data) and must match the measured cwnd after the restart and the round
count of every response (``model_miss_count``).
"""
from __future__ import annotations

import json
import math
import queue
import socket
import statistics
import time

from wirelab import keepalive_tcpinfo as tcpinfo
from wirelab.experiment import Param, Tolerance
from wirelab.listener import Listener

ID = "keepalive_connection_slow_start_after_idle"
ALIASES = ("keepalive_idle", "slow_start_after_idle")
CLAIM = ("A kept-alive connection skips the handshake, but after idling longer than the RTO "
         "Linux restarts slow start (tcp_slow_start_after_idle=1): slower than a warm connection")
SECTION = "§3 HTTP keep-alive and connection reuse"
TEXT_SAYS = "HTTP keep-alive reuses connections (skip slow start)."
LINUX_FACT = (
    "Only while the connection is busy. With net.ipv4.tcp_slow_start_after_idle=1 (the default) "
    "the first write after an idle period longer than the RTO calls tcp_cwnd_restart() "
    "(tcp_slow_start_after_idle_check in include/net/tcp.h; net/ipv4/tcp_output.c, RFC "
    "2861/7661). It halves cwnd once per RTO of idle, down to the restart window "
    "min(TCP_INIT_CWND = 10, cwnd), and keeps ssthresh = max(ssthresh, 3/4 cwnd), so the response "
    "slow-starts again. The RTO is srtt + max(4 mdev, TCP_RTO_MIN = HZ/5 = 200 ms), in whole "
    "jiffies: about r + 200 ms, 260 ms at r = 50 ms and HZ = 100. A connection that is reused "
    "after 1 s at r = 50 needs 4-5 rounds for 1 MiB, against 1 when warm and 7 plus the handshake "
    "when new. Congestion controls with their own cong_control hook (BBR) skip this restart. "
    "tcp_slow_start_after_idle=0 keeps the warm cwnd through any idle period."
)
TOPOLOGY = "routed_path"
NEEDS = {"netem"}
PARAMS = [
    Param("idle_s", default=1.0, min=0.01, max=30.0, grid=(0.05, 1.0, 5.0), quick=(0.05, 1.0),
          help="idle gap before each reused response, s"),
    Param("slow_start_after_idle", default=1, min=0, max=1, grid=(1, 0), quick=(1, 0), type=int,
          help="the server's net.ipv4.tcp_slow_start_after_idle (1 = restart cwnd after idle)"),
    Param("rtt_ms", default=50, min=10, max=500, grid=(50,), quick=(50,),
          help="round-trip time added by the router, ms (>= 10: rounds are counted from times)"),
]
REPEATS = 5
QUICK_REPEATS = 3
METRICS = {
    "new_conn_ms": "connect() plus the first 1 MiB response on the new connection, ms",
    "warm_ms": "a 1 MiB response 50 ms after the previous one (the warm reference), ms",
    "reuse_ms": "mean of the three 1 MiB responses that follow an idle gap of idle_s, ms",
    "rto_ms": "the server's RTO (tcpi_rto) when it sends those responses, ms",
    "model_miss_count": ("responses of the trial (of 6) whose restarted cwnd or round count "
                         "differs from the model fed with that moment's TCP_INFO"),
}
X = "idle_s"
#: CLAIMS [11]'s timing criterion for slow-start transfers: ±(0.5 r + 5%).
_ROUNDS_BAND = Tolerance(abs=0.0, rel=0.05, rtt_frac=0.5, symmetric=True)
TOLERANCE = {
    "new_conn_ms": _ROUNDS_BAND,
    "warm_ms": _ROUNDS_BAND,
    "reuse_ms": _ROUNDS_BAND,
    # srtt may exceed r by up to one jiffy (10 ms at HZ=100) before the RTO
    # rounds up to the next jiffy; an RTO below r + 200 ms is impossible.
    "rto_ms": Tolerance(abs=10.0, rel=0.0),
    "model_miss_count": Tolerance(abs=0.0, rel=0.0),
}

PORT = 5013
RESPONSE_BYTES = 1 << 20
REQUEST = b"GET /1MiB\n"
WARM_GAP_S = 0.05
IDLE_RESPONSES = 3
CC = "reno"              # no HyStart exit, no cong_control hook: the RFC 2861 path
TCP_INIT_CWND = 10       # include/net/tcp.h; the restart window's ceiling
TCP_RTO_MIN_MS = 200.0   # include/net/tcp.h: HZ/5 jiffies
TCP_INFINITE_SSTHRESH = 0x7FFFFFFF
LINK_MTU = 1500          # veth default; the topology sets none
IO_TIMEOUT_S = 60.0


# -- the model (pure functions, unit-tested) ---------------------------------

def segments(size_bytes: int, mss: int) -> int:
    """Full-size segments needed for SIZE_BYTES at MSS bytes each."""
    return math.ceil(size_bytes / mss)


def mss_bytes(kernel: dict) -> int:
    """MSS on a 1500 B link: minus IPv4 and TCP headers, minus the 12 B
    timestamp option when tcp_timestamps is on."""
    ts = kernel.get("sysctls", {}).get("net.ipv4.tcp_timestamps", "1") != "0"
    return LINK_MTU - 20 - 20 - (12 if ts else 0)


def jiffy_ms(kernel: dict) -> float:
    hz = kernel.get("hz")
    if not hz:
        raise ValueError("kernel['hz'] is needed: RTOs are whole jiffies")
    return 1000.0 / float(hz)


def nominal_rto_ms(rtt_ms: float, jiffy: float) -> float:
    """RTO = usecs_to_jiffies(srtt + rttvar) with rttvar held at
    TCP_RTO_MIN on a steady path (tcp_rtt_estimator) and srtt just above r
    (processing on the ACK path): the first whole jiffy above r + 200 ms."""
    return jiffy * (math.floor((rtt_ms + TCP_RTO_MIN_MS) / jiffy + 1e-9) + 1)


def restart_cwnd(cwnd: int, idle_ms: float, rto_ms: float, enabled: bool,
                 iw: int = TCP_INIT_CWND, in_flight: int = 0) -> int:
    """cwnd after the first write following IDLE_MS without sending data
    (tcp_slow_start_after_idle_check + tcp_cwnd_restart): untouched unless
    the sysctl is on, nothing is in flight and idle > RTO; then halved once
    per whole RTO that fits in the idle time, never below min(IW, cwnd)."""
    if not enabled or in_flight or idle_ms <= rto_ms:
        return cwnd
    floor = min(iw, cwnd)
    left = idle_ms
    while True:
        left -= rto_ms
        if not (left > 0 and cwnd > floor):
            break
        cwnd >>= 1
    return max(cwnd, floor)


def rounds(cwnd: int, ssthresh: int, segs: int) -> int:
    """Round trips to deliver SEGS segments starting from CWND: slow start
    (cwnd += acked, so it doubles per round) up to ssthresh, then
    congestion avoidance (+1 per round).  Receive window assumed larger."""
    sent, k, w = 0, 0, max(1, cwnd)
    while sent < segs:
        sent += w
        k += 1
        w = min(2 * w, max(ssthresh, w + 1)) if w < ssthresh else w + 1
    return k


def grown_cwnd(cwnd: int, segs: int) -> int:
    """cwnd after a response of SEGS segments sent from CWND (nominal).
    In slow start every ACKed segment adds one (ABC, tcp_slow_start) while
    tcp_is_cwnd_limited() holds: latched true for a window whose flight
    filled cwnd (every round but the last of a multi-round response), else
    while cwnd < 2 x what is in flight ("ensure cwnd grows to twice what was
    ACKed").  So a response grows cwnd by all its segments, unless cwnd is
    already twice the response (the test precedes each increase, so the
    last ACKs may overshoot 2 x SEGS a little: measured 735 -> 1460)."""
    return cwnd + segs if cwnd < 2 * segs else cwnd


def nominal_chain(params: dict, kernel: dict) -> dict:
    """Rounds of every response of one trial, from first principles."""
    r = float(params["rtt_ms"])
    enabled = int(params["slow_start_after_idle"]) == 1
    n = segments(RESPONSE_BYTES, mss_bytes(kernel))
    rto = nominal_rto_ms(r, jiffy_ms(kernel))
    cwnd = TCP_INIT_CWND
    out = {"segments": n, "rto_ms": rto, "rounds": [rounds(cwnd, TCP_INFINITE_SSTHRESH, n)]}
    cwnd = grown_cwnd(cwnd, n)
    gaps = [WARM_GAP_S, WARM_GAP_S] + [float(params["idle_s"])] * IDLE_RESPONSES
    for gap in gaps:
        # The server last sent data when R(k-1)'s last segment left; the
        # next request reaches it d + gap + d later.
        cwnd = restart_cwnd(cwnd, gap * 1000.0 + r, rto, enabled)
        out["rounds"].append(rounds(cwnd, TCP_INFINITE_SSTHRESH, n))
        cwnd = grown_cwnd(cwnd, n)
    return out


def predict(params: dict, kernel: dict) -> dict:
    """Times as whole rounds of r: the new connection pays the handshake and
    slow start from IW; the warm reference one round; the reused responses
    the rounds of the chain above.  The RTO from tcp_set_rto's rule."""
    r = float(params["rtt_ms"])
    chain = nominal_chain(params, kernel)
    k = chain["rounds"]
    return {"new_conn_ms": r * (1 + k[0]), "warm_ms": r * k[2],
            "reuse_ms": r * statistics.fmean(k[3:]), "rto_ms": chain["rto_ms"],
            "model_miss_count": 0.0}


def explain_response(before: dict, after: dict, elapsed_ms: float, rtt_ms: float,
                     enabled: bool) -> dict:
    """The model fed with the TCP_INFO read just before (BEFORE) and just
    after (AFTER) the server queued one response, against what happened."""
    expected_cwnd = restart_cwnd(before["snd_cwnd"], before["last_data_sent_ms"],
                                 before["rto_ms"], enabled, in_flight=before["unacked"])
    n = segments(RESPONSE_BYTES, before["snd_mss"])
    expected_rounds = rounds(expected_cwnd, after["snd_ssthresh"], n)
    measured_rounds = max(1, round(elapsed_ms / rtt_ms))
    return {"expected_cwnd": expected_cwnd, "measured_cwnd": after["snd_cwnd"],
            "expected_rounds": expected_rounds, "measured_rounds": measured_rounds,
            "miss": expected_cwnd != after["snd_cwnd"] or expected_rounds != measured_rounds}


def check(entry: dict) -> tuple[bool, str]:
    """CLAIMS [13]'s pass criterion: with the sysctl at 1 and idle > RTO the
    reused responses are >= 3x slower than warm; without a restart (sysctl
    0, or idle + r <= RTO) they are within 15% of warm.  The RTO is the one
    the server read from TCP_INFO."""
    p, m = entry["params"], entry["measured"]
    if not all(k in m for k in ("reuse_ms", "warm_ms", "rto_ms")) or m["warm_ms"] <= 0:
        return False, "reuse_ms, warm_ms or rto_ms missing"
    ratio = m["reuse_ms"] / m["warm_ms"]
    idle_ms = float(p["idle_s"]) * 1000.0
    on = int(p["slow_start_after_idle"]) == 1
    if on and idle_ms > m["rto_ms"]:
        return ratio >= 3.0, (f"reuse/warm {ratio:.2f}x, need >= 3x "
                              f"(idle {idle_ms:g} ms > RTO {m['rto_ms']:g} ms)")
    if not on or idle_ms + float(p["rtt_ms"]) <= m["rto_ms"]:
        return abs(ratio - 1.0) <= 0.15, f"reuse/warm {ratio:.2f}x, need 1 ± 0.15 (no restart)"
    return True, f"reuse/warm {ratio:.2f}x (idle just under the RTO: no ratio criterion)"


# -- the lab -------------------------------------------------------------------

def topology_params(params: dict) -> dict:
    return {"rtt_ms": params["rtt_ms"]}


def lab_sysctls(params: dict) -> dict:
    """Everything the round counts depend on, set in every namespace (the
    host's values leak in otherwise).  tcp_wmem[1] = 4 MiB lets the server
    queue a whole response at once, so only cwnd limits a round (the 16 KiB
    default makes the first warm responses send-buffer-limited);
    tcp_rmem[1] = 128 KiB keeps R1's first rounds from being rwnd-limited
    (CLAIMS [11])."""
    common = {
        "net.ipv4.tcp_no_metrics_save": "1", "net.ipv4.tcp_timestamps": "1",
        "net.ipv4.tcp_sack": "1", "net.ipv4.tcp_window_scaling": "1",
        "net.ipv4.tcp_rmem": "4096 131072 6291456", "net.ipv4.tcp_wmem": "4096 4194304 4194304",
        "net.ipv4.tcp_moderate_rcvbuf": "1", "net.ipv4.tcp_adv_win_scale": "1",
        "net.ipv4.tcp_notsent_lowat": "4294967295", "net.ipv4.tcp_limit_output_bytes": "1048576",
        "net.ipv4.tcp_slow_start_after_idle": "1", "net.ipv4.tcp_mtu_probing": "0",
    }
    server = {"net.ipv4.tcp_slow_start_after_idle": str(int(params["slow_start_after_idle"]))}
    return {"*": common, "h2": server}


class _Server(Listener):
    """Accepts connections in h2 one after another; per request it queues
    the whole response with one non-blocking send and records TCP_INFO
    before (cwnd, idle time, RTO) and after (the restarted cwnd: no ACK can
    have come back yet)."""

    def __init__(self, lab):
        self.payload = b"x" * RESPONSE_BYTES
        self.records: queue.Queue = queue.Queue()
        super().__init__(lab["h2"], PORT, backlog=8, name="keepalive-server")

    def handle(self, conn: socket.socket) -> None:
        try:
            self._serve(conn)
        except OSError as e:  # the client went away mid-trial
            self.records.put({"error": f"{type(e).__name__}: {e}"})

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, CC.encode())
        cc = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode()
        while _recv_exact(conn, len(REQUEST)):
            before = tcpinfo.read(conn)
            conn.setblocking(False)
            try:
                queued = conn.send(self.payload)
            except BlockingIOError:
                queued = 0
            after = tcpinfo.read(conn)
            conn.setblocking(True)
            if queued < len(self.payload):
                conn.sendall(self.payload[queued:])
            self.records.put({"before": before.as_dict(), "after": after.as_dict(),
                              "queued_bytes": queued, "cc": cc})



def _recv_exact(conn: socket.socket, n: int) -> bool:
    """Read exactly N bytes; False on a clean EOF before any of them."""
    got = 0
    while got < n:
        chunk = conn.recv(n - got)
        if not chunk:
            if got:
                raise ConnectionError(f"request cut short after {got} of {n} bytes")
            return False
        got += len(chunk)
    return True


def _fetch(client: socket.socket, buf: bytearray) -> float:
    """One request and its whole response; ms from the request's send()
    to the response's last byte."""
    t0 = time.perf_counter()
    client.sendall(REQUEST)
    got = 0
    view = memoryview(buf)
    while got < RESPONSE_BYTES:
        k = client.recv_into(view[got:])
        if k == 0:
            raise ConnectionError(f"server closed after {got} of {RESPONSE_BYTES} bytes")
        got += k
    return (time.perf_counter() - t0) * 1e3


def _record(server: _Server) -> dict:
    try:
        rec = server.records.get(timeout=IO_TIMEOUT_S)
    except queue.Empty:
        raise TimeoutError(f"the server recorded no response within {IO_TIMEOUT_S:g} s") from None
    if "error" in rec:
        raise ConnectionError(f"server: {rec['error']}")
    return rec


def prepare(lab, params: dict, ctx) -> None:
    server = _Server(lab)
    lab.undo.push("stop the keep-alive server thread", server.close)
    ctx["server"] = server
    ctx["buf"] = bytearray(RESPONSE_BYTES)
    ctx["trial"] = 0
    # One untimed connection first: it resolves ARP on both hops, which
    # crosses the router's delay and would add r to the first connect.
    warm = lab["h1"].socket()
    warm.settimeout(IO_TIMEOUT_S)
    try:
        warm.connect((lab["h2"].ip(), PORT))
    finally:
        warm.close()


def trial(lab, params: dict, ctx) -> dict:
    r = float(params["rtt_ms"])
    enabled = int(params["slow_start_after_idle"]) == 1
    gaps = [0.0, WARM_GAP_S, WARM_GAP_S] + [float(params["idle_s"])] * IDLE_RESPONSES
    client = lab["h1"].socket()
    client.settimeout(IO_TIMEOUT_S)
    responses = []
    try:
        t0 = time.perf_counter()
        client.connect((lab["h2"].ip(), PORT))
        connect_ms = (time.perf_counter() - t0) * 1e3
        for gap in gaps:
            if gap:
                time.sleep(gap)
            ms = _fetch(client, ctx["buf"])
            rec = _record(ctx["server"])
            responses.append({"gap_s": gap, "ms": ms, **rec,
                              **explain_response(rec["before"], rec["after"], ms, r, enabled)})
    finally:
        client.close()
    ctx["raw"].write_text("responses.jsonl", json.dumps(
        {"trial": ctx["trial"], "connect_ms": connect_ms, "responses": responses}) + "\n")
    ctx["trial"] += 1
    reused = responses[3:]
    return {
        "new_conn_ms": connect_ms + responses[0]["ms"],
        "warm_ms": responses[2]["ms"],
        "reuse_ms": statistics.fmean(x["ms"] for x in reused),
        "rto_ms": statistics.fmean(x["before"]["rto_ms"] for x in reused),
        "model_miss_count": float(sum(x["miss"] for x in responses)),
    }
