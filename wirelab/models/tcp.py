"""TCP's rounds and windows from first principles: the MSS, how many round trips S
bytes take from a given cwnd (slow start, congestion avoidance, the restart after
idle), and when the receiver's window costs one more.

Pure functions (unit-tested without root), reading the kernel facts a run records.
The two slow-start models:

* :func:`formula_rounds` - the course's doubling model: the sender may have
  IW, 2 IW, 4 IW ... segments in flight in rounds 1, 2, 3 ..., so S bytes need
  the smallest k with IW * MSS_eff * (2^k - 1) >= S, i.e.
  k = ceil(log2(S / (IW * MSS_eff) + 1)).

* :func:`simulate` - the same sender, but each round's burst is also capped by
  the receive window the client advertised in its ACKs to the previous round,
  computed with the Linux 6.1 rules, or 6.12's (below) (net/ipv4/tcp_output.c
  tcp_select_initial_window, __tcp_select_window, tcp_select_window;
  net/ipv4/tcp_input.c tcp_init_buffer_space, tcp_grow_window,
  tcp_rcv_space_adjust; include/net/tcp.h tcp_win_from_space, tcp_space).

The receive-window argument, step by step (what ``Receiver`` encodes):

1. The client's buffer starts at ``sk_rcvbuf = tcp_rmem[1]``.  Only a fraction
   of it is window: tcp_win_from_space(x) = x - x >> tcp_adv_win_scale, i.e.
   x/2 with the default 1 (before 6.6; 6.6+ uses a measured scaling_ratio).
2. tcp_init_buffer_space sets window_clamp to that, minus one advmss
   ("force reservation of one segment"), and rcv_ssthresh = min(initial
   rcv_wnd, window_clamp): the advertised window cannot exceed the clamp.
   tcp_grow_window can raise rcv_ssthresh only up to min(window_clamp,
   tcp_space), so nothing grows it until autotuning raises the clamp.
3. Each ACK advertises min(tcp_space, rcv_ssthresh), rounded up to the window
   scale unit, where tcp_space = win_from_space(rcvbuf - unread bytes).  A
   slow-start round arrives as a back-to-back burst and the softirq usually
   sends its ACKs before the reading thread runs (a 1-CPU UML guest), so by
   default the last ACK of round i is computed with all of round i still
   unread (``reader_behind``); when the reader keeps up, the window is the
   clamp.  We count unread memory as the payload bytes: skb_try_coalesce()
   merges in-order segments into the queue's tail skb and charges only their
   page fragments, so truesize is the payload plus one skb head.  The right
   edge never moves left (tcp_select_window).
4. tcp_rcv_space_adjust grows sk_rcvbuf (and the clamp) once the reader has
   copied more than rcvq_space.space = min(rcv_ssthresh, rcv_wnd,
   10 * advmss) bytes in one receiver RTT, by at least 4x that amount in
   slow start.  The first round whose bytes exceed it is read *after* its own
   ACKs left, so the window is capped for the round after it too; from the
   round after that on, rcv_ssthresh grows by 2 advmss per received segment
   (faster than cwnd's 1 per acked segment) and the model lets the window
   no longer limit.  (Measured on 6.1: it still caps some later rounds of a
   10 MiB transfer, tcpi_rwnd_limited up to 3 RTTs, but those rounds have
   slack and the transfer takes no extra round.)

Linux 6.12 (``ScaledReceiver``; 6.6 replaced tcp_adv_win_scale, and 6.6-6.11, which
changed what follows a ratio change, are refused as are 6.13+).  Sources read at v6.12:
include/net/tcp.h __tcp_win_from_space, tcp_win_from_space, TCP_DEFAULT_SCALING_RATIO;
net/ipv4/tcp_input.c tcp_measure_rcv_mss, tcp_init_buffer_space, tcp_grow_window,
tcp_rcv_space_adjust; net/ipv4/tcp.c tcp_set_window_clamp; net/ipv4/tcp_output.c
tcp_select_initial_window, __tcp_select_window, tcp_select_window.

a. The window part of SPACE bytes is ``space * scaling_ratio >> 8``, per socket.  The
   ratio starts at TCP_DEFAULT_SCALING_RATIO (128: 50%, what tcp_adv_win_scale 1 gave),
   so the SYN's window, the clamp (less one reserved advmss) and rcv_ssthresh come out
   as on 6.1.
b. The first full-sized skb sets ratio = (skb->len << 8) / skb->truesize
   (tcp_measure_rcv_mss, when rcv_mss moves from its 536 hint); the ratio having
   changed, the clamp becomes win_from_space(sk_rcvbuf) at it (tcp_set_window_clamp: a
   larger clamp lifts rcv_ssthresh to min(rcv_wnd, clamp)), and rcvq_space stays under
   the clamp.  The ratio is measured, not set: it is what the path's skbs are made of
   (how many segments the sender's TSO autosizing put in one skb at this RTT, its head
   overhead).  The lab reads it back: wirelab.kernel.facts.veth_window_probe sends a
   first flight over a routed veth path like the lab's (20 ms RTT) and records the
   receiver's TCP_WINDOW_CLAMP after the handshake and after the data; scaling_ratios()
   finds the one ratio each clamp implies by the rules above.  (UML 6.12.113: 128, then
   195; over a bare veth, RTT ~0, one 10-segment skb gives 227 - so the probe's path
   matters.)
c. Each arriving segment grows rcv_ssthresh by 2 advmss (tcp_grow_window: its truesize
   at the measured ratio is about its length), up to min(clamp, tcp_space).  An ACK
   offers tcp_space rounded down to the scale unit (6.12 rounds before comparing, so
   the scale cannot grow a window), zero below 1/16 of the buffer's window or one
   segment, capped by rcv_ssthresh, rounded up to the unit; never moving the right edge
   left.  Unread memory counts as payload, as for 6.1.
d. Autotuning is 6.1's step: once a round's bytes exceed rcvq_space the window stops
   limiting.  At tcp_rmem[1] 131072 and ratio 195 round 2's ACKs offer 77312 B
   against 6.1's 51200, so 100 kB takes the formula's three rounds (measured: 4 RTT).

The sender: cwnd += acked segments per ACK in slow start (tcp_slow_start,
ABC), but only while cwnd-limited (tcp_is_cwnd_limited: cwnd < 2 *
max_packets_out).  A window edge that cuts a segment lets the sender send the
partial segment (tcp_mss_split_point with Nagle/Minshall: no small segment
outstanding).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wirelab.models import releases

U16_MAX = 65535
TCP_MAX_WSCALE = 14
#: TCP_INIT_CWND (include/net/tcp.h): rcvq_space starts at min(.., 10 * advmss)
TCP_INIT_CWND = 10
TCPOLEN_TSTAMP_ALIGNED = 12
IPV4_TCP_HEADERS_BYTES = 40


def mss_eff(mtu_bytes: int, timestamps: bool) -> int:
    """Payload bytes per full segment: MTU - 20 (IPv4) - 20 (TCP) - 12 when
    every segment carries the timestamp option (tcp_timestamps=1)."""
    return advmss(mtu_bytes) - (TCPOLEN_TSTAMP_ALIGNED if timestamps else 0)


def advmss(mtu_bytes: int) -> int:
    """The MSS a host advertises in its SYN: dst_metric_advmss = MTU - 40."""
    return mtu_bytes - IPV4_TCP_HEADERS_BYTES


def formula_rounds(size_bytes: int, iw_segs: int, mss_bytes: int) -> int:
    """k = ceil(log2(S / (IW * MSS) + 1)), in integers: the smallest k with
    IW * MSS * (2^k - 1) >= S.  0 bytes need 0 rounds."""
    if size_bytes < 0 or iw_segs < 1 or mss_bytes < 1:
        raise ValueError(f"size {size_bytes}, IW {iw_segs}, MSS {mss_bytes}: need S >= 0, "
                         "IW >= 1, MSS >= 1")
    k = 0
    while iw_segs * mss_bytes * ((1 << k) - 1) < size_bytes:
        k += 1
    return k


def window_scale(enabled: bool, full_space: int, rmem2: int, rmem_max: int) -> int:
    """tcp_select_initial_window's window scale (the same rule in 6.1 and 6.12): enough to
    offer the largest buffer the socket may grow to."""
    if not enabled:
        return 0
    space = min(max(full_space, rmem2, rmem_max), U16_MAX << TCP_MAX_WSCALE)
    return max(0, min(space.bit_length() - 1 - 15, TCP_MAX_WSCALE))


def _align_up(x: int, unit: int) -> int:
    return -(-x // unit) * unit


@dataclass(frozen=True)
class Receiver:
    """The client's receive side as it stands after the handshake (sizes in
    bytes).  RMEM1/RMEM2 are its tcp_rmem[1]/[2]; RMEM_MAX net.core.rmem_max
    (global); INITRWND_SEGS the route's initrwnd (0: none)."""
    rmem1: int
    rmem2: int
    rmem_max: int
    advmss: int
    adv_win_scale: int = 1
    app_win: int = 31
    initrwnd_segs: int = 0
    window_scaling: bool = True

    def win_from_space(self, space: int) -> int:
        """tcp_win_from_space (6.1): the part of SPACE bytes of buffer offered
        as window."""
        s = self.adv_win_scale
        return space >> -s if s <= 0 else space - (space >> s)

    @property
    def full_space(self) -> int:
        return self.win_from_space(self.rmem1)

    @property
    def rcv_wnd(self) -> int:
        """tcp_select_initial_window: the SYN's window (mss = advmss, no
        timestamp yet on a fresh connect)."""
        space = self.full_space
        if space > self.advmss:
            space -= space % self.advmss
        wnd = min(space, U16_MAX)
        if self.initrwnd_segs:
            wnd = min(wnd, self.initrwnd_segs * self.advmss)
        return wnd

    @property
    def wscale(self) -> int:
        return window_scale(self.window_scaling, self.full_space, self.rmem2, self.rmem_max)

    @property
    def window_clamp(self) -> int:
        """tcp_init_buffer_space: the buffer's window, minus one segment's
        reservation (tcp_app_win)."""
        maxwin = self.full_space
        clamp = maxwin
        if self.app_win and maxwin > 4 * self.advmss:
            clamp = max(maxwin - (maxwin >> self.app_win), 4 * self.advmss)
        if self.app_win and clamp > 2 * self.advmss and clamp + self.advmss > maxwin:
            clamp = max(2 * self.advmss, maxwin - self.advmss)
        return clamp

    @property
    def rcv_ssthresh(self) -> int:
        return min(self.rcv_wnd, self.window_clamp)

    @property
    def data_clamp(self) -> int:
        """The window clamp once data flows, before autotuning: 6.1 keeps the handshake's."""
        return self.window_clamp

    @property
    def rcvq_space(self) -> int:
        """Bytes the reader must copy in one RTT before autotuning grows the
        buffer (tcp_init_buffer_space: rcvq_space.space)."""
        return min(self.rcv_ssthresh, self.rcv_wnd, TCP_INIT_CWND * self.advmss)

    def window(self, unread: int) -> int:
        """__tcp_select_window with UNREAD bytes queued and the initial buffer
        and clamp: the window an ACK offers, in bytes, scale applied."""
        unit = 1 << self.wscale
        free = self.win_from_space(max(0, self.rmem1 - unread))
        allowed = self.full_space
        full = min(self.window_clamp, allowed)
        if free < full >> 1:
            free -= free % unit
            if free < allowed >> 4 or free < self.advmss:
                return 0
        free = min(free, self.rcv_ssthresh)
        if self.wscale:
            return _align_up(free, unit)
        return free - free % self.advmss if free > self.advmss else free

    def initial_edge(self) -> int:
        """Right edge (relative to the first data byte) of the window in the
        handshake's last ACK."""
        return _select(self.rcv_wnd, self.window(0), self.wscale)


#: include/net/tcp.h (6.6+): window = space * scaling_ratio >> TCP_RMEM_TO_WIN_SCALE
TCP_RMEM_TO_WIN_SCALE = 8
#: include/net/sock.h SOCK_MIN_RCVBUF (2048 + 2 x SKB_TRUESIZE(256)) / 2 is tcp_set_window_clamp's
#: floor; the clamps here are tens of KB, far above it.


def win_from_space_scaled(space: int, ratio: int) -> int:
    """__tcp_win_from_space (6.6+): the part of SPACE bytes of buffer offered as window."""
    return (space * ratio) >> TCP_RMEM_TO_WIN_SCALE


def init_clamp(maxwin: int, advmss_bytes: int, app_win: int) -> int:
    """tcp_init_buffer_space's window_clamp for a buffer whose window is MAXWIN (the clamp
    tcp_select_initial_window left is larger): MAXWIN less the tcp_app_win share, then "force
    reservation of one segment".  The same lines in 6.1 and 6.12."""
    clamp = maxwin
    if app_win and maxwin > 4 * advmss_bytes:
        clamp = max(maxwin - (maxwin >> app_win), 4 * advmss_bytes)
    if app_win and clamp > 2 * advmss_bytes and clamp + advmss_bytes > maxwin:
        clamp = max(2 * advmss_bytes, maxwin - advmss_bytes)
    return clamp


@dataclass(frozen=True)
class RcvState:
    """What changes on the 6.12 receiver as data arrives (bytes)."""
    ratio: int            # tp->scaling_ratio
    clamp: int            # tp->window_clamp
    rcv_ssthresh: int
    rcv_wnd: int          # the window the last ACK advertised
    rcvq_space: int       # tp->rcvq_space.space


@dataclass(frozen=True)
class ScaledReceiver:
    """The client's receive side on Linux 6.12 (sizes in bytes): the window is
    ``space * scaling_ratio >> 8`` (include/net/tcp.h __tcp_win_from_space), with
    RATIO_INITIAL (TCP_DEFAULT_SCALING_RATIO, 128 = 50%, until data arrives) and RATIO
    (what tcp_measure_rcv_mss sets from the first full segment's skb->len / truesize, on
    the lab's paths), both read back from the running kernel (:func:`scaling_ratios`).
    SYN_MSS is what tcp_connect_init passes tcp_select_initial_window (the route's advmss,
    MTU - 40: no timestamp seen yet); ADVMSS is tp->advmss once the handshake settled the
    timestamp option (MTU - 52 with timestamps), which tcp_init_buffer_space and
    tcp_grow_window use."""
    rmem1: int
    rmem2: int
    rmem_max: int
    syn_mss: int
    advmss: int
    ratio_initial: int
    ratio: int
    app_win: int = 31
    initrwnd_segs: int = 0
    window_scaling: bool = True

    def win_from_space(self, space: int, ratio: int | None = None) -> int:
        return win_from_space_scaled(space, self.ratio_initial if ratio is None else ratio)

    @property
    def full_space(self) -> int:
        """tcp_full_space at the handshake (the initial ratio)."""
        return self.win_from_space(self.rmem1)

    @property
    def rcv_wnd(self) -> int:
        """tcp_select_initial_window: the SYN's window, no longer capped at 64 KB (6.10,
        "tcp: remove 64 KByte limit for initial tp->rcv_wnd value"; seen on 6.12: a 4 MiB
        buffer's first ACK offered 2096640 B)."""
        space = self.full_space
        if space > self.syn_mss:
            space -= space % self.syn_mss
        wnd = space
        if self.initrwnd_segs:
            wnd = min(wnd, self.initrwnd_segs * self.syn_mss)
        return wnd

    @property
    def wscale(self) -> int:
        return window_scale(self.window_scaling, self.full_space, self.rmem2, self.rmem_max)

    @property
    def data_clamp(self) -> int:
        """The window clamp once the first full segment set the measured ratio
        (tcp_set_window_clamp(win_from_space(rcvbuf))), before autotuning."""
        return self.win_from_space(self.rmem1, self.ratio)

    def handshake_state(self) -> RcvState:
        """After tcp_init_buffer_space (and the handshake's last ACK, whose window is
        :meth:`initial_edge`)."""
        clamp = init_clamp(self.full_space, self.advmss, self.app_win)
        ssthresh = min(self.rcv_wnd, clamp)
        space = min(ssthresh, self.rcv_wnd, TCP_INIT_CWND * self.advmss)
        st = RcvState(self.ratio_initial, clamp, ssthresh, self.rcv_wnd, space)
        return RcvState(st.ratio, st.clamp, st.rcv_ssthresh, self.window(0, st), st.rcvq_space)

    def initial_edge(self) -> int:
        st = self.handshake_state()
        return _select(self.rcv_wnd, st.rcv_wnd, self.wscale)

    def tcp_space(self, unread: int, st: RcvState) -> int:
        return self.win_from_space(max(0, self.rmem1 - unread), st.ratio)

    def receive(self, st: RcvState, burst: int, seg_bytes: int, reader_behind: bool) -> RcvState:
        """One round of BURST bytes arriving in SEG_BYTES segments, before its last ACK.
        The first full segment sets the measured ratio (tcp_measure_rcv_mss) and, the ratio
        having changed, the clamp follows the buffer (tcp_set_window_clamp: a larger clamp
        lifts rcv_ssthresh to min(rcv_wnd, clamp); rcvq_space never above the clamp).  Each
        segment then grows rcv_ssthresh by 2 advmss (tcp_grow_window: its truesize at the
        measured ratio is its length), up to min(clamp, tcp_space).  Unread memory counts
        as payload (skb_try_coalesce charges the queue the page fragments)."""
        ratio, clamp, ssthresh, space = st.ratio, st.clamp, st.rcv_ssthresh, st.rcvq_space
        if ratio != self.ratio:
            ratio = self.ratio
            new = self.win_from_space(self.rmem1, ratio)
            if new > clamp:
                ssthresh = max(min(st.rcv_wnd, new), ssthresh)
            else:
                ssthresh = min(ssthresh, new)
            clamp = new
            space = min(space, clamp)
        st = RcvState(ratio, clamp, ssthresh, st.rcv_wnd, space)
        got = 0
        while got < burst:
            seg = min(seg_bytes, burst - got)
            got += seg
            unread = got if reader_behind else seg
            room = min(clamp, self.tcp_space(unread, st)) - ssthresh
            if room > 0:
                ssthresh += min(room, max(2 * self.advmss, 2 * seg))
        st = RcvState(ratio, clamp, ssthresh, st.rcv_wnd, space)
        return RcvState(ratio, clamp, ssthresh, self.window(burst if reader_behind else 0, st),
                        space)

    def window(self, unread: int, st: RcvState) -> int:
        """__tcp_select_window (6.12) with UNREAD bytes queued: free space rounded down to
        the scale unit (so the scale cannot grow it), zero below 1/16 of the buffer's
        window or one segment, capped by rcv_ssthresh, rounded up to the scale unit."""
        unit = 1 << self.wscale
        allowed = self.win_from_space(self.rmem1, st.ratio)
        free = self.tcp_space(unread, st)
        free -= free % unit
        if free < allowed >> 4 or free < self.advmss:
            return 0
        free = min(free, st.rcv_ssthresh)
        if self.wscale:
            return _align_up(free, unit)
        return free - free % self.advmss if free > self.advmss else free


def _select(cur_win: int, new_win: int, wscale: int) -> int:
    """tcp_select_window: never shrink the offered window."""
    if new_win < cur_win:
        return _align_up(cur_win, 1 << wscale)
    return new_win


@dataclass
class Round:
    """One slow-start round as the sender sees it (bytes and segments)."""
    index: int
    cwnd_segs: int
    sent_bytes: int
    window_bytes: float       # room the receiver's window left (inf: no limit)
    rwnd_limited: bool


@dataclass
class Schedule:
    rounds: list[Round] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.rounds)

    @property
    def rwnd_limited(self) -> bool:
        return any(r.rwnd_limited for r in self.rounds)


MAX_ROUNDS = 64


def simulate(size_bytes: int, iw_segs: int, mss_bytes: int,
             receiver: Receiver | ScaledReceiver | None, reader_behind: bool = True) -> Schedule:
    """Rounds of a slow-start transfer of SIZE_BYTES, each burst capped by the
    cwnd and (if RECEIVER is given) by the receive window the previous round's
    ACKs advertised.  RECEIVER None: the window never limits (the formula).
    READER_BEHIND: the round's ACKs leave before the reader copies any of it
    (else: after it has copied all of it)."""
    if size_bytes < 0 or iw_segs < 1 or mss_bytes < 1:
        raise ValueError(f"size {size_bytes}, IW {iw_segs}, MSS {mss_bytes}")
    sched = Schedule()
    cwnd, sent = iw_segs, 0
    edge = receiver.initial_edge() if receiver else float("inf")
    state = receiver.handshake_state() if isinstance(receiver, ScaledReceiver) else None
    autotuned = receiver is None
    for i in range(1, MAX_ROUNDS + 1):
        if sent >= size_bytes:
            return sched
        room = edge - sent
        burst = int(min(cwnd * mss_bytes, room, size_bytes - sent))
        if burst <= 0:
            raise ValueError(f"round {i}: a zero window; the model does not cover it")
        segs = -(-burst // mss_bytes)
        sched.rounds.append(Round(i, cwnd, burst, room, room < min(cwnd * mss_bytes,
                                                                      size_bytes - sent)))
        sent += burst
        if receiver is not None and not autotuned:
            # The last ACK of this burst leaves with the burst unread (or read).
            unread = burst if reader_behind else 0
            if isinstance(receiver, ScaledReceiver):
                assert state is not None
                state = receiver.receive(state, burst, mss_bytes, reader_behind)
                window, space = receiver.window(unread, state), state.rcvq_space
            else:
                window, space = receiver.window(unread), receiver.rcvq_space
            edge = sent + _select(int(edge - sent), window, receiver.wscale)
            # The reader copies the burst after those ACKs; if that is more
            # than rcvq_space, autotuning lifts the clamp for the next ACKs.
            autotuned = burst > space
        else:
            edge = float("inf")
        if cwnd < 2 * segs:        # tcp_is_cwnd_limited in slow start
            cwnd += segs           # tcp_slow_start: cwnd += acked
    raise ValueError(f"{size_bytes} bytes need more than {MAX_ROUNDS} rounds")


# -- rounds from any cwnd: reuse, restart after idle ------------------------------

#: TCP_INFINITE_SSTHRESH: ssthresh before the first loss.
TCP_INFINITE_SSTHRESH = 0x7FFFFFFF


def segments(size_bytes: int, mss_bytes: int) -> int:
    """Full-size segments needed for SIZE_BYTES at MSS_BYTES each."""
    return -(-size_bytes // mss_bytes)


def rounds(cwnd: int, ssthresh: int, segs: int) -> int:
    """Round trips to deliver SEGS segments starting from CWND: slow start (cwnd +=
    acked, so it doubles per round) up to ssthresh, then congestion avoidance (+1
    per round).  Receive window assumed larger."""
    sent, k, w = 0, 0, max(1, cwnd)
    while sent < segs:
        sent += w
        k += 1
        w = min(2 * w, max(ssthresh, w + 1)) if w < ssthresh else w + 1
    return k


def grown_cwnd(cwnd: int, segs: int) -> int:
    """cwnd after a response of SEGS segments sent from CWND (nominal).  In slow start
    every ACKed segment adds one (ABC, tcp_slow_start) while tcp_is_cwnd_limited()
    holds: latched true for a window whose flight filled cwnd (every round but the last
    of a multi-round response), else while cwnd < 2 x what is in flight.  So a response
    grows cwnd by all its segments, unless cwnd is already twice the response."""
    return cwnd + segs if cwnd < 2 * segs else cwnd


def restart_cwnd(cwnd: int, idle_ms: float, rto_ms: float, enabled: bool,
                 iw: int = TCP_INIT_CWND, in_flight: int = 0) -> int:
    """cwnd after the first write following IDLE_MS without sending data
    (tcp_slow_start_after_idle_check + tcp_cwnd_restart): untouched unless the sysctl
    is on, nothing is in flight and idle > RTO; then halved once per whole RTO that
    fits in the idle time, never below min(IW, cwnd)."""
    if not enabled or in_flight or idle_ms <= rto_ms:
        return cwnd
    floor = min(iw, cwnd)
    left = idle_ms
    while True:
        left -= rto_ms
        if not (left > 0 and cwnd > floor):
            break
        cwnd >>= 1
    return max(cwnd, floor)


# -- reading the kernel facts ---------------------------------------------------------

#: The lab's links are veths with the default MTU; the topologies set none.
LINK_MTU_BYTES = 1500


def sysctl_ints(kernel: dict, name: str) -> list[int]:
    try:
        return [int(v) for v in kernel["sysctls"][name].split()]
    except KeyError:
        raise KeyError(f"kernel facts lack {name}; the runner records it in the first host") from None


def timestamps(kernel: dict) -> bool:
    return sysctl_ints(kernel, "net.ipv4.tcp_timestamps")[0] != 0


def mss_from_kernel(kernel: dict) -> int:
    """MSS_eff on the lab's links: MTU - 40, less 12 with timestamps on."""
    return mss_eff(kernel.get("mtu", LINK_MTU_BYTES), timestamps(kernel))


def iw_of(kernel: dict) -> int:
    """The initial congestion window the kernel gives a new connection (segments), as
    a loopback connection in the lab showed it (wirelab.kernel.facts)."""
    try:
        return int(kernel["iw_segs"])
    except KeyError:
        raise KeyError("kernel facts lack iw_segs (read from a loopback connection)") from None


#: The releases whose receive-window rules this module has: 6.1's (tcp_adv_win_scale) before
#: 6.6, and 6.12's (a measured scaling_ratio).  6.6-6.11 refuse: they have the ratio but
#: not all of what 6.12 does when it changes (the clamp following it, 05f76b2d634e and
#: a2cbb1603943; rcvq_space kept under the clamp), and no lab here runs them.
RULE_61_BEFORE = (6, 6)
RULE_612_SINCE, RULE_612_BEFORE = (6, 12), (6, 13)


def _scaled(kernel: dict) -> bool:
    """True for a kernel with 6.12's rule, False for 6.1's; refuses any other."""
    v = releases.version(kernel)
    if v < RULE_61_BEFORE:
        return False
    releases.require(kernel, "the receive-window model (scaling_ratio)", since=RULE_612_SINCE,
                     before=RULE_612_BEFORE,
                     why="its window rules are 6.1's (tcp_adv_win_scale) and 6.12's "
                         "(scaling_ratio); 6.6-6.11 and 6.13+ are not modelled")
    return True


def scaling_ratios(kernel: dict) -> tuple[int, int]:
    """(the initial scaling_ratio, the one measured on the first full segment) of a 6.6+
    kernel, read back from the clamps the kernel facts' probe saw on a receiving socket
    (wirelab.kernel.facts.veth_window_probe: a routed veth path like the lab's): the
    ratios (1..255, in 1/256) whose clamp by the same rules is the one measured -
    tcp_init_buffer_space's after the handshake, tcp_set_window_clamp's
    win_from_space(rcvbuf) after the data.  Not a sysctl: the kernel measures
    skb->len / skb->truesize on what arrives (tcp_measure_rcv_mss), so only a running
    kernel on a path like the lab's can say it."""
    probe = kernel.get("rcv_probe")
    if not probe or "error" in probe:
        why = (probe or {}).get("error", "not recorded")
        raise KeyError(f"kernel facts lack the receive-window probe (rcv_probe: {why})")
    rcvbuf, adv = int(probe["rcvbuf"]), int(probe["advmss"])
    app_win = sysctl_ints(kernel, "net.ipv4.tcp_app_win")[0]
    first = [r for r in range(1, 256) if init_clamp(win_from_space_scaled(rcvbuf, r), adv, app_win)
             == int(probe["clamp_after_handshake"])]
    measured = [r for r in range(1, 256)
                if win_from_space_scaled(rcvbuf, r) == int(probe["clamp_after_data"])]
    if len(first) != 1 or len(measured) != 1:
        raise ValueError(f"no single scaling_ratio gives the probe's clamps {probe}: "
                         f"initial {first}, measured {measured}")
    return first[0], measured[0]


def receiver_from_kernel(kernel: dict, initrwnd_segs: int = 0) -> Receiver | ScaledReceiver:
    """The client's receive side from the kernel facts read in the lab (the first host,
    h1, is the client): tcp_rmem, tcp_app_win, window scaling, the kernel-wide
    net.core.rmem_max, and by release: before 6.6 tcp_adv_win_scale (:class:`Receiver`,
    6.1's rules), on 6.12 the scaling ratios the facts' probe measured
    (:class:`ScaledReceiver`).  Any other release is refused (exit 3)."""
    scaled = _scaled(kernel)
    if not scaled:
        releases.require(kernel, "the receive-window model (tcp_adv_win_scale)", before=RULE_61_BEFORE,
                         why="6.6 sizes the window from scaling_ratio")
    rmem = sysctl_ints(kernel, "net.ipv4.tcp_rmem")
    try:
        rmem_max = int(kernel["global"]["net.core.rmem_max"])
    except KeyError:
        raise KeyError("kernel facts lack net.core.rmem_max (kernel['global'])") from None
    mtu = kernel.get("mtu", LINK_MTU_BYTES)
    common: dict[str, Any] = {"rmem1": rmem[1], "rmem2": rmem[2], "rmem_max": rmem_max,
              "app_win": sysctl_ints(kernel, "net.ipv4.tcp_app_win")[0],
              "initrwnd_segs": initrwnd_segs,
              "window_scaling": sysctl_ints(kernel, "net.ipv4.tcp_window_scaling")[0] == 1}
    if scaled:
        initial, measured = scaling_ratios(kernel)
        return ScaledReceiver(syn_mss=advmss(mtu), advmss=mss_from_kernel(kernel),
                              ratio_initial=initial, ratio=measured, **common)
    return Receiver(advmss=advmss(mtu),
                    adv_win_scale=sysctl_ints(kernel, "net.ipv4.tcp_adv_win_scale")[0], **common)


#: net.core.rmem_max when the kernel facts do not say (the default on 6.1)
RMEM_MAX_DEFAULT = 212992


def locked_window(so_rcvbuf: int, kernel: dict, mss_bytes: int) -> int:
    """The window a receiver advertises whose listening socket set SO_RCVBUF = X before
    listen() (accepted sockets inherit it; autotuning off), with the reader keeping up.
    The buffer is 2 min(X, rmem_max) (sock_setsockopt).

    6.1: half of it offered (tcp_adv_win_scale 1), less one segment that
    tcp_init_buffer_space() reserves ("force reservation of one segment": window_clamp =
    full space - advmss).

    6.12: the handshake's clamp is the same (the initial ratio is 50%), but the first
    full segment sets the measured scaling_ratio and tcp_measure_rcv_mss() then moves the
    clamp to win_from_space(buffer) at that ratio (tcp_set_window_clamp, a locked buffer
    included: 05f76b2d634e, a2cbb1603943), and rcv_ssthresh grows up to it: the window is
    (buffer - one segment still unread) x ratio / 256, rounded down to the scale unit
    (__tcp_select_window), or to whole segments without a scale, and at most 65535 units
    (the header's field).  Measured on 6.12 (ratio 195, 20 Mbit/s, r = 100 ms): the
    sender saw 23168 B at 16 KiB (predicted 23168), 96952 B at 64 KiB (98736), 262140 B
    at 256 KiB (262140)."""
    full = min(so_rcvbuf, int(kernel.get("global", {}).get("net.core.rmem_max", RMEM_MAX_DEFAULT)))
    # the window scale a locked buffer asks for (tcp_select_initial_window, the clamp being
    # the full space at the handshake, X at either release): none below 64 KiB
    wscale = min(max(full.bit_length() - 1 - 15, 0), TCP_MAX_WSCALE)
    if _scaled(kernel):
        # each ACK leaves from the softirq that queued the segment it acknowledges, before
        # the reader copies it: one segment unread; the header's 16 bits cap the window
        win = win_from_space_scaled(2 * full - mss_bytes, scaling_ratios(kernel)[1])
        win = win // mss_bytes * mss_bytes if wscale == 0 else win >> wscale << wscale
        return min(win, U16_MAX << wscale)
    releases.require(kernel, "the SO_RCVBUF window (tcp_adv_win_scale)", before=RULE_61_BEFORE)
    clamp = full - mss_bytes
    if wscale == 0:
        return clamp // mss_bytes * mss_bytes
    return -(-clamp // (1 << wscale)) << wscale


def autotuned_window_max(kernel: dict) -> int:
    """The largest window autotuning can reach: tcp_rmem[2]'s window (6.1: less
    tcp_adv_win_scale's share; 6.12: times the measured scaling_ratio / 256)."""
    rmem2 = sysctl_ints(kernel, "net.ipv4.tcp_rmem")[2]
    if _scaled(kernel):
        return win_from_space_scaled(rmem2, scaling_ratios(kernel)[1])
    releases.require(kernel, "the autotuned window (tcp_adv_win_scale)", before=RULE_61_BEFORE)
    s = sysctl_ints(kernel, "net.ipv4.tcp_adv_win_scale")[0]
    return rmem2 >> -s if s <= 0 else rmem2 - (rmem2 >> s)


def round_note(size_bytes: int, iw_segs: int, mss_bytes: int, rtt_ms: float,
               predicted_ms: float, measured_ms: float | None) -> str:
    """A point's note: the formula's k, whether the window model adds rounds, and how
    many RTTs the median took."""
    k = formula_rounds(size_bytes, iw_segs, mss_bytes)
    model = round(predicted_ms / rtt_ms) - 1 if rtt_ms else k
    parts = [f"formula k={k}"]
    if model > k:
        parts.append(f"rwnd-limited: +{model - k} round{'s' if model - k > 1 else ''} expected")
    else:
        parts.append("no round lost to rwnd")
    if measured_ms is not None and rtt_ms:
        parts.append(f"measured {measured_ms / rtt_ms:.2f} RTT")
    return "; ".join(parts)


def cwnd_decides(size_bytes: int, iw_segs: int, mss_bytes: int, receiver: Receiver, rounds_n: int) -> None:
    """ValueError unless cwnd alone decides the rounds of SIZE_BYTES sent from IW_SEGS
    (ROUNDS_N of them): the receiver's buffer offers a window of the whole size without
    autotuning, and its window costs the first transfer no round."""
    if receiver.data_clamp < size_bytes:
        raise ValueError(f"the client's window clamp {receiver.data_clamp} B is below one response "
                         f"({size_bytes} B): the window would decide rounds, not cwnd")
    if simulate(size_bytes, iw_segs, mss_bytes, receiver).n != rounds_n:
        raise ValueError("the client's window would cost the first response a round")
