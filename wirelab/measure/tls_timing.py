"""Where the time before a TLS connection's first application byte goes.

Between the end of the TCP handshake and the first application-data byte
at the server, a TLS connection spends its time in two ways: in flight
(each round trip the protocol needs costs one RTT) and computing at the
ends (key exchange, signatures, certificate checks, and whatever the
endpoints' processes do between reading one flight and writing the next).
On real hardware the second part is a fraction of a millisecond; inside
User-Mode Linux, where a fresh process pays for every page it touches, it
is several milliseconds per flight.  A claim about round trips is a claim
about the first part, so this module separates the two, using only
timestamps the kernel put into two captures: one at the client's
interface, one at the server's.

A node's *compute* on the critical path is, for every data segment it
sends inside the window, the time since the later of (a) its own previous
data segment or the window's start and (b) the last segment it received.
Nothing is ever waiting on the network during that time: it had everything
it was going to get and had not yet sent what came next.  Any segment
received counts as (b), pure ACKs included, so a sender held back by Nagle
or a congestion window is charged to the network, not to compute: the
subtraction can only under-estimate compute, never hide a round trip.
Server segments that reached the client only after it had sent its
application data (TLS 1.3 session tickets, for one) were not waited for and
are left out.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wirelab.errors import LabError
from wirelab.lab.wait import poll
from wirelab.measure.packets import Connection, Segment, connections, read_pcap_file
from wirelab.measure.tls_records import first_app_data, tls_records


@dataclass(frozen=True)
class HandshakeTiming:
    """One connection's timeline (seconds, capture clock) and its split."""
    syn_s: float             # the client's SYN reaches the server
    ack_s: float             # the client's handshake-completing ACK reaches the server
    app_s: float             # the first application-data byte reaches the server
    client_compute_s: float  # client compute on the critical path (ACK sent .. app data sent)
    server_compute_s: float  # server compute on the critical path (ACK in .. app data in)

    @property
    def interval_ms(self) -> float:
        """As the server's capture saw it: handshake ACK to first app-data byte."""
        return (self.app_s - self.ack_s) * 1e3

    @property
    def from_syn_ms(self) -> float:
        return (self.app_s - self.syn_s) * 1e3

    @property
    def compute_ms(self) -> float:
        return (self.client_compute_s + self.server_compute_s) * 1e3

    @property
    def network_ms(self) -> float:
        """The interval less both ends' compute: time spent in round trips."""
        return self.interval_ms - self.compute_ms

    def rtts(self, rtt_ms: float) -> float:
        return self.network_ms / rtt_ms

    def as_row(self, rtt_ms: float) -> dict:
        return {"interval_ms": self.interval_ms, "from_syn_ms": self.from_syn_ms,
                "client_compute_ms": self.client_compute_s * 1e3,
                "server_compute_ms": self.server_compute_s * 1e3,
                "network_ms": self.network_ms, "rtts": self.rtts(rtt_ms)}


def compute_time(conn: Connection, of_client: bool, start: float, end: float,
                 waited_for: Callable[[Segment], bool] = lambda s: True) -> float:
    """Seconds the client (OF_CLIENT) or the server spent computing on the
    critical path in (START, END], from a capture taken at that node's own
    interface (see the module docstring for the rule).  Only the node's data
    segments for which WAITED_FOR is true count."""
    total, last_own, last_in = 0.0, start, start
    for s in conn.segments:
        if s.ts > end:
            break
        if s.ts <= start:
            continue
        if conn.from_client(s) == of_client:
            if s.payload and waited_for(s):
                total += s.ts - max(last_own, last_in)
                last_own = s.ts
        else:
            last_in = s.ts
    return total


def _received_by(client_side: Connection, server_isn: int, deadline: float):
    """A predicate: had the client received all of server segment SEG by
    DEADLINE?  Judged by bytes, not segments (segmentation may differ
    between the two captures)."""
    stream = client_side.stream(from_client=False)

    def received(seg: Segment) -> bool:
        last = (seg.seq - server_isn - 1) % 2**32 + len(seg.payload) - 1
        return last < len(stream.data) and stream.time_of(last) <= deadline
    return received


class IncompleteCapture(LookupError):
    """The capture does not (yet) hold what the measurement needs."""


def measure(client_side: Connection, server_side: Connection, min_app_bytes: int) -> HandshakeTiming:
    """The timeline of one connection seen in two captures of it: CLIENT_SIDE
    taken at the client's interface, SERVER_SIDE at the server's.  The first
    application-data record is the first content-type-23 record from the
    client at least MIN_APP_BYTES long.  Raise IncompleteCapture if either
    capture lacks it (yet)."""
    if client_side.key != server_side.key:
        raise ValueError(f"not the same connection: {client_side.key} vs {server_side.key}")
    srv_app = first_app_data(tls_records(server_side.stream()), min_app_bytes)
    if srv_app is None:
        raise IncompleteCapture("no application-data record at the server yet")
    cli = {r.offset: r for r in tls_records(client_side.stream())}
    if srv_app.offset not in cli:
        raise IncompleteCapture("the application-data record is not in the client's capture")
    t0_client, ack_server = client_side.handshake_ack_time(), server_side.handshake_ack_time()
    server_isn = server_side.server_isn()
    if t0_client is None or ack_server is None or server_isn is None:
        raise IncompleteCapture("the three-way handshake is incomplete")
    t1_client = cli[srv_app.offset].ts
    return HandshakeTiming(
        syn_s=server_side.syn_time(), ack_s=ack_server, app_s=srv_app.ts,
        client_compute_s=compute_time(client_side, True, t0_client, t1_client),
        server_compute_s=compute_time(server_side, False, ack_server, srv_app.ts,
                                      _received_by(client_side, server_isn, t1_client)))


def new_connection(pcap_client: Path, pcap_server: Path, port: int, seen: set,
                   min_app_bytes: int, timeout_s: float = 15.0) -> tuple[Connection, HandshakeTiming]:
    """The one connection to PORT in two growing captures (at the client's and the
    server's interface) whose key is not in SEEN, and its timing, once both captures
    hold its first application-data record (tcpdump writes each packet as it comes,
    so this polls with a deadline).  Its key is added to SEEN."""
    def attempt():
        server = [c for c in connections(read_pcap_file(pcap_server), port) if c.key not in seen]
        client = {c.key: c for c in connections(read_pcap_file(pcap_client), port)}
        if len(server) > 1:
            raise LabError(f"{len(server)} new connections in the capture, expected one")
        if not server or server[0].key not in client:
            return None
        try:
            return server[0], measure(client[server[0].key], server[0], min_app_bytes)
        except IncompleteCapture:
            return None
    conn, timing = poll(attempt, timeout_s, "the new connection's first application-data "
                        "record in both captures")
    seen.add(conn.key)
    return conn, timing
