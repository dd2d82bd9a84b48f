"""In-process packet taps: what crossed a lab node's interfaces, and when.

A :class:`Tap` is one ``AF_PACKET`` socket opened inside a node's namespace
that sees every IPv4 packet the node sends or receives on its non-loopback
interfaces, stamped by the kernel (``SO_TIMESTAMPNS``) as it crossed the
interface.  Nobody reads the socket while an experiment's traffic runs: the
kernel queues the packets in a large receive buffer and the experiment
drains them afterwards, so a tap costs no process, no wake-up and no CPU
time on the path it measures (inside User-Mode Linux, where the lab has one
virtual CPU, a capturing tcpdump competes with the processes it watches).
A buffer overflow is detected (``PACKET_STATISTICS``) and is an error,
never a silently shorter timeline.  The kernel hands an outgoing packet to
the tap after the interface's egress qdisc: a tapped node must have no delay
of its own on egress (the lab puts delay on routers), or the delay would be
read as that node's processing.

:func:`critical_path` follows the rule of :mod:`wirelab.tls_timing` across
several nodes and connections: the time a node spent between the last
thing it received (or sent) and its next data packet is its own
processing, not the network's.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from wirelab.errors import LabError
from wirelab.tls_pcap import LINKTYPE_ETHERNET, Segment, _decode_frame

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35          # asm-generic/socket.h (SO_TIMESTAMPNS_OLD)
SO_RCVBUFFORCE = 33
BUFFER_BYTES = 32 << 20      # ~10 000 full-size frames between two drains
#: A sender held back by its window transmits from the softirq that takes
#: the ACK in, microseconds later.  A data packet leaving longer than this
#: after a pure ACK arrived was waiting for its application, not the ACK.
ACK_CAUSE_S = 0.002
#: ... and only an ACK that arrived while at least this much of the node's
#: data was unacknowledged can have held it back (a congestion window is
#: never below two segments).  An ACK of a lone small packet (a TLS session
#: ticket) that happens to arrive as the application finishes is no cause.
FULL_FLIGHT_BYTES = 2 * 1448


@dataclass(frozen=True)
class Event:
    """One packet at one node: OUT is True when the node sent it."""
    ts: float
    out: bool
    seg: Segment

    @property
    def data(self) -> bool:
        """A packet somebody waits for: UDP, a TCP payload, SYN or FIN (a
        pure ACK is not one)."""
        s = self.seg
        return s.proto != 6 or bool(s.payload) or bool(s.flags & 0x03)


class Tap:
    """Every IPv4 packet at NODE's non-loopback interfaces, queued in the
    kernel until :meth:`drain`.  Close it (or use it as a context manager);
    a lab's undo stack can own it."""

    def __init__(self, node):
        self.node = node
        self.sock = node.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, BUFFER_BYTES)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self._stats()  # reading the counters resets them

    def _stats(self) -> tuple[int, int]:
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        return struct.unpack("II", raw)

    def drain(self) -> list[Event]:
        """Every packet queued since the last drain, oldest first."""
        out = []
        while True:
            try:
                frame, anc, _flags, addr = self.sock.recvmsg(65535, 64)
            except BlockingIOError:
                break
            # addr: (ifname, proto, pkttype, hatype, hwaddr)
            if addr[0] == "lo":
                continue
            ts = None
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    ts = sec + nsec * 1e-9
            if ts is None:
                raise LabError(f"tap on {self.node.name}: a packet came without a timestamp")
            seg = _decode_frame(frame, LINKTYPE_ETHERNET, ts)
            if seg is not None:
                out.append(Event(ts, addr[2] == PACKET_OUTGOING, seg))
        _packets, drops = self._stats()
        if drops:
            raise LabError(f"tap on {self.node.name}: the kernel dropped {drops} packets "
                           f"(buffer {BUFFER_BYTES >> 20} MiB full): the timeline is incomplete")
        out.sort(key=lambda e: e.ts)
        return out

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Tap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fetch_span(events: list[Event], server_port: int, min_bytes: int) -> dict:
    """A client's batch of fetches as its own interface saw it: from its
    first SYN to SERVER_PORT to the last payload that arrived from that port
    before the client started closing (its first FIN: what came after is
    the servers' goodbye, not a response).  Raise LabError unless at least
    MIN_BYTES of payload arrived in that span (every response was in it)."""
    tcp = [e for e in events if e.seg.proto == 6]
    # Connections this batch opened (a capture may begin with the previous
    # batch's goodbyes).
    opened = {e.seg.sport: e.ts for e in tcp if e.out and e.seg.dport == server_port
              and e.seg.flags & 0x02 and not e.seg.flags & 0x10}
    if not opened:
        raise LabError(f"no SYN to port {server_port} in the capture")
    first = min(opened.values())
    ours = [e for e in tcp if (e.seg.sport if e.out else e.seg.dport) in opened
            and (e.seg.dport if e.out else e.seg.sport) == server_port and e.ts >= first]
    fins = [e.ts for e in ours if e.out and e.seg.flags & 0x01]
    cut = min(fins) if fins else float("inf")
    data = [e for e in ours if not e.out and e.seg.payload and e.ts < cut]
    got = sum(len(e.seg.payload) for e in data)
    if not data or got < min_bytes:
        raise LabError(f"only {got} B arrived from port {server_port} before the client closed "
                       f"(want at least {min_bytes} B): the capture misses part of the batch")
    return {"span_ms": (data[-1].ts - first) * 1e3, "connections": len(opened), "bytes": got,
            "start": first, "last": data[-1]}


def timeline(events: list[Event], t0: float | None = None) -> str:
    """One line per packet, for raw/: ms since T0, direction, addresses,
    TCP flags and payload length."""
    if not events:
        return ""
    t0 = events[0].ts if t0 is None else t0
    names = "FSRPAU"
    lines = []
    for e in events:
        s = e.seg
        flags = "".join(n for i, n in enumerate(names) if s.flags & (1 << i)) if s.proto == 6 else "udp"
        lines.append(f"{(e.ts - t0) * 1e3:10.3f} {'>' if e.out else '<'} {s.src}:{s.sport} "
                     f"{s.dst}:{s.dport} {flags or '.'} {len(s.payload)}")
    return "\n".join(lines) + "\n"


def _window_was_full(events: list[Event], ack: Event) -> bool:
    """Had the node (whose EVENTS these are) at least FULL_FLIGHT_BYTES of
    data unacknowledged on ACK's connection when ACK arrived?"""
    a = ack.seg
    mine = (a.proto, a.dst, a.dport, a.src, a.sport)
    snd_nxt = una = None
    for e in events:
        if e.ts >= ack.ts:
            break
        s = e.seg
        if e.out and s.payload and _tuple(s) == mine:
            end = (s.seq + len(s.payload)) % 2**32
            if una is None:
                una = s.seq            # nothing acknowledged yet: all of it is out
            if snd_nxt is None or 0 < (end - snd_nxt) % 2**32 < 2**31:
                snd_nxt = end
        elif not e.out and s.flags & 0x10 and (s.proto, s.dst, s.dport, s.src, s.sport) == mine:
            una = s.ack                # the last acknowledgement before this one
    if snd_nxt is None or una is None:
        return False
    flight = (snd_nxt - una) % 2**32
    return flight < 2**31 and flight >= FULL_FLIGHT_BYTES


@dataclass
class PathTime:
    """Where the time from START to END went along the critical path."""
    span_ms: float
    network_ms: float              # in flight, plus waits for timers and ACKs
    compute_ms: dict               # node -> ms of its own processing on the path
    hops: int                      # packets on the path

    @property
    def total_compute_ms(self) -> float:
        return sum(self.compute_ms.values())


def _tuple(s: Segment) -> tuple:
    return (s.proto, s.src, s.sport, s.dst, s.dport)


def _carried(send: Segment, recv: Segment) -> bool:
    """Is RECV (as it arrived) the packet SEND (as it left), or a piece of
    it?  Routers here neither rewrite nor re-segment, but a GSO packet may
    leave whole and arrive in parts, so data is matched by its first byte."""
    if send.proto != 6:
        return send.payload == recv.payload
    if recv.payload:
        return bool(send.payload) and (recv.seq - send.seq) % 2**32 < len(send.payload)
    return (not send.payload and send.seq == recv.seq and send.ack == recv.ack
            and send.flags == recv.flags)


def critical_path(taps: dict[str, list[Event]], owner: dict[str, str], start: float,
                  end_node: str, end: Event) -> PathTime:
    """Walk back from END (a packet arriving at END_NODE) to START along
    the chain of causes: an arrival was caused by the same packet's
    departure from its sender (``owner`` maps IP address -> node with a
    tap); a node's departure by the latest thing before it at that node,
    a packet it received or its own previous departure (a pure ACK only if
    the data left within ACK_CAUSE_S of it).  The gap before a
    data packet leaves (UDP, a TCP payload, SYN or FIN) is the node's
    processing; the gap before a pure ACK leaves is a timer's (delayed ACK)
    and is counted as network time, as is all time in flight.  Choosing the
    latest predecessor makes every gap as short as possible: processing can
    only be under-estimated, never a round trip hidden."""
    compute: dict[str, float] = {}
    network, hops = 0.0, 0
    node, ev = end_node, end
    while ev.ts > start:
        if not ev.out:
            sender = owner.get(ev.seg.src)
            if sender is None:
                # A node without a tap is part of the network: the exchange
                # with it runs from what this node last sent it.
                asked = next((e for e in reversed(taps[node]) if e.out and e.ts < ev.ts
                              and e.seg.dst == ev.seg.src), None)
                if asked is None:
                    raise LabError(f"{node} received a packet from {ev.seg.src}, which has no "
                                   "tap, without having sent it anything")
                network += ev.ts - max(asked.ts, start)
                ev, hops = asked, hops + 1
                continue
            key = _tuple(ev.seg)
            send = None
            for e in reversed(taps[sender]):
                if e.out and e.ts <= ev.ts and _tuple(e.seg) == key and _carried(e.seg, ev.seg):
                    send = e
                    break
            if send is None:
                raise LabError(f"{sender}'s tap has no departure of a packet that reached {node}")
            network += ev.ts - max(send.ts, start)
            node, ev, hops = sender, send, hops + 1
            continue
        pred = None
        for e in reversed(taps[node]):
            if e.ts < ev.ts or (e.ts == ev.ts and e is not ev and not e.out):
                if e.out and not e.data:
                    continue
                if not e.out and not e.data and ev.data and (
                        ev.ts - e.ts > ACK_CAUSE_S or not _window_was_full(taps[node], e)):
                    continue      # not an ACK this send can have waited for
                pred = e
                break
        if pred is None or pred.ts <= start:
            gap = ev.ts - start
            pred = None
        else:
            gap = ev.ts - pred.ts
        if ev.data:
            compute[node] = compute.get(node, 0.0) + gap
        else:
            network += gap
        if pred is None:
            break
        ev = pred
    span = end.ts - start
    return PathTime(span * 1e3, network * 1e3, {n: c * 1e3 for n, c in compute.items()}, hops)
