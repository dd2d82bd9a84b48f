"""TCP's timers from first principles: the tick, the delayed-ACK timeout (ATO), the
retransmission timeout (RTO), as Linux computes them (include/net/tcp.h).

Every one of them is a whole number of jiffies, so predictions take the kernel's tick
(``kernel["hz"]``, read by wirelab.kernel.facts), never assume one.
"""
from __future__ import annotations

import math

#: TCP_TIMEOUT_INIT: the RTO before any RTT sample (RFC 6298), ms.
TCP_TIMEOUT_INIT_MS = 1000.0


def hz_of(kernel: dict) -> int:
    """The tick rate the kernel facts report; an error if they do not say."""
    hz = kernel.get("hz")
    if not hz:
        raise ValueError("kernel['hz'] is needed: TCP's timers count whole jiffies")
    return int(hz)


def jiffy_ms(hz: int) -> float:
    return 1000.0 / hz


def ato_min_ms(hz: int) -> float:
    """TCP_ATO_MIN = TCP_DELACK_MIN = HZ/25 jiffies (C integer division): 40 ms at any
    common HZ.  The delayed-ACK timer is armed for this on an interactive connection."""
    return (hz // 25) * 1000.0 / hz


def delack_max_ms(hz: int) -> float:
    """TCP_DELACK_MAX = HZ/5 jiffies (200 ms): only the ceiling of the ATO."""
    return (hz // 5) * 1000.0 / hz


def rto_min_ms(hz: int) -> float:
    """TCP_RTO_MIN = HZ/5 jiffies: 200 ms."""
    return (hz // 5) * 1000.0 / hz


def rto_min_of(kernel: dict) -> float:
    """The minimum RTO the kernel facts measured (a loopback connection's RTO less a
    tick), else TCP_RTO_MIN = HZ/5 from the kernel's tick."""
    return float(kernel.get("rto_min_ms") or rto_min_ms(hz_of(kernel)))


def nominal_rto_ms(rtt_ms: float, hz: int, rto_min: float | None = None) -> float:
    """The RTO on a steady path: usecs_to_jiffies(srtt + rttvar) with rttvar held at
    the minimum RTO (tcp_rtt_estimator) and srtt just above r (processing on the ACK
    path): the first whole jiffy above r + RTO_MIN (200 ms unless given)."""
    j = jiffy_ms(hz)
    floor = rto_min_ms(hz) if rto_min is None else rto_min
    return j * (math.floor((rtt_ms + floor) / j + 1e-9) + 1)
