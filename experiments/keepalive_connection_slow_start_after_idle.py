"""[13] keepalive_connection_slow_start_after_idle: a kept-alive connection skips the handshake, but
not slow start once it has been idle longer than an RTO.

Server h2 sends 1 MiB per request to client h1 across router r1 (rtt_ms/2 each way).
The server, an in-process thread, reads TCP_INFO just before and after it queues each
response, so every response is explained by the connection's own state then:

    connect, R1          new connection: handshake + slow start from IW   -> new_conn_ms
    50 ms, R2            warm-up: after R1 cwnd is about N, R2 may need a 2nd round
    50 ms, R3            warm reference: cwnd >= N, one round              -> warm_ms
    I, R4, I, R5, I, R6  four responses with idle gaps I           -> reuse_ms = mean(R4..R6)

With the sysctl at 1 and idle (about I + r) longer than the RTO, ``tcp_cwnd_restart`` halves cwnd
once per RTO of idle, down to min(IW, cwnd).  The prediction follows that chain (wirelab.models.tcp);
per response the model fed with that moment's TCP_INFO must match the cwnd after the restart and
the round count (``model_miss_count``)."""
from __future__ import annotations

import contextlib
import json
import socket
import statistics
import time

from wirelab.measure import tcpinfo
from wirelab.models import tcp
from wirelab.models.timers import hz_of, nominal_rto_ms, rto_min_of
from wirelab.peers.listener import RecordingListener, fetch_ms, recv_exact
from wirelab.spec import REPORTED, Bars, Choice, Metric, Param, Tolerance
from wirelab.topologies.routed_path import RoutedPath

ID = "keepalive_connection_slow_start_after_idle"
ALIASES = ("keepalive_idle", "slow_start_after_idle")
CLAIM = ("A kept-alive connection skips the handshake, but after idling longer than the RTO "
         "Linux restarts slow start (tcp_slow_start_after_idle=1): slower than a warm connection")
SECTION = "§3 HTTP keep-alive and connection reuse"
TEXT_SAYS = "HTTP keep-alive reuses connections (skip slow start)."
TOPOLOGY = RoutedPath
NEEDS = {"netem"}
PARAMS = [
    Param("idle_s", default=1.0, min=0.01, max=30.0, grid=(0.05, 1.0, 5.0), quick=(0.05, 1.0),
          help="idle gap before each reused response, s"),
    Choice("slow_start_after_idle", ("1", "0"), default="1", grid=("1", "0"), quick=("1", "0"),
           help="1 = restart cwnd after idle", sysctl="net.ipv4.tcp_slow_start_after_idle",
           advice="set it to 0 on servers with long-lived connections", effect=("reuse_ms", "warm_ms")),
    Param("rtt_ms", default=50, min=10, max=500, grid=(50,), quick=(50,),
          help="round-trip time added by the router, ms (>= 10: rounds are counted from times)"),
]
REPEATS = 5
QUICK_REPEATS = 3
# Whole rounds: never fewer, at most a third of one more (one round off never passes).
_ROUNDS = Tolerance(abs=0.0, rel=0.0, rtt_frac=1 / 3)
METRICS = [
    Metric("new_conn_ms", "connect() plus the first 1 MiB response on the new connection", _ROUNDS),
    Metric("warm_ms", "a 1 MiB response 50 ms after the previous one (the reference)", _ROUNDS),
    # Each response's rounds are judged exactly (model_miss_count), the restart (check).
    Metric("reuse_ms", "mean of the three 1 MiB responses after an idle gap of idle_s", REPORTED),
    # srtt may exceed r by a tick before the RTO rounds up; below r + RTO_MIN: impossible.
    Metric("rto_ms", "the server's RTO (tcpi_rto) when it sends those responses",
           Tolerance(abs=0.0, rel=0.0, jiffies=1)),
    Metric("model_miss_count", "responses of the trial (of 6) whose restarted cwnd or round count "
           "differs from the model fed with that moment's TCP_INFO", Tolerance(abs=0.0, rel=0.0)),
]
X = "idle_s"
FIGURE = Bars("Does an idle kept-alive connection start slow again?", (("new connection", "new_conn_ms"), (
    "warm", "warm_ms"), ("after idle", "reuse_ms")), notes=(("rto_ms", "RTO {value:.0f} ms (TCP_INFO)"),))
PORT, RESPONSE_BYTES, REQUEST = 5013, 1 << 20, b"GET /1MiB\n"
WARM_GAP_S, IDLE_RESPONSES = 0.05, 3
CC = "reno"              # no HyStart exit, no cong_control hook: the RFC 2861 path
IO_TIMEOUT_S = 60.0


CLIENT_RMEM = "4096 4194304 6291456"     # a window of 2 MiB (6.1), ~3 MiB (6.12): a whole response


def lab_sysctls(params: dict) -> dict:
    """tcp_wmem[1] 4 MiB: the server queues a whole response at once, so only cwnd limits a
    round; the client's tcp_rmem[1] 4 MiB: its window never does either (with 131072 the
    window left for the 2nd response is what autotuning made of it: on 6.12 a 2nd round in
    4 of 12 trials).  The sidecar says more."""
    return {"*": {"net.ipv4.tcp_wmem": "4096 4194304 4194304",
                  "net.ipv4.tcp_limit_output_bytes": "1048576"},
            "h1": {"net.ipv4.tcp_rmem": CLIENT_RMEM},
            "h2": {"net.ipv4.tcp_slow_start_after_idle": str(int(params["slow_start_after_idle"]))}}


def nominal_rounds(params: dict, kernel: dict) -> list[int]:
    """Rounds of every response of one trial: cwnd decides, as the receive-window model of
    the running release must agree (tcp.cwnd_decides; the facts are the client's, h1)."""
    r, on = float(params["rtt_ms"]), int(params["slow_start_after_idle"]) == 1
    mss = tcp.mss_from_kernel(kernel)
    n = tcp.segments(RESPONSE_BYTES, mss)
    rto, cwnd = nominal_rto_ms(r, hz_of(kernel), rto_min_of(kernel)), tcp.iw_of(kernel)
    out = [tcp.rounds(cwnd, tcp.TCP_INFINITE_SSTHRESH, n)]
    tcp.cwnd_decides(RESPONSE_BYTES, cwnd, mss, tcp.receiver_from_kernel(kernel), out[0])
    cwnd = tcp.grown_cwnd(cwnd, n)
    for gap in [WARM_GAP_S, WARM_GAP_S] + [float(params["idle_s"])] * IDLE_RESPONSES:
        # The server last sent data when the previous response's last segment left;
        # the next request reaches it d + gap + d later.
        cwnd = tcp.restart_cwnd(cwnd, gap * 1000.0 + r, rto, on)
        out.append(tcp.rounds(cwnd, tcp.TCP_INFINITE_SSTHRESH, n))
        cwnd = tcp.grown_cwnd(cwnd, n)
    return out


def predict(params: dict, kernel: dict) -> dict:
    """Times as whole rounds of r: the new connection pays the handshake and slow start
    from IW; the warm reference one round; the reused responses the chain's rounds."""
    r, k = float(params["rtt_ms"]), nominal_rounds(params, kernel)
    return {"new_conn_ms": r * (1 + k[0]), "warm_ms": r * k[2],
            "reuse_ms": r * statistics.fmean(k[3:]),
            "rto_ms": nominal_rto_ms(r, hz_of(kernel), rto_min_of(kernel)),
            "model_miss_count": 0.0}


def explain_response(before: dict, after: dict, elapsed_ms: float, rtt_ms: float, enabled: bool) -> dict:
    """The model fed with TCP_INFO read just BEFORE and AFTER the server queued one response, against
    what happened."""
    expected_cwnd = tcp.restart_cwnd(before["snd_cwnd"], before["last_data_sent"],
                                     before["rto"] / 1000.0, enabled, in_flight=before["unacked"])
    expected_rounds = tcp.rounds(expected_cwnd, after["snd_ssthresh"],
                                 tcp.segments(RESPONSE_BYTES, before["snd_mss"]))
    # k rounds take [k r, (k + 1/3) r]; a time between is a hiccup, not a round count
    k = int(elapsed_ms // rtt_ms)
    measured_rounds = k if elapsed_ms <= (k + 1 / 3) * rtt_ms else None
    return {"expected_cwnd": expected_cwnd, "measured_cwnd": after["snd_cwnd"],
            "expected_rounds": expected_rounds, "measured_rounds": measured_rounds,
            "miss": expected_cwnd != after["snd_cwnd"] or measured_rounds not in (None, expected_rounds)}


def check(entry: dict) -> str | None:
    """Restarted (sysctl 1, idle > the RTO from TCP_INFO): reuse >= 3x warm; else within 15%."""
    p, m = entry["params"], entry["measured"]
    ratio = m["reuse_ms"] / m["warm_ms"]
    idle_ms = float(p["idle_s"]) * 1000.0
    on = int(p["slow_start_after_idle"]) == 1
    if on and idle_ms > m["rto_ms"] and ratio < 3.0:
        return f"reuse/warm {ratio:.2f}x, need >= 3x (idle > RTO)"
    if (not on or idle_ms + float(p["rtt_ms"]) <= m["rto_ms"]) and abs(ratio - 1.0) > 0.15:
        return f"reuse/warm {ratio:.2f}x, need 1 ± 0.15 (no restart)"
    return None


def note(entry: dict) -> str:
    return f"reuse/warm {entry['measured']['reuse_ms'] / entry['measured']['warm_ms']:.2f}x"


class _Server(RecordingListener):
    """Per request: TCP_INFO, the whole response queued by one non-blocking send, and
    TCP_INFO again (the restarted cwnd: no ACK can have come back yet)."""
    payload = b"x" * RESPONSE_BYTES

    def serve(self, conn: socket.socket) -> None:
        cc = tcpinfo.set_congestion(conn, CC)
        while recv_exact(conn, len(REQUEST)):
            before = tcpinfo.read(conn)
            conn.setblocking(False)
            queued = 0
            with contextlib.suppress(BlockingIOError):
                queued = conn.send(self.payload)
            after = tcpinfo.read(conn)
            conn.setblocking(True)
            conn.sendall(self.payload[queued:])
            self.put({"before": before, "after": after, "queued_bytes": queued, "cc": cc})


def prepare(lab, params: dict, ctx) -> None:
    st = ctx.state
    st.server, st.buf = _Server(lab["h2"], PORT, backlog=8), bytearray(RESPONSE_BYTES)
    lab.undo.push("stop the keep-alive server thread", st.server.close)
    # Untimed: resolves ARP on both hops (it crosses the delay, adding r to a connect).
    with lab["h1"].socket() as warm:
        warm.settimeout(IO_TIMEOUT_S)
        warm.connect((lab["h2"].ip(), PORT))


def trial(lab, params: dict, ctx) -> dict:
    r, st = float(params["rtt_ms"]), ctx.state
    enabled, responses = int(params["slow_start_after_idle"]) == 1, []
    with lab["h1"].socket() as client:
        client.settimeout(IO_TIMEOUT_S)
        t0 = time.perf_counter()
        client.connect((lab["h2"].ip(), PORT))
        connect_ms = (time.perf_counter() - t0) * 1e3
        for gap in [0.0, WARM_GAP_S, WARM_GAP_S] + [float(params["idle_s"])] * IDLE_RESPONSES:
            time.sleep(gap)
            ms = fetch_ms(client, REQUEST, st.buf)
            rec = st.server.record(IO_TIMEOUT_S)
            responses.append({"gap_s": gap, "ms": ms, **rec,
                              **explain_response(rec["before"], rec["after"], ms, r, enabled)})
    ctx.raw.write_text("responses.jsonl", json.dumps(
        {"trial": ctx.repeat, "connect_ms": connect_ms, "responses": responses}) + "\n")
    reused = responses[3:]
    return {"new_conn_ms": connect_ms + responses[0]["ms"], "warm_ms": responses[2]["ms"],
            "reuse_ms": statistics.fmean(x["ms"] for x in reused),
            "rto_ms": statistics.fmean(x["before"]["rto"] / 1000.0 for x in reused),
            "model_miss_count": float(sum(x["miss"] for x in responses))}
