"""TCP_INFO read in-process: the fields the keep-alive and delayed-ACK
experiments reason with (cwnd, ssthresh, RTO, ATO, MSS, idle time).

``getsockopt(IPPROTO_TCP, TCP_INFO)`` returns ``struct tcp_info``
(include/uapi/linux/tcp.h).  Its first 104 bytes have kept the same layout
since Linux 2.6, so only those are decoded; a kernel returning fewer is
refused.  Units as the kernel reports them: ``tcpi_rto``/``tcpi_ato``/
``tcpi_rtt``/``tcpi_rttvar`` in microseconds (``jiffies_to_usecs``, so RTO
and ATO are whole jiffies), ``tcpi_last_data_sent``/``_recv`` in
milliseconds (``jiffies_to_msecs(now - lsndtime)``, whole jiffies too),
windows in segments.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

#: Bytes of struct tcp_info decoded here (through tcpi_total_retrans).
DECODED_BYTES = 104
#: What we ask the kernel for; it returns min(this, its own struct size).
REQUEST_BYTES = 256


class TcpInfoError(ValueError):
    """TCP_INFO came back shorter than the fields decoded here."""


@dataclass(frozen=True)
class TcpInfo:
    state: int
    ca_state: int
    rto_ms: float
    ato_ms: float
    snd_mss: int
    rcv_mss: int
    unacked: int
    last_data_sent_ms: int
    last_data_recv_ms: int
    rtt_ms: float
    rttvar_ms: float
    snd_ssthresh: int
    snd_cwnd: int
    advmss: int
    total_retrans: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def parse(buf: bytes) -> TcpInfo:
    """Decode the leading fields of a raw ``struct tcp_info``."""
    if len(buf) < DECODED_BYTES:
        raise TcpInfoError(f"TCP_INFO is {len(buf)} bytes; need at least {DECODED_BYTES}")
    state, ca_state = buf[0], buf[1]
    rto_us, ato_us, snd_mss, rcv_mss, unacked = struct.unpack_from("=5I", buf, 8)
    last_data_sent, _last_ack_sent, last_data_recv = struct.unpack_from("=3I", buf, 44)
    rtt_us, rttvar_us, ssthresh, cwnd, advmss = struct.unpack_from("=5I", buf, 68)
    total_retrans, = struct.unpack_from("=I", buf, 100)
    return TcpInfo(state=state, ca_state=ca_state, rto_ms=rto_us / 1000.0,
                   ato_ms=ato_us / 1000.0, snd_mss=snd_mss, rcv_mss=rcv_mss, unacked=unacked,
                   last_data_sent_ms=last_data_sent, last_data_recv_ms=last_data_recv,
                   rtt_ms=rtt_us / 1000.0, rttvar_ms=rttvar_us / 1000.0,
                   snd_ssthresh=ssthresh, snd_cwnd=cwnd, advmss=advmss,
                   total_retrans=total_retrans)


def read(sock: socket.socket) -> TcpInfo:
    """TCP_INFO of a connected TCP socket, now."""
    return parse(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, REQUEST_BYTES))
