"""TCP_INFO read in-process: ``struct tcp_info`` parsed with :mod:`struct`.

``getsockopt(IPPROTO_TCP, TCP_INFO)`` returns the kernel's ``struct tcp_info``
(include/uapi/linux/tcp.h), truncated to whatever the caller asked for and
to what the running kernel knows; newer kernels only ever append fields.  So
the parser walks a table of (name, format) in the header's order and stops
at the end of the bytes it was given: a field the kernel did not return is
absent from the result, never zero.

Units are the kernel's: times in microseconds (``rto``, ``rtt``,
``min_rtt``...) except the ``last_*`` ages in milliseconds, sizes in bytes
(``snd_mss``, ``pmtu``, ``snd_wnd``), windows in segments (``snd_cwnd``,
``snd_ssthresh``), rates in bytes per second.
"""
from __future__ import annotations

import socket
import struct

#: getsockopt(2) option numbers from include/uapi/linux/tcp.h (Python's
#: socket module has TCP_INFO and TCP_CONGESTION on Linux; kept here so
#: the numbers are stated once).
TCP_MAXSEG = 2
TCP_INFO = 11
TCP_CONGESTION = 13

#: The first 8 bytes: u8 fields, two of them bitfields (see _unpack_bits).
_HEAD = (("state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("probes", "B"),
         ("backoff", "B"), ("options", "B"), ("_wscale", "B"), ("_flags", "B"))

#: Everything after the head, in struct tcp_info order (6.1 has all of these;
#: 6.7 appended rcv_wnd, rehash, total_rto*, which we do not need).  Every
#: field is naturally aligned in the C struct, so no padding appears.
_BODY = (
    ("rto", "I"), ("ato", "I"), ("snd_mss", "I"), ("rcv_mss", "I"),
    ("unacked", "I"), ("sacked", "I"), ("lost", "I"), ("retrans", "I"), ("fackets", "I"),
    ("last_data_sent", "I"), ("last_ack_sent", "I"), ("last_data_recv", "I"),
    ("last_ack_recv", "I"),
    ("pmtu", "I"), ("rcv_ssthresh", "I"), ("rtt", "I"), ("rttvar", "I"),
    ("snd_ssthresh", "I"), ("snd_cwnd", "I"), ("advmss", "I"), ("reordering", "I"),
    ("rcv_rtt", "I"), ("rcv_space", "I"), ("total_retrans", "I"),
    ("pacing_rate", "Q"), ("max_pacing_rate", "Q"), ("bytes_acked", "Q"),
    ("bytes_received", "Q"),
    ("segs_out", "I"), ("segs_in", "I"), ("notsent_bytes", "I"), ("min_rtt", "I"),
    ("data_segs_in", "I"), ("data_segs_out", "I"),
    ("delivery_rate", "Q"), ("busy_time", "Q"), ("rwnd_limited", "Q"),
    ("sndbuf_limited", "Q"),
    ("delivered", "I"), ("delivered_ce", "I"),
    ("bytes_sent", "Q"), ("bytes_retrans", "Q"),
    ("dsack_dups", "I"), ("reord_seen", "I"), ("rcv_ooopack", "I"), ("snd_wnd", "I"),
)
FIELDS = _HEAD + _BODY

#: Offsets of every field, computed from the table (checked in the unit test
#: against the C layout: snd_cwnd at 80, pacing_rate at 104, snd_wnd at 228).
OFFSETS: dict[str, int] = {}
_off = 0
for _name, _fmt in FIELDS:
    OFFSETS[_name] = _off
    _off += struct.calcsize("=" + _fmt)
SIZE = _off  # 232 bytes: sizeof(struct tcp_info) up to tcpi_snd_wnd
del _off, _name, _fmt

#: Minimum bytes for a useful answer: everything up to snd_cwnd inclusive.
MIN_SIZE = OFFSETS["snd_cwnd"] + 4

#: ``ca_state`` values (enum tcp_ca_state, include/net/tcp.h), in rising order of trouble.
CA_OPEN, CA_DISORDER, CA_CWR, CA_RECOVERY, CA_LOSS = range(5)


class TcpInfoError(ValueError):
    """The bytes are too short to hold the fields we rely on."""


def parse(data: bytes) -> dict[str, int]:
    """The fields of struct tcp_info present in DATA (native byte order, as
    getsockopt returns it).  Raises TcpInfoError if DATA stops before
    ``snd_cwnd``."""
    if len(data) < MIN_SIZE:
        raise TcpInfoError(f"TCP_INFO returned {len(data)} bytes; at least {MIN_SIZE} "
                           "(up to tcpi_snd_cwnd) are needed")
    out: dict[str, int] = {}
    for name, fmt in FIELDS:
        off = OFFSETS[name]
        size = struct.calcsize("=" + fmt)
        if off + size > len(data):
            break
        out[name] = struct.unpack_from("=" + fmt, data, off)[0]
    _unpack_bits(out)
    return out


def _unpack_bits(out: dict[str, int]) -> None:
    """Split the two bitfield bytes.  GCC on little-endian machines allocates
    bitfields from the least significant bit: ``tcpi_snd_wscale : 4`` is the
    low nibble, ``tcpi_rcv_wscale : 4`` the high one; in the next byte
    ``delivery_rate_app_limited : 1`` is bit 0 and ``fastopen_client_fail : 2``
    bits 1-2."""
    ws = out.pop("_wscale")
    flags = out.pop("_flags")
    out["snd_wscale"] = ws & 0x0F
    out["rcv_wscale"] = ws >> 4
    out["delivery_rate_app_limited"] = flags & 0x01
    out["fastopen_client_fail"] = (flags >> 1) & 0x03


def build(**fields: int) -> bytes:
    """The bytes the kernel would return for FIELDS (others zero): the
    inverse of :func:`parse`, for tests and for documenting the layout."""
    buf = bytearray(SIZE)
    values = dict(fields)
    values["_wscale"] = (values.pop("snd_wscale", 0) & 0x0F) | (values.pop("rcv_wscale", 0) & 0x0F) << 4
    values["_flags"] = (values.pop("delivery_rate_app_limited", 0) & 0x01) | \
        (values.pop("fastopen_client_fail", 0) & 0x03) << 1
    for name, fmt in FIELDS:
        if name in values:
            struct.pack_into("=" + fmt, buf, OFFSETS[name], values.pop(name))
    if values:
        raise KeyError(f"not struct tcp_info fields: {', '.join(sorted(values))}")
    return bytes(buf)


def read(sock: socket.socket) -> dict[str, int]:
    """TCP_INFO of SOCK, parsed."""
    return parse(sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, SIZE))


def set_congestion(sock: socket.socket, name: str) -> str:
    """Choose SOCK's congestion control (TCP_CONGESTION) and read it back.

    Per socket rather than as the namespace default: in a child namespace
    ``tcp_allowed_congestion_control`` may not list it and the sysctl write
    fails with EPERM, while a CAP_NET_ADMIN caller may set any loaded (or
    auto-loadable) algorithm on its own socket."""
    sock.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, name.encode())
    return congestion(sock)


def congestion(sock: socket.socket) -> str:
    raw = sock.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16)
    return raw.split(b"\0", 1)[0].decode()


def maxseg(sock: socket.socket) -> int:
    """TCP_MAXSEG of a connected socket: the current send MSS (mss_cache), in
    bytes, i.e. MSS minus the options every segment carries (timestamps)."""
    return sock.getsockopt(socket.IPPROTO_TCP, TCP_MAXSEG)


def episodes(samples: list[dict], ca_state: int) -> list[tuple[int, int]]:
    """The runs of consecutive SAMPLES (TCP_INFO dicts, oldest first) in CA_STATE, as
    (index of the first, index after the last): each fast recovery or loss episode a
    sampled trace caught."""
    runs: list[tuple[int, int]] = []
    for i, s in enumerate(samples):
        if s["ca_state"] != ca_state:
            continue
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs
