"""Where the time before a TLS connection's first application byte goes.

Between the end of the TCP handshake and the client's first application-data byte, a
TLS connection spends its time in two ways: in flight (each round trip the protocol
needs costs one RTT) and computing at the ends (key exchange, signatures, certificate
checks, and whatever the endpoints' processes do between reading one flight and
writing the next).  On real hardware the second part is a fraction of a millisecond;
inside User-Mode Linux, where a fresh process pays for every page it touches, it is
several milliseconds per flight.  A claim about round trips is a claim about the first
part, so this module separates the two, using only timestamps the kernel put into two
captures: one at the client's interface, one at the server's.

The interval runs on the client's interface, from its handshake-completing ACK leaving
to the segment that carries the first application-data byte leaving: the round trips
the client waits before it may send.  (The server sees the same byte half an RTT later
whatever the handshake, so the count is the same on its clock.)  The split is
:func:`wirelab.measure.critical_path.critical_path` over the two captures: conservative
by construction, it counts a gap as an end's processing only when that end provably
held the data, so network time is never under-estimated, and it names any
retransmission on the path (walked back to its first transmission as network time).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wirelab.errors import LabError
from wirelab.lab.wait import poll
from wirelab.measure.critical_path import DEFAULT_IW_SEGS, critical_path
from wirelab.measure.packets import Connection, connections, read_pcap_file
from wirelab.measure.tap import Event
from wirelab.measure.tls_records import first_app_data, tls_records


@dataclass(frozen=True)
class HandshakeTiming:
    """One connection's timeline (seconds, capture clock, at the client's interface)
    and its split."""
    syn_s: float             # the client's SYN leaves
    ack_s: float             # the client's handshake-completing ACK leaves
    app_s: float             # the first application-data byte leaves
    network_s: float         # in flight and waiting, on the critical path
    client_compute_s: float  # the client's own processing on the critical path
    server_compute_s: float  # the server's
    retransmissions: tuple[str, ...] = field(default=())   # resent packets on the path

    @property
    def interval_ms(self) -> float:
        """Handshake ACK out to the first app-data byte out, at the client."""
        return (self.app_s - self.ack_s) * 1e3

    @property
    def from_syn_ms(self) -> float:
        return (self.app_s - self.syn_s) * 1e3

    @property
    def compute_ms(self) -> float:
        return (self.client_compute_s + self.server_compute_s) * 1e3

    @property
    def network_ms(self) -> float:
        """The interval's time on the critical path spent in round trips."""
        return self.network_s * 1e3

    def rtts(self, rtt_ms: float) -> float:
        return self.network_ms / rtt_ms

    def as_row(self, rtt_ms: float) -> dict:
        return {"interval_ms": self.interval_ms, "from_syn_ms": self.from_syn_ms,
                "client_compute_ms": self.client_compute_s * 1e3,
                "server_compute_ms": self.server_compute_s * 1e3,
                "network_ms": self.network_ms, "rtts": self.rtts(rtt_ms)}


def _events(conn: Connection, at_client: bool) -> list[Event]:
    return sorted((Event(s.ts, conn.from_client(s) == at_client, s) for s in conn.segments),
                  key=lambda e: e.ts)


class IncompleteCapture(LookupError):
    """The capture does not (yet) hold what the measurement needs."""


def measure(client_side: Connection, server_side: Connection, min_app_bytes: int,
            iw_segs: int = DEFAULT_IW_SEGS) -> HandshakeTiming:
    """The timeline of one connection seen in two captures of it: CLIENT_SIDE
    taken at the client's interface, SERVER_SIDE at the server's.  The first
    application-data record is the first content-type-23 record from the
    client at least MIN_APP_BYTES long that reached the server.  Raise
    IncompleteCapture if either capture lacks it (yet)."""
    if client_side.key != server_side.key:
        raise ValueError(f"not the same connection: {client_side.key} vs {server_side.key}")
    srv_app = first_app_data(tls_records(server_side.stream()), min_app_bytes)
    if srv_app is None:
        raise IncompleteCapture("no application-data record at the server yet")
    cli = {r.offset: r for r in tls_records(client_side.stream())}
    if srv_app.offset not in cli:
        raise IncompleteCapture("the application-data record is not in the client's capture")
    t0 = client_side.handshake_ack_time()
    if t0 is None or server_side.handshake_ack_time() is None:
        raise IncompleteCapture("the three-way handshake is incomplete")
    events = {"client": _events(client_side, True), "server": _events(server_side, False)}
    # The first departure of the segment that carries the record's first byte.
    def carries(e: Event) -> bool:
        rel = (e.seg.seq - client_side.isn - 1) % 2**32
        return e.out and rel <= srv_app.offset < rel + len(e.seg.payload)
    end = next(e for e in events["client"] if carries(e))
    owner = {client_side.client[0]: "client", client_side.server[0]: "server"}
    path = critical_path(events, owner, t0, "client", end, iw_segs)
    return HandshakeTiming(
        syn_s=client_side.syn_time(), ack_s=t0, app_s=end.ts, network_s=path.network_ms / 1e3,
        client_compute_s=path.compute_ms.get("client", 0.0) / 1e3,
        server_compute_s=path.compute_ms.get("server", 0.0) / 1e3,
        retransmissions=tuple(path.retransmissions))


def new_connection(pcap_client: Path, pcap_server: Path, port: int, seen: set,
                   min_app_bytes: int, timeout_s: float = 15.0,
                   iw_segs: int = DEFAULT_IW_SEGS) -> tuple[Connection, HandshakeTiming]:
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
            return server[0], measure(client[server[0].key], server[0], min_app_bytes, iw_segs)
        except IncompleteCapture:
            return None
    conn, timing = poll(attempt, timeout_s, "the new connection's first application-data "
                        "record in both captures")
    seen.add(conn.key)
    return conn, timing
