"""When TCP sends again, and when it gives up: the SYN schedule, the data RTO's backoff
and its time-based give-up, keep-alive probing, as Linux computes them.

* SYNs (net/ipv4/tcp_timer.c ``tcp_retransmit_timer``, ``tcp_write_timeout``): the first
  retransmission after TCP_TIMEOUT_INIT = 1 s, each later one after twice the previous
  wait.  Kernels 6.5 and later keep the first ``tcp_syn_linear_timeouts`` (default 4)
  waits at 1 s and allow that many more retransmissions; 6.1 has no such sysctl.  The
  connection fails (ETIMEDOUT) when the timer fires after the last retransmission
  allowed (``tcp_syn_retries``, or per socket TCP_SYNCNT, plus the linear ones), or once
  the time since the first SYN reaches what N = that many doublings of 1 s would take,
  (2^(N+1) - 1) s (``retransmits_timed_out`` with TCP_TIMEOUT_INIT as its base), or
  TCP_USER_TIMEOUT: the last wait is clamped so the timer fires when the user timeout
  expires (``tcp_clamp_rto_to_user_timeout``).  With pure doubling (6.1) the count and
  the time agree; with linear steps the time comes first: tcp_syn_retries 2 on 6.12 sends
  SYNs at 0, 1, 2, 3, 4, 5 s and fails at 7 s, not 11 (measured on Debian's 6.12.113).
* Data (``tcp_model_timeout``): the RTO starts at max(srtt + 4 rttvar, TCP_RTO_MIN) and
  doubles up to TCP_RTO_MAX = 120 s; the connection is abandoned once the time since the
  first unacknowledged transmission reaches the time N = ``tcp_retries2`` doublings of
  TCP_RTO_MIN would take: (2^(N+1) - 1) x 0.2 s for N <= 9, then 120 s per further
  retry: 12.6 s at N = 5, 924.6 s at the default 15, counted from the first
  retransmission by the RTO timer (a tail loss probe comes before it and does not count).
  The check happens when a timer fires, so the error comes at the first expiry at or
  after that time.
* Keep-alive: an idle connection sends a probe after TCP_KEEPIDLE, then every
  TCP_KEEPINTVL; after TCP_KEEPCNT unanswered probes it is reset: idle + cnt x intvl
  (defaults 7200 s + 9 x 75 s = 2 h 11 min 15 s).
"""
from __future__ import annotations

from wirelab.models import releases

TCP_TIMEOUT_INIT_S = 1.0
TCP_RTO_MIN_S = 0.2
TCP_RTO_MAX_S = 120.0
#: Defaults of net.ipv4: tcp_syn_retries, tcp_retries2, keep-alive time, interval, probes.
SYN_RETRIES, RETRIES2 = 6, 15
KEEPALIVE_TIME_S, KEEPALIVE_INTVL_S, KEEPALIVE_PROBES = 7200.0, 75.0, 9
LINEAR_TIMEOUTS_SINCE = (6, 5)          # tcp_syn_linear_timeouts appeared in 6.5


def linear_timeouts(kernel: dict) -> int:
    """tcp_syn_linear_timeouts as the lab read it back, 0 where the kernel has none; a
    6.5+ kernel whose facts lack it is refused rather than guessed."""
    value = kernel.get("sysctls", {}).get("net.ipv4.tcp_syn_linear_timeouts")
    if value is not None:
        releases.used("the SYN schedule", f"the rule of kernels 6.5 and later: {int(value)} "
                      f"linear 1 s waits (tcp_syn_linear_timeouts), then doubling "
                      f"({kernel.get('release')})")
        return int(value)
    if releases.version(kernel) >= LINEAR_TIMEOUTS_SINCE:
        raise releases.ModelOutOfRange(
            f"kernel {kernel.get('release')} has tcp_syn_linear_timeouts (6.5+) but the lab "
            "did not read it")
    releases.used("the SYN schedule", "the rule of kernels before 6.5: doubling from 1 s, no "
                  f"linear waits ({kernel.get('release')})")
    return 0


def syn_waits(retries: int, linear: int = 0) -> list[float]:
    """The waits (s) before each SYN retransmission and the last one before giving up:
    RETRIES + LINEAR retransmissions, the first LINEAR + 1 waits at 1 s, then doubling."""
    waits, rto = [], TCP_TIMEOUT_INIT_S
    for i in range(retries + linear + 1):
        waits.append(min(rto, TCP_RTO_MAX_S))
        if i >= linear:
            rto *= 2
    return waits


def syn_schedule(retries: int, linear: int = 0, user_timeout_s: float | None = None
                 ) -> tuple[list[float], float]:
    """(send times of every SYN in s, when connect() fails with ETIMEDOUT)."""
    budget = user_timeout_s if user_timeout_s is not None else model_timeout_s(
        retries, TCP_TIMEOUT_INIT_S)
    times, t = [0.0], 0.0
    for wait in syn_waits(retries, linear):
        if user_timeout_s is not None and t + wait >= user_timeout_s:
            return times, user_timeout_s
        t += wait
        if len(times) - 1 >= retries + linear or t >= budget - 1e-9:
            return times, t
        times.append(t)
    return times, t


def model_timeout_s(retries2: int, rto_base_s: float = TCP_RTO_MIN_S) -> float:
    """tcp_model_timeout: the give-up time for RETRIES2 as the kernel computes it."""
    thresh = 9                      # ilog2(TCP_RTO_MAX / TCP_RTO_MIN) = ilog2(600)
    if retries2 <= thresh:
        return ((2 << retries2) - 1) * rto_base_s
    return ((2 << thresh) - 1) * rto_base_s + (retries2 - thresh) * TCP_RTO_MAX_S


def loss_probe_s(srtt_s: float, rto_s: float, packets_out: int = 1) -> float:
    """When the tail loss probe fires after a transmission (tcp_schedule_loss_probe):
    2 x srtt plus TCP_RTO_MIN with one packet in flight (a delayed ACK may be coming),
    plus TCP_TIMEOUT_MIN (2 ms at HZ <= 1000) with more; never after the RTO."""
    extra = TCP_RTO_MIN_S if packets_out == 1 else 0.002
    return min(2 * srtt_s + extra, rto_s)


def data_schedule(rto0_s: float, retries2: int, user_timeout_s: float | None = None,
                  probe_s: float | None = None) -> tuple[list[float], float]:
    """(times of every retransmission after the first transmission at 0, when the
    connection is abandoned).  A tail loss probe, if PROBE_S is given, goes first; the
    RTO timer then runs from it: RTO0, doubling, capped at TCP_RTO_MAX.  The give-up
    clock starts at the first retransmission the RTO timer sends (``retrans_stamp``, set
    by ``tcp_retransmit_skb()``; a loss probe does not set it): the error comes at the
    first expiry at or after that plus the model's time, or that plus the user timeout,
    to which the last wait is clamped."""
    limit = user_timeout_s if user_timeout_s is not None else model_timeout_s(retries2)
    waits = [probe_s] if probe_s is not None else []
    times: list[float] = []
    t, doublings, start = 0.0, 0, None
    while True:
        probing = bool(waits)
        if probing:
            wait = waits.pop(0)
        else:
            wait = min(rto0_s * 2 ** doublings, TCP_RTO_MAX_S)
            doublings += 1
        if user_timeout_s is not None and start is not None:
            wait = min(wait, max(start + user_timeout_s - t, 0.0))
        t += wait
        if start is not None and t - start >= limit - 1e-9:
            return times, t
        times.append(t)
        if start is None and not probing:
            start = t


def keepalive_detection_s(idle_s: float = KEEPALIVE_TIME_S, intvl_s: float = KEEPALIVE_INTVL_S,
                          cnt: int = KEEPALIVE_PROBES) -> float:
    """An idle connection whose peer vanished is reset after idle + cnt x intvl."""
    return idle_s + cnt * intvl_s
