"""DNS messages (RFC 1035), built and read in pure Python: a query, the question of a
message seen on the wire, the answers of a reply."""
from __future__ import annotations

import random
import struct

from wirelab.errors import LabError

QTYPES = {"A": 1, "TXT": 16, "AAAA": 28}
CLASS_IN, CLASS_CH = 1, 3


class DnsError(LabError):
    """A lab DNS server did not answer, or answered something unparsable."""


def build_query(name: str, qtype: str = "A", qclass: int = CLASS_IN,
                qid: int | None = None) -> tuple[int, bytes]:
    """A recursive query for NAME (RFC 1035 4.1): (its id, the bytes)."""
    qid = random.randrange(1 << 16) if qid is None else qid
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD set, one question
    labels = b"".join(bytes([len(part)]) + part.encode("ascii")
                      for part in name.rstrip(".").split("."))
    return qid, header + labels + b"\x00" + struct.pack("!HH", QTYPES[qtype], qclass)


def _skip_name(msg: bytes, i: int) -> int:
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:     # a compression pointer ends the name
            return i + 2
        i += 1 + n


def question(msg: bytes) -> tuple[str, bool] | None:
    """(the first question's name, is-a-reply) of a DNS message, or None
    if it is not one this lab sends (no compression in a question)."""
    if len(msg) < 13:
        return None
    flags, qd = struct.unpack("!HH", msg[2:6])
    if qd < 1:
        return None
    labels, i = [], 12
    while i < len(msg) and msg[i]:
        n = msg[i]
        if n & 0xC0 or i + 1 + n > len(msg):
            return None
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    return ".".join(labels).lower(), bool(flags & 0x8000)


def parse_response(msg: bytes, qid: int) -> dict:
    """{"rcode": int, "answers": [(type, rdata bytes, ttl s)]} of a reply to QID."""
    if len(msg) < 12:
        raise DnsError(f"short DNS reply ({len(msg)} bytes)")
    rid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    if rid != qid or not flags & 0x8000:
        raise DnsError(f"not a reply to query {qid}: id {rid}, flags {flags:#06x}")
    i = 12
    for _ in range(qd):
        i = _skip_name(msg, i) + 4
    answers = []
    for _ in range(an):
        i = _skip_name(msg, i)
        rtype, _cls, ttl, rdlen = struct.unpack("!HHIH", msg[i:i + 10])
        i += 10
        answers.append((rtype, msg[i:i + rdlen], ttl))
        i += rdlen
    return {"rcode": flags & 0x000F, "answers": answers}
