"""[02] tls_handshake_rtts: round trips a TLS handshake costs before the first
application byte, for TLS 1.2 and 1.3, full and resumed, and 0-RTT.

openssl s_server in h2, a fresh s_client per trial in h1 (verifying against the lab
CA), r1 delays each direction by rtt_ms/2.  tcpdump at both ends; the timeline comes
from the captures, never from process clocks:

    client's interface:  SYN out -- r -- handshake ACK out -- n*r + compute -- first app-data byte out

n: round trips after the TCP handshake (wirelab.models.tls).  The verdict counts them:
the network time on the critical path through both captures, which counts a gap as an
end's processing only when that end provably held the data (wirelab.measure.tls_timing);
raw/ keeps interval and processing.  Processing over BUDGET_MS is a lab fault; a trial
with a retransmission on the path is excluded.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

from wirelab.errors import LabError
from wirelab.measure import capture
from wirelab.measure.critical_path import over_budget
from wirelab.measure.tls_timing import new_connection
from wirelab.models.tcp import iw_of
from wirelab.models.tls import HANDSHAKES, Handshake, handshake_round_trips
from wirelab.peers import openssl
from wirelab.peers.openssl import ClientReport, parse_s_client, s_client_argv, s_server_argv
from wirelab.peers.web import make_certs
from wirelab.spec import Bars, Choice, Metric, Param, Tolerance
from wirelab.spec.context import exclusion
from wirelab.topologies.routed_path import RoutedPath

ID = "tls_handshake_rtts"
ALIASES = ("tls_rtts",)
CLAIM = "TLS 1.2 costs 2 RTTs, TLS 1.2 resumption and TLS 1.3 (full or PSK) 1 RTT, only 0-RTT early data 0"
SECTION = "§1 step 4; §8 latency numbers; §11 level 2"
TEXT_SAYS = "TLS 1.2 handshake: 2 RTTs; TLS 1.3: 1 RTT (0-RTT with resumption)"
TOPOLOGY = RoutedPath
NEEDS = {"netem"}
TOOLS = ("openssl", "tcpdump")


MODES = HANDSHAKES          # name -> what the client offers (wirelab.models.tls)
PARAMS = [
    Param("rtt_ms", default=50, min=1, max=1000, grid=(10, 50, 100), quick=(50,),
          help="round-trip time added by the router, ms"),
    Choice("mode", tuple(MODES), default="tls13_full", grid=tuple(MODES), quick=tuple(MODES),
           help="handshake kind"),
]
REPEATS = 10
QUICK_REPEATS = 3
# The count is exact: n round trips and at most a tenth of one more per round trip (at
# least a tenth), never fewer (nothing beats its round trips), so one round off never
# passes.
METRICS = [
    Metric("handshake_rtts", "network round trips from the TCP handshake's last ACK to the "
           "first application-data byte at the server (endpoint compute removed)",
           Tolerance(abs=0.0, rel=0.10, min_abs=0.1, resolution=0.01)),
    Metric("handshake_ms", "the same interval in ms (endpoint compute removed)",
           Tolerance(abs=0.0, rel=0.10, min_rtt_frac=0.10)),
]
X = "rtt_ms"
FIGURE = Bars("How many round trips does each TLS handshake cost before the first byte?",
              (("round trips", "handshake_rtts"),), x="mode", unit="round trips", ylabel="network",
              labels={"tls12_full": "TLS 1.2 full", "tls12_resumed": "TLS 1.2 resumed (ticket)",
                      "tls13_full": "TLS 1.3 full", "tls13_psk": "TLS 1.3 resumed (PSK)",
                      "tls13_0rtt": "TLS 1.3 0-RTT early data"})
PORT = 4433
#: One line long enough that no TLS 1.3 encrypted handshake message (Finished <= 69
#: bytes) can be mistaken for it.
PAYLOAD = b"A" * 199 + b"\n"
CLIENT_TIMEOUT_S = 30.0
#: Processing each end may show on the path: no think time, but a fresh openssl process
#: under UML pays for every page it touches (7-17 ms measured at the client, 0.6-2.5 ms
#: at the server): four times that.
BUDGET_MS = {"client": 70.0, "server": 10.0}


def predict(params: dict, kernel: dict) -> dict:
    """n round trips of r each, counted from the end of the TCP handshake, so no kernel
    constant enters: Fast Open is off and the server's flight (< 2 KB) fits the
    initial window."""
    m = MODES[params["mode"]]
    n = handshake_round_trips(m.version, m.resume, m.early_data)
    return {"handshake_rtts": float(n), "handshake_ms": n * float(params["rtt_ms"])}


def run_client(lab, ctx, mode: Handshake, resume: bool, want_ticket: bool) -> ClientReport:
    """One s_client connection that sends PAYLOAD (as early data too in 0-RTT mode).
    With WANT_TICKET it stays open until the server's session ticket has been saved
    (TLS 1.3 sends tickets after the handshake); that session is resumed next."""
    st = ctx.state
    st.n_client += 1
    sess_out = st.workdir / f"session-{st.n_client}.pem"
    argv = s_client_argv(lab["h2"].ip(), PORT, mode.version, st.certs.ca,
                         sess_in=st.session if resume else None, sess_out=sess_out,
                         early_data=st.payload_file if mode.early_data and resume else None)
    rc, text = openssl.run_s_client(lab["h1"], argv, PAYLOAD, st.workdir / f"s_client-{st.n_client}.txt",
                                    ticket=sess_out if want_ticket else None, timeout_s=CLIENT_TIMEOUT_S)
    ctx.raw.write_text("s_client.txt", f"### connection {st.n_client}: {' '.join(argv)}\n{text}\n")
    if rc != 0:
        raise LabError(f"s_client exited {rc}: {text[-400:]}")
    if want_ticket:
        if not openssl.saved(sess_out):
            raise LabError("s_client exited without saving a session ticket")
        st.session = sess_out
    return parse_s_client(text)


def check_report(mode_name: str, report: ClientReport, resumed_expected: bool) -> None:
    """Refuse a trial that did not do what its mode says (early data only when it
    resumes in 0-RTT mode)."""
    mode = MODES[mode_name]
    early = "accepted" if mode.early_data and resumed_expected else "not sent"
    problems = report.problems(mode.version, resumed_expected, early)
    if problems:
        raise LabError(f"{mode_name}: " + "; ".join(problems))


def prepare(lab, params: dict, ctx) -> None:
    mode = MODES[params["mode"]]
    wd = Path(lab.workdir)
    st = ctx.state = SimpleNamespace(workdir=wd, seen=set(), n_client=0, session=None,
                                     pcap_h1=wd / "h1.pcap", pcap_h2=wd / "h2.pcap",
                                     payload_file=wd / "payload.txt",
                                     certs=make_certs(lab, [lab["h2"].ip()]))
    st.payload_file.write_bytes(PAYLOAD)
    for node, pcap in (("h1", st.pcap_h1), ("h2", st.pcap_h2)):
        capture.start(lab, node, f"{node}-eth0", pcap, ["tcp", "port", str(PORT)])
    # A TLS 1.2 server without a session cache can resume only by ticket; a TLS 1.3
    # server allows early data in every 1.3 mode, so PSK resumption without it is the
    # client's choice, not the server's.
    argv = s_server_argv(PORT, mode.version, st.certs.cert, st.certs.key,
                         early_data=mode.version == "1.3", no_cache=mode.version == "1.2")
    openssl.start_s_server(lab["h2"], argv, PORT, wd / "s_server.txt", CLIENT_TIMEOUT_S)
    ctx.raw.write_text("s_server.txt", " ".join(argv) + "\n")
    # One untimed full handshake: warms the server, resolves ARP across the router
    # and, for the resumed modes, brings the first session ticket.
    check_report(params["mode"], run_client(lab, ctx, mode, resume=False,
                                            want_ticket=mode.resume), resumed_expected=False)
    new_connection(st.pcap_h1, st.pcap_h2, PORT, st.seen, len(PAYLOAD))
    ctx.raw.write_text("trials_detail.csv", "connection,client_port,resumed,early_data,"
                       "interval_ms,from_syn_ms,client_compute_ms,server_compute_ms,"
                       "network_ms,rtts\n")


def trial(lab, params: dict, ctx) -> dict:
    mode, st = MODES[params["mode"]], ctx.state
    report = run_client(lab, ctx, mode, resume=mode.resume, want_ticket=mode.fresh_ticket)
    check_report(params["mode"], report, resumed_expected=mode.resume)
    conn, timing = new_connection(st.pcap_h1, st.pcap_h2, PORT, st.seen, len(PAYLOAD),
                                  iw_segs=iw_of(ctx.kernel))
    over = over_budget({"client": timing.client_compute_s * 1e3,
                        "server": timing.server_compute_s * 1e3}, BUDGET_MS, f"connection {st.n_client}")
    row = timing.as_row(float(params["rtt_ms"]))
    ctx.raw.write_text("trials_detail.csv", ",".join(
        [str(st.n_client), str(conn.client[1]), str(report.reused), str(report.early_data)]
        + [f"{row[k]:.3f}" for k in ("interval_ms", "from_syn_ms", "client_compute_ms",
                                     "server_compute_ms", "network_ms", "rtts")]) + "\n")
    # The captures (lab addresses and throw-away keys only) so far, for tshark.
    for pcap in (st.pcap_h1, st.pcap_h2):
        shutil.copyfile(pcap, ctx.raw.path(pcap.name))
    return {"handshake_rtts": row["rtts"], "handshake_ms": timing.network_ms} | exclusion(
        "resent: " + "; ".join(timing.retransmissions) if timing.retransmissions else "", over)
