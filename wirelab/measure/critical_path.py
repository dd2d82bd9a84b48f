"""Where the time of a span went: the network, or an end's processing.

:func:`critical_path` walks back from the packet that ends a span to its start, across
the packet taps of several nodes: the time a node spent between the last thing it
received (or sent) and its next data packet is its own processing, not the network's.
"""
from __future__ import annotations

from dataclasses import dataclass

from wirelab.errors import LabError
from wirelab.measure.packets import Segment
from wirelab.measure.tap import Event

#: A sender held back by its window transmits from the softirq that takes
#: the ACK in, microseconds later.  A data packet leaving longer than this
#: after a pure ACK arrived was waiting for its application, not the ACK.
ACK_CAUSE_S = 0.002
#: ... and only an ACK that arrived while at least this much of the node's
#: data was unacknowledged can have held it back (a congestion window is
#: never below two segments).  An ACK of a lone small packet (a TLS session
#: ticket) that happens to arrive as the application finishes is no cause.
FULL_FLIGHT_BYTES = 2 * 1448


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
