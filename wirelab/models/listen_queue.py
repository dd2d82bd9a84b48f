"""A listening socket's two queues, event by event, as Linux runs them
(net/ipv4/tcp_input.c ``tcp_conn_request``, tcp_minisocks.c ``tcp_check_req``,
tcp_ipv4.c ``tcp_v4_syn_recv_sock``, inet_connection_sock.c ``reqsk_timer_handler``).

The backlog B is ``min(listen(backlog), net.core.somaxconn)``.  For each event:

* a SYN arrives: if the SYN queue (request socks, acknowledged or not) holds more than B,
  the listener answers with a cookie SYN-ACK and keeps nothing when tcp_syncookies is on,
  or drops the SYN; otherwise, if the accept queue holds *more than* B (so it takes B + 1),
  the SYN is dropped; otherwise a request sock answers it.  (Both queues take B + 1:
  measured on 6.1.176 and 6.12, eight clients at once on a backlog of 3 got four request
  socks and four cookies, or four and four dropped SYNs.)
* the client's ACK arrives (of a SYN-ACK or a cookie): if the accept queue is more than
  B the ACK is dropped ("listen overflow") and, with tcp_abort_on_overflow, answered with
  RST; a request sock that saw its ACK dropped stays (acked) and resends its SYN-ACK on its
  timer (1 s, then doubling); a cookie leaves nothing: the client believes it is connected
  and the server never heard of it (a phantom).  Otherwise the connection joins the
  accept queue.
* the client, while its SYN is unanswered, sends it again on the SYN schedule
  (wirelab.models.retransmit).  The server calls accept() from ACCEPT_START_S on, then
  again ACCEPT_EVERY_S after each connection it took; an accept() on an empty queue waits
  for the next connection to join it.

Clients send their first SYNs in index order, all before any reply comes back (they start
within a few ms of each other on a path with an RTT of tens of ms); events at one instant
keep index order.  Which client wins a slot in a tie is the kernel's business, so a trial
is judged on counts and on the sorted connect times, never on client identities.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

SYNACK_TIMEOUT_S = 1.0      # TCP_TIMEOUT_INIT: a request sock resends after 1, 2, 4 ... s
SYNACK_RETRIES = 5          # net.ipv4.tcp_synack_retries default


@dataclass
class Outcome:
    connect_s: dict[int, float] = field(default_factory=dict)   # connect() returned
    served_s: dict[int, float] = field(default_factory=dict)    # the server's byte arrived
    reset: set[int] = field(default_factory=set)
    queue_at: dict[float, int] = field(default_factory=dict)    # accept queue at probe times
    overflows: int = 0          # ListenOverflows: SYNs and ACKs dropped on a full accept queue
    cookies: int = 0            # TCPReqQFullDoCookies
    syn_drops: int = 0          # TCPReqQFullDrop

    def phantoms(self) -> set[int]:
        return set(self.connect_s) - set(self.served_s) - self.reset


def simulate(clients: int, backlog: int, rtt_s: float, syn_times: list[float], *,
             syncookies: bool, abort_on_overflow: bool, accept_start_s: float,
             accept_every_s: float, until_s: float, probe_s: tuple[float, ...] = (),
             slack_s: float = 0.0) -> Outcome:
    """What CLIENTS connecting at once to a listener with BACKLOG (already capped by
    somaxconn) see until UNTIL_S.  SLACK_S makes every retransmission timer fire that much
    late (kernel timers fire late, never early): an experiment whose counts change with it
    has a race in its design."""
    out, half = Outcome(), rtt_s / 2.0
    events: list[tuple[float, int, int, str, int]] = []
    seq = 0

    def at(t: float, kind: str, c: int, order: int = 0) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (round(t, 9), order, seq, kind, c))

    for c in range(clients):
        for t in syn_times:
            at(t + (slack_s if t else 0.0) + half, "syn", c, c)
    at(accept_start_s, "accept", -1, -1)
    for t in probe_s:
        at(t, "probe", -1, -2)
    reqsk: dict[int, int] = {}          # client -> SYN-ACKs resent so far
    acceptq: list[int] = []
    waiting = False                     # the server blocks in accept() on an empty queue

    def take(t: float) -> None:
        out.served_s[acceptq.pop(0)] = t + half
        at(t + accept_every_s, "accept", -1, -1)
    while events:
        t, _, _, kind, c = heapq.heappop(events)
        if t > until_s:
            break
        if kind == "probe":
            out.queue_at[t] = len(acceptq)
        elif kind == "accept":
            waiting = not acceptq
            if acceptq:
                take(t)
        elif kind == "syn":
            if c in out.connect_s or c in out.reset or c in reqsk:
                continue                # answered already (a later SYN of the schedule)
            cookie = False
            if len(reqsk) > backlog:
                if not syncookies:
                    out.syn_drops += 1
                    continue
                out.cookies += 1
                cookie = True
            if len(acceptq) > backlog:
                out.overflows += 1
                continue
            if not cookie:
                reqsk[c] = 0
                at(t + SYNACK_TIMEOUT_S + slack_s, "synack_timer", c)
            out.connect_s.setdefault(c, t + half)
            at(t + rtt_s, "ack", c)
        elif kind == "synack_timer":
            if c in reqsk and reqsk[c] < SYNACK_RETRIES:
                reqsk[c] += 1
                at(t + rtt_s, "ack", c)         # the connected client answers with an ACK
                at(t + SYNACK_TIMEOUT_S * 2 ** reqsk[c] + slack_s, "synack_timer", c)
            else:
                reqsk.pop(c, None)
        elif kind == "ack":
            if c in acceptq or c in out.served_s or c in out.reset:
                continue
            if len(acceptq) > backlog:
                out.overflows += 1
                if abort_on_overflow and c in reqsk:    # a cookie's ACK is only dropped
                    del reqsk[c]
                    out.reset.add(c)
                continue
            reqsk.pop(c, None)
            acceptq.append(c)
            if waiting:
                waiting = False
                take(t)
    return out
