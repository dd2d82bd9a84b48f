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

:func:`critical_path` follows the rule of :mod:`wirelab.measure.tls_timing` across
several nodes and connections: the time a node spent between the last
thing it received (or sent) and its next data packet is its own
processing, not the network's.
"""
from __future__ import annotations

import math
import socket
import struct
from dataclasses import dataclass

from wirelab.errors import LabError
from wirelab.measure.packets import LINKTYPE_ETHERNET, Segment, decode_frame

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35          # asm-generic/socket.h (SO_TIMESTAMPNS_OLD)
SO_RCVBUFFORCE = 33
BUFFER_BYTES = 32 << 20      # ~10 000 full-size frames between two drains
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

    def __init__(self, node, icmp: bool = False):
        """ICMP: keep ICMP messages too (an unreachable is an answer)."""
        self.node, self.icmp = node, icmp
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
            seg = decode_frame(frame, LINKTYPE_ETHERNET, ts, self.icmp)
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

    def __enter__(self) -> Tap:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_taps(lab, *names: str, icmp: bool = False) -> dict[str, Tap]:
    """{name: a Tap} on each of the lab's nodes NAMES (ICMP as for :class:`Tap`), each
    closed by the lab's undo stack."""
    taps = {}
    for name in names:
        taps[name] = Tap(lab[name], icmp=icmp)
        lab.undo.push(f"close the packet tap on {name}", taps[name].close)
    return taps


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


def exchange_span(events: list[Event], server_port: int) -> tuple[Event, Event]:
    """A client's request and reply on a connection to SERVER_PORT as its own
    interface saw them: its first payload sent to the port and the last payload that
    came back.  LabError unless both are there."""
    sent = [e for e in events if e.out and e.seg.proto == 6 and e.seg.dport == server_port
            and e.seg.payload]
    back = [e for e in events if not e.out and e.seg.proto == 6
            and e.seg.sport == server_port and e.seg.payload]
    if not sent or not back or back[-1].ts < sent[0].ts:
        raise LabError(f"the capture has no request to port {server_port} followed by a reply "
                       f"({len(sent)} sent, {len(back)} received)")
    return sent[0], back[-1]


def timeline(events: list[Event], t0: float | None = None, windows: bool = False) -> str:
    """One line per packet, for raw/: ms since T0, direction, addresses,
    TCP flags and payload length (WINDOWS: then the window field and the sequence
    number)."""
    if not events:
        return ""
    t0 = events[0].ts if t0 is None else t0
    names = "FSRPAU"
    lines = []
    for e in events:
        s = e.seg
        flags = "".join(n for i, n in enumerate(names) if s.flags & (1 << i)) if s.proto == 6 else "udp"
        lines.append(f"{(e.ts - t0) * 1e3:10.3f} {'>' if e.out else '<'} {s.src}:{s.sport} "
                     f"{s.dst}:{s.dport} {flags or '.'} {len(s.payload)}"
                     + (f" win={s.window} seq={s.seq}" if windows else ""))
    return "\n".join(lines) + "\n"


def tapped(taps: dict[str, Tap], action):
    """Call ACTION() with TAPS drained just before (whatever came earlier is dropped)
    and just after: (what it returned, {tap name: events})."""
    for tap in taps.values():
        tap.drain()
    got = action()
    return got, {name: tap.drain() for name, tap in taps.items()}


def run_tapped(node, argv: list[str], taps: dict[str, Tap], *, timeout_s: float = 120,
               binds=None):
    """Run ARGV in NODE between two drains of TAPS (see :func:`tapped`): (the completed
    process, {tap name: events}).  The exit status is the caller's to judge."""
    return tapped(taps, lambda: node.run(argv, timeout_s=timeout_s, check=False, binds=binds))


def timelines(events: dict[str, list[Event]]) -> str:
    """Every tap's packets, for raw/, on one time axis (ms since the first packet)."""
    t0 = min((e[0].ts for e in events.values() if e), default=None)
    return "".join(f"--- packets at {name} (ms) ---\n" + timeline(ev, t0)
                   for name, ev in events.items())


def ladder(events: dict[str, list[Event]], nodes: list[str], title: str = "") -> dict:
    """One exchange between tapped NODES as a packet ladder (for a figure): every packet
    one of them sent that another received, with its departure and arrival in ms since
    the first, what it carried, and the waits before a pure ACK (a delayed-ACK timer)."""
    t0 = min((e.ts for n in nodes for e in events.get(n, [])), default=0.0)
    owner: dict[str, str] = {}
    for n in nodes:
        for e in events.get(n, []):
            if e.out:
                owner.setdefault(e.seg.src, n)
    packets, gaps = [], []
    for n in nodes:
        last_data_in = None
        for e in events.get(n, []):
            s = e.seg
            if not e.out:
                if s.payload:
                    last_data_in = e
                continue
            peer = owner.get(s.dst)
            arrival = next((a for a in events.get(peer or "", []) if not a.out and a.ts >= e.ts
                            and a.seg.seq == s.seq and a.seg.flags == s.flags
                            and len(a.seg.payload) == len(s.payload)), None)
            if peer is None or arrival is None:
                continue
            kind = "data" if s.payload or s.flags & 0x03 else "ack"
            label = f"{len(s.payload)} B" if s.payload else ("ACK" if kind == "ack" else "SYN/FIN")
            packets.append({"from": n, "to": peer, "sent_ms": (e.ts - t0) * 1e3,
                            "arrive_ms": (arrival.ts - t0) * 1e3, "label": label, "kind": kind})
            if kind == "ack" and last_data_in is not None and e.ts - last_data_in.ts > 0.005:
                gaps.append({"node": n, "from_ms": (last_data_in.ts - t0) * 1e3,
                             "to_ms": (e.ts - t0) * 1e3,
                             "label": f"delayed ACK\n{(e.ts - last_data_in.ts) * 1e3:.0f} ms"})
    return {"title": title, "nodes": nodes, "packets": packets, "gaps": gaps}


def zero_window_probes(events: list[Event], port: int) -> tuple[float, list[float], list[float]]:
    """At a sender whose peer shut its window: (the last packet heard before the first
    probe, the one that left nothing in flight and armed the probe timer; the probes, pure
    ACKs sent until the window reopened; the first packet heard after each probe)."""
    mine = [e for e in events if e.seg.proto == 6 and port in (e.seg.sport, e.seg.dport)]
    zero = next((e for e in mine if not e.out and e.seg.window == 0), None)
    if zero is None:
        raise LabError("the sender never saw a zero window")
    reopen = next((e.ts for e in mine if not e.out and e.ts > zero.ts and e.seg.window > 0), None)
    probes = [e.ts for e in mine if e.out and e.ts > zero.ts and not e.seg.payload
              and (reopen is None or e.ts < reopen)]
    if len(probes) < 2:
        raise LabError(f"{len(probes)} zero-window probes before the window reopened, not 2")
    armed = max(e.ts for e in mine if not e.out and e.ts < probes[0])
    answers = [next((e.ts for e in mine if not e.out and e.ts > p), math.inf) for p in probes]
    return armed, probes, answers


@dataclass(frozen=True)
class PersistSchedule:
    """A sender's zero-window probes (:func:`zero_window_probes`: the packet that armed
    the probe timer, the probes, each one's answer) and the RTO its TCP_INFO reported
    while the window was zero, the unit the probe timer counts in."""
    armed: float
    probes: list[float]
    answers: list[float]
    rto_s: float

    @property
    def first_probe_rto(self) -> float:
        """From the packet that left nothing in flight to the first probe, in RTOs."""
        return (self.probes[0] - self.armed) / self.rto_s

    @property
    def backoff_rto(self) -> float:
        """From the first probe's answer to the second probe, in RTOs."""
        return (self.probes[1] - self.answers[0]) / self.rto_s


def persist_schedule(events: list[Event], samples: list[dict], port: int) -> PersistSchedule:
    """The probe schedule at a sender (EVENTS: its tap) whose peer shut its window, with
    the RTO from its TCP_INFO SAMPLES over the same time (the first with snd_wnd 0)."""
    armed, probes, answers = zero_window_probes(events, port)
    shut = [s["rto"] for s in samples if s["snd_wnd"] == 0]
    if not shut:
        raise LabError("TCP_INFO never showed the zero window")
    return PersistSchedule(armed, probes, answers, shut[0] / 1e6)


def answered_ms(events: list[Event], syns: list[Event]) -> float | None:
    """At a client's tap: the first SYN out to the first answer in (a SYN-ACK, an RST or an
    ICMP message: tap with icmp=True), ms; None when nothing answered.  The network's time
    to an answer, not the client program's time in connect() (a process inside UML)."""
    if not syns:
        return None
    syn = syns[0].seg

    def answers(s: Segment) -> bool:       # an unreachable, or this SYN's own RST / SYN-ACK
        return s.proto == 1 and s.sport == 3 or (
            s.proto == 6 and s.dport == syn.sport and s.ack == (syn.seq + 1) & 0xFFFFFFFF)
    back = next((e for e in events if not e.out and e.ts > syns[0].ts and answers(e.seg)), None)
    return None if back is None else (back.ts - syns[0].ts) * 1e3
