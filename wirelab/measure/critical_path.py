"""Where the time of a span went: the network, or an end's processing.

:func:`critical_path` walks back from the packet that ends a span to its start, across
the packet taps of several nodes.  It is conservative by construction: a gap counts as
a node's processing only when the walk can prove the node was holding the data itself;
every other gap is time in the network.  What it guarantees:

* **No round trip is moved into processing.**  The gap before a node's data packet is
  its processing only back to the latest thing that could have let the packet go: a
  packet that arrived with data (a request, a reply, a DNS answer), the node's own
  previous packet, or any ACK on the packet's connection (a duplicate ACK too: its
  SACK blocks may let a sender in loss recovery send new data).  Such an ACK is
  passed over only when it provably did not hold the packet back: nothing was
  retransmitted on that connection so far (so the congestion window is still at
  least the initial window), the packets in flight before it plus the packet fit in
  the initial window (counted in packets, as the kernel counts it: a 31-byte record
  takes a whole slot, a GSO packet several), its bytes fit the peer's advertised
  window, and Nagle could not have held the packet (it is a full segment, no small
  segment was unacknowledged, or the sender is declared to use TCP_NODELAY).  So a
  delayed ACK's wait, a Nagle stall and a window-limited round are network time.
* **Timers are network time.**  The gap before a pure ACK (the delayed-ACK timer) and
  before a retransmission (a timeout) is never processing, nor is the gap before TCP
  data that was not provably free to leave when it did: its window not provably open
  (by the rules above, with everything the node had received) and its connection's
  timers armed long enough (TIMER_MIN_S) for a loss probe, which sends new data when
  the window is full with nothing arriving to explain it.
* **Retransmissions are reported, never absorbed.**  A retransmitted packet on the path
  (a TCP sequence range, SYN, SYN-ACK or FIN sent again; a UDP datagram sent again) is
  walked back to its first transmission, the wait counted as network time, and named in
  the result so the caller can flag the trial.

Processing can only be under-estimated, so the network time only over-estimated: a
measurement judged on network time may come out late, never early.
"""
from __future__ import annotations

import bisect
from collections.abc import Collection
from dataclasses import dataclass, field

from wirelab.errors import LabError
from wirelab.measure.packets import TCP_ACK, TCP_FIN, TCP_SYN, Segment
from wirelab.measure.tap import Event

#: TCP_INIT_CWND (include/net/tcp.h): callers whose routes set initcwnd pass their own.
DEFAULT_IW_SEGS = 10
#: Payload bytes of a full segment when no SYN says (MTU 1500 less 40 and timestamps).
DEFAULT_MSS = 1448
TIMESTAMP_OPTION_BYTES = 12
#: The soonest a TCP timer can send data after it was armed: the loss probe waits
#: 2 x SRTT + TCP_TIMEOUT_MIN (2 jiffies, include/net/tcp.h: 2 ms or more for HZ <= 1000),
#: the retransmission and window-probe timers at least TCP_RTO_MIN.
TIMER_MIN_S = 0.002
U32 = 2 ** 32


@dataclass
class PathTime:
    """Where the time from START to END went along the critical path."""
    span_ms: float
    network_ms: float          # in flight, plus waits for timers, ACKs and windows
    compute_ms: dict           # node -> ms of its own processing on the path
    hops: int                  # packets on the path
    retransmissions: list[str] = field(default_factory=list)   # resent packets on the path

    @property
    def total_compute_ms(self) -> float:
        return sum(self.compute_ms.values())

    def describe(self) -> str:
        """One line for raw/: the span, its network time and each node's processing."""
        return (f"span {self.span_ms:.3f} ms: network {self.network_ms:.3f}, processing "
                + ", ".join(f"{n} {ms:.3f}" for n, ms in self.compute_ms.items()) + "\n")


def _key(s: Segment) -> tuple:
    return (s.proto, s.src, s.sport, s.dst, s.dport)


def _reverse(key: tuple) -> tuple:
    proto, src, sport, dst, dport = key
    return (proto, dst, dport, src, sport)


def _after(a: int, b: int) -> bool:
    """Sequence number A lies after B (mod 2^32)."""
    return 0 < (a - b) % U32 < U32 // 2


def _seq_len(s: Segment) -> int:
    return len(s.payload) + (1 if s.flags & TCP_SYN else 0) + (1 if s.flags & TCP_FIN else 0)


def _packets(s: Segment, mss: int) -> int:
    """Packets the congestion window counts for S: a GSO packet of n x MSS is n."""
    return max(1, -(-len(s.payload) // mss))


def is_data(e: Event) -> bool:
    """A packet somebody waits for: UDP, a TCP payload, SYN or FIN (not a pure ACK)."""
    s = e.seg
    return s.proto != 6 or bool(s.payload) or bool(s.flags & (TCP_SYN | TCP_FIN))


def originals(events: list[Event]) -> dict[int, int]:
    """{index of a resent packet: index of its first transmission} among one node's
    events (time order): a TCP sequence range (SYN and FIN included) or a UDP datagram
    the node had sent before."""
    sent: dict[tuple, list[tuple[int, int, int]]] = {}
    datagrams: dict[tuple, int] = {}
    out = {}
    for i, e in enumerate(events):
        if not e.out:
            continue
        s = e.seg
        if s.proto == 17:
            ident = (_key(s), s.payload)
            if ident in datagrams:
                out[i] = datagrams[ident]
            else:
                datagrams[ident] = i
            continue
        n = _seq_len(s)
        if not n:
            continue
        ranges = sent.setdefault(_key(s), [])
        first = next((j for a, length, j in ranges
                      if (s.seq - a) % U32 < length or (a - s.seq) % U32 < n), None)
        if first is not None:
            out[i] = first
        ranges.append((s.seq, n, i))
    return out


def describe(e: Event, node: str) -> str:
    s = e.seg
    what = ("SYN" if s.flags & TCP_SYN and not s.flags & TCP_ACK else
            "SYN-ACK" if s.flags & TCP_SYN else "datagram" if s.proto == 17 else
            f"{len(s.payload)} B" + (" FIN" if s.flags & TCP_FIN else ""))
    return f"{node} resent {what} to {s.dst}:{s.dport} at {e.ts:.6f}"


@dataclass
class _Conn:
    """What a node knew of one of its TCP connections at a moment (from its own tap)."""
    snd_una: int | None = None      # the peer has acknowledged everything before this
    small_unacked: bool = False     # a sub-MSS segment of the node's is unacknowledged
    in_flight: int = 0              # packets sent and not wholly acknowledged
    peer_window: int | None = None  # bytes the peer's last ACK offered
    mss: int = DEFAULT_MSS
    resent: bool = False            # the node has retransmitted on it


class _Node:
    """One node's tap, indexed for the walk."""

    def __init__(self, events: list[Event]):
        self.events = events
        self.index = {id(e): i for i, e in enumerate(events)}
        self.first = originals(events)
        self.conns: dict[tuple, list[int]] = {}
        for i, e in enumerate(events):
            k = _key(e.seg) if e.out else _reverse(_key(e.seg))
            self.conns.setdefault(k, []).append(i)
        # Where the node's TCP timers were (re)armed, per connection: its data sent, and
        # ACKs that acknowledged something new.
        self.armed: dict[tuple, list[int]] = {}
        for k, idx in self.conns.items():
            una, marks = None, []
            for i in idx:
                s = events[i].seg
                if events[i].out:
                    if _seq_len(s):
                        marks.append(i)
                elif s.flags & TCP_ACK and (una is None or _after(s.ack, una)):
                    una = s.ack
                    marks.append(i)
            self.armed[k] = marks

    def last_armed(self, key: tuple, before: int) -> Event | None:
        marks = self.armed.get(key, [])
        j = bisect.bisect_left(marks, before)
        return self.events[marks[j - 1]] if j else None

    def state(self, key: tuple, until: int) -> _Conn:
        """Connection KEY (as this node sends on it) after the node's events before index
        UNTIL (indexes, not times: capture times are ~1e9 s, where a nanosecond is
        below a float's resolution)."""
        c, wscale, peer_ts, small, sent = _Conn(), 0, False, [], []
        for i in self.conns.get(key, []):
            if i >= until:
                break
            e = self.events[i]
            s = e.seg
            if e.out:
                n = _seq_len(s)
                if c.snd_una is None and n:
                    c.snd_una = s.seq
                if s.payload and len(s.payload) < c.mss:
                    small.append((s.seq + len(s.payload)) % U32)
                if n:
                    sent.append(((s.seq + n) % U32, _packets(s, c.mss)))
                c.resent = c.resent or i in self.first
                continue
            if s.flags & TCP_SYN:
                peer_ts = s.ts_opt
                wscale = max(s.wscale, 0)
                if s.mss_opt:
                    c.mss = s.mss_opt - (TIMESTAMP_OPTION_BYTES if peer_ts else 0)
            if s.flags & TCP_ACK:
                if c.snd_una is None or _after(s.ack, c.snd_una):
                    c.snd_una = s.ack
                c.peer_window = s.window << (0 if s.flags & TCP_SYN else wscale)
        if c.snd_una is not None:
            c.small_unacked = any(_after(end, c.snd_una) for end in small)
            c.in_flight = sum(k for end, k in sent if _after(end, c.snd_una))
        return c


def _window_open(c: _Conn, s: Segment, iw_segs: int, nodelay: bool) -> bool:
    """Could nothing but the application have held S, given what the node knew (C)?"""
    if c.resent or c.snd_una is None or c.peer_window is None:
        return False
    need = (s.seq + len(s.payload) - c.snd_una) % U32
    # The congestion window counts packets, however small (a GSO packet is several).
    if need >= U32 // 2 or c.in_flight + _packets(s, c.mss) > iw_segs or need > c.peer_window:
        return False
    return nodelay or len(s.payload) >= c.mss or not c.small_unacked


def _cannot_have_held(node: _Node, ack: Event, send: Event, key: tuple, iw_segs: int,
                      nodelay: bool) -> bool:
    """True only if ACK provably did not hold SEND back (see the module docstring)."""
    return _window_open(node.state(key, node.index[id(ack)]), send.seg, iw_segs, nodelay)


def _free(node: _Node, ev: Event, iw_segs: int, nodelay: bool) -> bool:
    """Was data packet EV free to leave the moment it did, so that only the node itself
    can have held it?  A SYN or a datagram always.  TCP data when its window was
    provably open, or when no TCP timer can have sent it: less than TIMER_MIN_S since
    the connection's timers were last armed.  (Else a loss probe, a window probe or an
    ACK that never came may have sent it: the wait is the network's.)"""
    s = ev.seg
    if s.proto != 6 or s.flags & TCP_SYN:
        return True
    i, key = node.index[id(ev)], _key(s)
    if _window_open(node.state(key, i), s, iw_segs, nodelay):
        return True
    armed = node.last_armed(key, i)
    return armed is not None and ev.ts - armed.ts < TIMER_MIN_S


def _cause(node: _Node, ev: Event, iw_segs: int, nodelay: bool) -> Event | None:
    """The latest event at the node that could have let data packet EV leave."""
    key = _key(ev.seg)
    for e in reversed(node.events[:node.index[id(ev)]]):
        if e.ts > ev.ts:
            continue
        if e.out:
            if is_data(e):
                return e                      # the node kept sending
            continue                          # its own pure ACKs hold nothing back
        if is_data(e):
            return e                          # something arrived to act on
        # Any ACK on the connection, a duplicate too: one may carry SACK news that
        # lets a sender in recovery send, or let limited transmit (RFC 3042) send.
        if e.seg.proto == 6 and _reverse(_key(e.seg)) == key \
                and not _cannot_have_held(node, e, ev, key, iw_segs, nodelay):
            return e                          # an ACK that may have opened the window
    return None


def _departure(events: list[Event], arrival: Event) -> Event | None:
    """The sender's departure of ARRIVAL (a GSO packet may leave whole and arrive in
    pieces, so data is matched by its first byte; routers here rewrite nothing)."""
    key, r = _key(arrival.seg), arrival.seg
    for e in reversed(events):
        if not (e.out and e.ts <= arrival.ts and _key(e.seg) == key):
            continue
        s = e.seg
        if s.proto != 6:
            if s.payload == r.payload:
                return e
        elif r.payload:
            if s.payload and (r.seq - s.seq) % U32 < len(s.payload):
                return e
        elif not s.payload and s.seq == r.seq and s.ack == r.ack and s.flags == r.flags:
            return e
    return None


def critical_path(taps: dict[str, list[Event]], owner: dict[str, str], start: float,
                  end_node: str, end: Event, iw_segs: int = DEFAULT_IW_SEGS,
                  nodelay: Collection[str] = frozenset()) -> PathTime:
    """Walk back from END (a packet arriving at END_NODE) to START along the chain of
    causes.  An arrival was caused by the same packet's departure from its sender
    (``owner`` maps IP address -> node with a tap; a node without one is part of the
    network).  IW_SEGS: the initial congestion window of the connections; NODELAY: the
    nodes whose senders set TCP_NODELAY (Nagle cannot hold their packets)."""
    nodes = {name: _Node(ev) for name, ev in taps.items()}
    compute: dict[str, float] = {}
    network, hops = 0.0, 0
    resent: list[str] = []
    node, ev = end_node, end
    while ev.ts > start:
        if not ev.out:
            sender = owner.get(ev.seg.src)
            if sender is None:
                # A node without a tap is part of the network: the exchange with it
                # runs from what this node last sent it.
                asked = next((e for e in reversed(taps[node]) if e.out and e.ts < ev.ts
                              and e.seg.dst == ev.seg.src), None)
                if asked is None:
                    raise LabError(f"{node} received a packet from {ev.seg.src}, which has no "
                                   "tap, without having sent it anything")
                network += ev.ts - max(asked.ts, start)
                ev, hops = asked, hops + 1
                continue
            send = _departure(taps[sender], ev)
            if send is None:
                raise LabError(f"{sender}'s tap has no departure of a packet that reached {node}")
            network += ev.ts - max(send.ts, start)
            node, ev, hops = sender, send, hops + 1
            continue
        here = nodes[node]
        i = here.index[id(ev)]
        if i in here.first:
            # A retransmission: the wait since the first transmission was a timer's.
            resent.append(describe(ev, node))
            first = here.events[here.first[i]]
            network += ev.ts - max(first.ts, start)
            ev = first
            continue
        own = is_data(ev) and _free(here, ev, iw_segs, node in nodelay)
        if is_data(ev):
            pred = _cause(here, ev, iw_segs, node in nodelay)
        else:   # a pure ACK: the gap before it is the delayed-ACK timer's
            pred = next((e for e in reversed(here.events[:i])
                         if e.ts <= ev.ts and (not e.out or is_data(e))), None)
        gap = ev.ts - (pred.ts if pred is not None and pred.ts > start else start)
        if own:
            compute[node] = compute.get(node, 0.0) + gap
        else:
            network += gap
        if pred is None or pred.ts <= start:
            break
        ev = pred
    span = end.ts - start
    return PathTime(span * 1e3, network * 1e3, {n: c * 1e3 for n, c in compute.items()}, hops,
                    resent)


def over_budget(compute_ms: dict[str, float], budget_ms: dict[str, float], what: str) -> str:
    """Each end's processing on a path against the budget its experiment declares (think
    time plus a stated margin): why a trial went over (a gap nothing explains: the trial
    is excluded, recorded and never judged; a point that cannot collect its trials within
    the runner's limit is a lab fault), or "" when it did not."""
    over = {n: ms for n, ms in compute_ms.items() if ms > budget_ms.get(n, 0.0)}
    return f"{what}: " + ", ".join(
        f"{n} processed for {ms:.1f} ms on the path, over its budget of "
        f"{budget_ms.get(n, 0.0):g} ms" for n, ms in over.items()) if over else ""

