"""[02] tls_handshake_rtts: round trips a TLS handshake costs before the
first application byte, for TLS 1.2 and 1.3, full and resumed, and 0-RTT.

openssl s_server runs in h2, one fresh openssl s_client per trial in h1
(it verifies the server against the lab CA), router r1 delays each
direction by rtt_ms/2.  tcpdump captures at both ends; the timeline is
read from the captures, never from process clocks:

    server clock:  SYN in -- r -- handshake ACK in -- n*r + compute -- first app-data byte in

n is the number of round trips (flights the client must wait for) after
the TCP handshake:

    TLS 1.2 full     CH -> SH..Done | CKE,CCS,Fin -> CCS,Fin | data      n = 2
    TLS 1.2 ticket   CH+ticket -> SH,CCS,Fin | CCS,Fin,data              n = 1
    TLS 1.3 full     CH -> SH..Fin | Fin,data                            n = 1
    TLS 1.3 PSK      CH+PSK -> SH..Fin | Fin,data                        n = 1
    TLS 1.3 0-RTT    CH+PSK,early data                                   n = 0

Inside User-Mode Linux each fresh s_client spends milliseconds computing
between flights (page faults of a new process cost ~30x native), so the raw
interval is n*r plus several ms of compute.  The verdict counts round trips:
the interval less the compute both ends did on the critical path, which two
captures measure exactly (wirelab.tls_timing).  The raw interval and the
compute are kept in raw/ for every trial.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wirelab.errors import LabError
from wirelab.experiment import Choice, Param, Tolerance
from wirelab.services import make_certs
from wirelab.tls_openssl import (PROTOCOL_NAME, ClientReport, parse_s_client, redact,
                                 s_client_argv, s_server_argv)
from wirelab.tls_pcap import connections, read_pcap_file
from wirelab.tls_timing import IncompleteCapture, measure
from wirelab.wait import poll

ID = "tls_handshake_rtts"
ALIASES = ("tls_rtts",)
CLAIM = "TLS 1.2 costs 2 RTTs, TLS 1.2 resumption and TLS 1.3 (full or PSK) 1 RTT, only 0-RTT early data 0"
SECTION = "§1 step 4; §8 latency numbers; §11 level 2"
TEXT_SAYS = "TLS 1.2 handshake: 2 RTTs; TLS 1.3: 1 RTT (0-RTT with resumption)"
LINUX_FACT = (
    "Resumption alone does not give 0-RTT: a TLS 1.3 PSK (ticket) resumption still waits one "
    "round trip for the server's Finished before the client may send data (RFC 8446 §2.2), "
    "exactly like a full TLS 1.3 handshake. 0-RTT needs early data (RFC 8446 §2.3): the "
    "client sends it with the ClientHello, encrypted with a ticket from an earlier "
    "connection that advertised max_early_data; the server must allow it (OpenSSL: "
    "SSL_CTX_set_max_early_data and SSL_read_early_data, s_server -early_data), and early "
    "data is replayable, so OpenSSL's anti-replay accepts each ticket once (the client needs "
    "a fresh ticket, which TLS 1.3 sends after the handshake: a client must read it before "
    "closing). TLS 1.2 resumption by ticket (RFC 5077) saves one of its two round trips. "
    "TCP Fast Open (tcp_fastopen, set 0 here) would remove the TCP round trip before all "
    "of this. Inside UML the endpoints also compute for several ms per flight (fresh "
    "s_client processes); the count is of network round trips, with that compute measured "
    "from captures at both ends and removed (raw/trials_detail.csv keeps the raw interval)."
)
TOPOLOGY = "routed_path"
NEEDS = {"netem"}
TOOLS = ("openssl", "tcpdump")


@dataclass(frozen=True)
class Mode:
    version: str            # "1.2" or "1.3"
    resume: bool            # offer a session from an earlier connection
    early_data: bool        # send the payload as 0-RTT early data
    fresh_ticket: bool      # each connection must use the ticket the previous one received


MODES = {
    "tls12_full": Mode("1.2", resume=False, early_data=False, fresh_ticket=False),
    "tls12_resumed": Mode("1.2", resume=True, early_data=False, fresh_ticket=False),
    "tls13_full": Mode("1.3", resume=False, early_data=False, fresh_ticket=False),
    "tls13_psk": Mode("1.3", resume=True, early_data=False, fresh_ticket=True),
    "tls13_0rtt": Mode("1.3", resume=True, early_data=True, fresh_ticket=True),
}

PARAMS = [
    Param("rtt_ms", default=50, min=1, max=1000, grid=(10, 50, 100), quick=(50,),
          help="round-trip time added by the router, ms"),
    Choice("mode", tuple(MODES), default="tls13_full", grid=tuple(MODES), quick=tuple(MODES),
           help="handshake kind"),
]
REPEATS = 10
QUICK_REPEATS = 3
METRICS = {
    "handshake_rtts": "network round trips from the TCP handshake's last ACK to the first "
                      "application-data byte at the server (endpoint compute removed), RTTs",
    "handshake_ms": "the same interval in ms (endpoint compute removed), ms",
}
X = "rtt_ms"


@dataclass(frozen=True)
class RttCountTolerance(Tolerance):
    """CLAIMS [02]'s criterion: the RTT count is exact, counting one RTT as
    r ± 10%.  n round trips pass within n ± 0.1·n RTTs; zero round trips
    within 0.1 RTT (a tenth of an RTT is not a round trip).  IN_MS: the
    metric is in ms, so the band is scaled by the point's rtt_ms."""
    in_ms: bool = False

    def margin(self, predicted: float, params: dict | None = None) -> float:
        r = float((params or {}).get(self.rtt_param, 0.0)) if self.in_ms else 1.0
        n = predicted / r if r else 0.0
        return self.rel * max(n, 1.0) * r

    def describe(self, unit: str = "ms") -> str:
        return (f"{self.statistic} within ±{self.rel * 100:g}% of an RTT per round trip "
                f"(at least ±{self.rel * 100:g}% of one RTT)")


TOLERANCE = {
    "handshake_rtts": RttCountTolerance(abs=0.0, rel=0.10, symmetric=True),
    "handshake_ms": RttCountTolerance(abs=0.0, rel=0.10, symmetric=True, in_ms=True),
}

PORT = 4433
#: The application data: one line long enough that no TLS 1.3 encrypted
#: handshake message (Finished <= 69 bytes) can be mistaken for it.
PAYLOAD = b"A" * 199 + b"\n"
CLIENT_TIMEOUT_S = 30.0
CAPTURE_TIMEOUT_S = 15.0


def topology_params(params: dict) -> dict:
    return {"rtt_ms": params["rtt_ms"]}


def lab_sysctls(params: dict) -> dict:
    # No Fast Open (its SYN would carry data and remove the TCP round trip);
    # no cached metrics from an earlier connection; Linux's default buffers
    # (the host's leak into new namespaces otherwise).
    return {"*": {"net.ipv4.tcp_fastopen": "0", "net.ipv4.tcp_no_metrics_save": "1",
                  "net.ipv4.tcp_timestamps": "1", "net.ipv4.tcp_sack": "1",
                  "net.ipv4.tcp_rmem": "4096 131072 6291456",
                  "net.ipv4.tcp_wmem": "4096 16384 4194304"}}


def handshake_round_trips(mode: str) -> int:
    """Flights the client waits for between its TCP ACK and its first
    application record (the table in the module docstring):
    TLS 1.2 full needs the server's key exchange and then its Finished (2);
    TLS 1.2 resumption and every TLS 1.3 handshake need one server flight
    (ServerHello..Finished) before the client's Finished and data (1);
    early data rides with the ClientHello (0)."""
    m = MODES[mode]
    if m.early_data:
        return 0
    if m.version == "1.2" and not m.resume:
        return 2
    return 1


def predict(params: dict, kernel: dict) -> dict:
    """n round trips of r each.  Counted from the end of the TCP handshake,
    so no kernel constant enters: Fast Open is off (tcp_fastopen=0) and the
    server's flight (< 2 KB) fits the initial window (10 segments)."""
    n = handshake_round_trips(params["mode"])
    return {"handshake_rtts": float(n), "handshake_ms": n * float(params["rtt_ms"])}


# --- captures ---------------------------------------------------------------

def start_capture(lab, node: str, intf: str, path: Path, timeout_s: float = 30.0):
    """tcpdump on INTF in NODE writing every segment of port PORT to PATH as
    it arrives (-U, --immediate-mode), as root (-Z root: the lab workdir is
    private); returns once it listens."""
    err = path.with_suffix(".err")
    with open(err, "w") as errf:
        proc = lab[node].popen(["tcpdump", "-Z", "root", "-U", "--immediate-mode", "-n",
                                "-i", intf, "-w", str(path), "tcp", "port", str(PORT)],
                               stdout=subprocess.DEVNULL, stderr=errf)

    def listening():
        if proc.poll() is not None:
            raise LabError(f"tcpdump in {node} exited {proc.returncode}: {err.read_text()[-300:]}")
        return "listening on" in err.read_text()
    poll(listening, timeout_s, f"tcpdump to listen on {intf} in {node}")
    return proc


def new_connection(ctx) -> tuple:
    """The one connection in both captures that no earlier trial measured."""
    server = [c for c in connections(read_pcap_file(ctx["pcap_h2"]), PORT)
              if c.key not in ctx["seen"]]
    client = {c.key: c for c in connections(read_pcap_file(ctx["pcap_h1"]), PORT)}
    if len(server) > 1:
        raise LabError(f"{len(server)} new connections in the capture, expected one")
    if not server or server[0].key not in client:
        raise IncompleteCapture("the new connection is not in both captures yet")
    return client[server[0].key], server[0]


def timing_of_new_connection(ctx):
    """The new connection (server-side view) and its HandshakeTiming, once
    both captures hold its first application-data record (tcpdump writes
    each packet as it comes, so this is a poll with a deadline)."""
    def attempt():
        try:
            cli, srv = new_connection(ctx)
            return cli, srv, measure(cli, srv, len(PAYLOAD))
        except IncompleteCapture:
            return None
    cli, srv, timing = poll(attempt, CAPTURE_TIMEOUT_S, "the new connection's first "
                            "application-data record in both captures")
    ctx["seen"].add(srv.key)
    return srv, timing


# --- the client ---------------------------------------------------------------

def run_client(lab, ctx, mode: Mode, resume: bool, want_ticket: bool) -> ClientReport:
    """One s_client connection that sends PAYLOAD (as early data too in 0-RTT
    mode).  With WANT_TICKET it stays open until the server's session ticket
    has arrived and been written (TLS 1.3 sends tickets after the handshake)
    and that session becomes the next one to resume."""
    wd: Path = ctx["workdir"]
    ctx["n_client"] += 1
    sess_out = wd / f"session-{ctx['n_client']}.pem"
    out = wd / f"s_client-{ctx['n_client']}.txt"
    h2ip = lab["h2"].ip()
    argv = s_client_argv(h2ip, PORT, mode.version, ctx["certs"].ca,
                         sess_in=ctx["session"] if resume else None, sess_out=sess_out,
                         early_data=ctx["payload_file"] if mode.early_data and resume else None)
    with open(out, "wb") as outf:
        proc = lab["h1"].popen(argv, stdin=subprocess.PIPE, stdout=outf, stderr=subprocess.STDOUT)
    try:
        proc.stdin.write(PAYLOAD)
        proc.stdin.flush()
        if want_ticket:
            poll(lambda: proc.poll() is not None or (sess_out.exists() and sess_out.stat().st_size),
                 CLIENT_TIMEOUT_S, "s_client to receive and save a session ticket")
    finally:
        proc.stdin.close()  # EOF: s_client sends close_notify and exits
    try:
        rc = proc.wait(timeout=CLIENT_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"s_client did not exit within {CLIENT_TIMEOUT_S} s") from e
    text = redact(out.read_text(errors="replace"))
    ctx["raw"].write_text("s_client.txt", f"### connection {ctx['n_client']}: "
                                          f"{' '.join(argv)}\n{text}\n")
    if rc != 0:
        raise LabError(f"s_client exited {rc}: {text[-400:]}")
    if want_ticket:
        if not (sess_out.exists() and sess_out.stat().st_size):
            raise LabError("s_client exited without saving a session ticket")
        ctx["session"] = sess_out
    return parse_s_client(text)


def check_report(mode_name: str, report: ClientReport, resumed_expected: bool) -> None:
    """Refuse a trial that did not do what its mode says (wrong protocol, no
    resumption, early data not accepted, certificate not verified)."""
    mode = MODES[mode_name]
    problems = []
    if not report.verified:
        problems.append("the server certificate was not verified")
    if report.protocol != PROTOCOL_NAME[mode.version]:
        problems.append(f"protocol {report.protocol}, expected {PROTOCOL_NAME[mode.version]}")
    if report.reused is not resumed_expected:
        problems.append(f"session {'reused' if report.reused else 'new'}, expected "
                        f"{'reused' if resumed_expected else 'new'}")
    if mode.version == "1.3":
        want = "accepted" if mode.early_data and resumed_expected else "not sent"
        if report.early_data != want:
            problems.append(f"early data {report.early_data}, expected {want}")
    if problems:
        raise LabError(f"{mode_name}: " + "; ".join(problems))


# --- experiment hooks ---------------------------------------------------------

def prepare(lab, params: dict, ctx) -> None:
    mode = MODES[params["mode"]]
    wd = Path(lab.workdir)
    ctx.update(workdir=wd, seen=set(), n_client=0, session=None,
               pcap_h1=wd / "h1.pcap", pcap_h2=wd / "h2.pcap", payload_file=wd / "payload.txt")
    ctx["payload_file"].write_bytes(PAYLOAD)
    ctx["certs"] = make_certs(lab, [lab["h2"].ip()])
    start_capture(lab, "h1", "h1-eth0", ctx["pcap_h1"])
    start_capture(lab, "h2", "h2-eth0", ctx["pcap_h2"])
    # A TLS 1.2 server without a session cache can resume only by ticket; a
    # TLS 1.3 server allows early data in every 1.3 mode, so PSK resumption
    # without it is the client's choice, not the server's.
    argv = s_server_argv(PORT, mode.version, ctx["certs"].cert, ctx["certs"].key,
                         early_data=mode.version == "1.3", no_cache=mode.version == "1.2")
    with open(wd / "s_server.txt", "wb") as outf:
        # stdin stays an open pipe: s_server ends a connection at EOF on stdin.
        ctx["server"] = lab["h2"].popen(argv, stdin=subprocess.PIPE, stdout=outf,
                                        stderr=subprocess.STDOUT)
    lab["h2"].wait_listening(PORT, CLIENT_TIMEOUT_S)
    ctx["raw"].write_text("s_server.txt", " ".join(argv) + "\n")
    # One untimed full handshake: warms the server, resolves ARP across the
    # router and, for the resumed modes, brings the first session ticket.
    report = run_client(lab, ctx, mode, resume=False, want_ticket=mode.resume)
    check_report(params["mode"], report, resumed_expected=False)
    timing_of_new_connection(ctx)
    ctx["raw"].write_text("trials_detail.csv", "connection,client_port,resumed,early_data,"
                          "interval_ms,from_syn_ms,client_compute_ms,server_compute_ms,"
                          "network_ms,rtts\n")


def trial(lab, params: dict, ctx) -> dict:
    mode = MODES[params["mode"]]
    report = run_client(lab, ctx, mode, resume=mode.resume, want_ticket=mode.fresh_ticket)
    check_report(params["mode"], report, resumed_expected=mode.resume)
    conn, timing = timing_of_new_connection(ctx)
    r = float(params["rtt_ms"])
    row = timing.as_row(r)
    ctx["raw"].write_text("trials_detail.csv", ",".join(
        [str(ctx["n_client"]), str(conn.client[1]), str(report.reused),
         str(report.early_data)] + [f"{row[k]:.3f}" for k in (
             "interval_ms", "from_syn_ms", "client_compute_ms", "server_compute_ms",
             "network_ms", "rtts")]) + "\n")
    # The captures (lab addresses and throw-away keys only) so far, for tshark.
    for name in ("pcap_h1", "pcap_h2"):
        ctx["raw"].dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ctx[name], ctx["raw"].dir / ctx[name].name)
    return {"handshake_rtts": timing.rtts(r), "handshake_ms": timing.network_ms}
