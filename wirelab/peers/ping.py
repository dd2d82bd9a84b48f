"""An ICMP echo from inside a lab node, in-process (a raw socket in the node's
namespace): no ping process, and the wait is the caller's."""
from __future__ import annotations

import os
import select
import socket
import struct
import time

ECHO_REQUEST, ECHO_REPLY = 8, 0


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo(node, dst: str, timeout_s: float, seq: int = 1) -> float | None:
    """Send one echo request from NODE to DST; the round trip in ms, or None if no reply
    came within TIMEOUT_S."""
    ident = os.getpid() & 0xFFFF
    payload = struct.pack("!d", time.monotonic()) + bytes(48)
    header = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq)
    packet = struct.pack("!BBHHH", ECHO_REQUEST, 0, _checksum(header + payload), ident, seq) \
        + payload
    sock = node.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        t0 = time.perf_counter()
        sock.sendto(packet, (dst, 0))
        deadline = t0 + timeout_s
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                return None
            data, (src, _) = sock.recvfrom(2048)
            ihl = (data[0] & 0x0F) * 4
            kind, _code, _sum, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if kind == ECHO_REPLY and rid == ident and rseq == seq and src == dst:
                return (time.perf_counter() - t0) * 1e3
    finally:
        sock.close()
