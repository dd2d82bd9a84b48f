"""Reflection and amplification over memcached's UDP protocol: what a spoofed request
costs the attacker and what the reflector sends the victim, byte for byte; and what is left
of a victim's access link under the flood.

memcached's UDP frame: every datagram, request or response, starts with an 8 B header
(request id, sequence number, datagrams in this message, reserved).  A response is cut into
datagrams of at most UDP_MAX_PAYLOAD_SIZE = 1400 B of UDP payload, the header included
(memcached.h), so 1392 B of text each, and never two keys' text in one.  A "get" answers
each key it names, once per name:

    VALUE <key> <flags> <bytes>\\r\\n<data>\\r\\n ... END\\r\\n

On the wire each datagram adds UDP 8 + IPv4 20 + Ethernet 14 bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

FRAME_HEADER = 8            # memcached's UDP frame header
UDP_MAX_PAYLOAD = 1400      # memcached.h UDP_MAX_PAYLOAD_SIZE, header included
UDP_IP_ETH = 8 + 20 + 14    # per datagram, below the payload
TCP_FRAME = 1514            # an MSS-sized TCP segment with timestamps, on the wire
TCP_PAYLOAD = 1448


def request(key: str, keys: int = 1) -> bytes:
    """The text of a get naming KEY KEYS times (without the frame header)."""
    if keys < 1:
        raise ValueError(f"keys {keys!r}: must be >= 1")
    return ("get" + f" {key}" * keys + "\r\n").encode()


def response_text_bytes(key: str, value_bytes: int, keys: int = 1, flags: int = 0) -> int:
    one = len(f"VALUE {key} {flags} {value_bytes}\r\n") + value_bytes + 2
    return keys * one + len("END\r\n")


@dataclass(frozen=True)
class Reflection:
    request_payload: int        # UDP payload of the request (frame header + text)
    request_wire: int           # the request's frame on the wire
    datagrams: int              # of the response
    response_payload: int       # UDP payload of the whole response (headers included)
    response_wire: int          # its frames on the wire

    @property
    def by_frames(self) -> float:
        return self.response_wire / self.request_wire

    @property
    def by_payload(self) -> float:
        return self.response_payload / self.request_payload


def reflection(key: str, value_bytes: int, keys: int = 1) -> Reflection:
    """memcached 1.6 answers each key of a get with a response object of its own, the last
    one ending in END, and sends one response at a time (transmit_udp): a datagram never
    carries parts of two keys, so each key's block is cut into datagrams on its own."""
    req = FRAME_HEADER + len(request(key, keys))
    block = response_text_bytes(key, value_bytes, 1) - len("END\r\n")
    blocks = [block] * (keys - 1) + [block + len("END\r\n")]
    n = sum(math.ceil(b / (UDP_MAX_PAYLOAD - FRAME_HEADER)) for b in blocks)
    payload = sum(blocks) + n * FRAME_HEADER
    return Reflection(req, req + UDP_IP_ETH, n, payload, payload + n * UDP_IP_ETH)


def flood_mbps(r: Reflection, requests_per_s: float, cap_mbps: float) -> float:
    """The reflected flood's rate on the wire: requests a second times a response, no more
    than the reflector's own link passes."""
    return min(cap_mbps, requests_per_s * r.response_wire * 8 / 1e6)


def goodput_ratio(access_mbps: float, flood: float, filtered_at_edge: bool) -> float:
    """Legitimate TCP goodput over the access link's rate C.  Dropped at the edge, the flood
    never reaches the link: TCP gets it all (payload 1448 of 1514 B a frame).  Anywhere
    after the link (the victim's own filter included), the flood has used the link before
    the filter sees it; an unresponsive flood at or above C leaves TCP (which backs off on
    every loss) about nothing; below C, what the flood leaves."""
    share = 1.0 if filtered_at_edge else max(0.0, 1.0 - flood / access_mbps)
    return share * TCP_PAYLOAD / TCP_FRAME
