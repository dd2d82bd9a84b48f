"""Packets as the lab sees them, decoded in pure Python: frames, pcap files, TCP
connections and their reassembled byte streams.

A capture is the trustworthy clock of a TLS experiment: the kernel stamps
each packet as it crosses the interface, whatever the processes at either
end were doing.  This module turns a pcap file into TCP segments, groups
them into connections and reassembles each direction's byte stream, each byte
stamped with the time the segment carrying it crossed the interface
(wirelab.measure.tls_records cuts a stream into TLS records).

Only what the lab produces is supported: classic pcap (micro- or nanosecond
timestamps, either byte order), Ethernet or Linux "cooked" link types, IPv4,
TCP (and UDP datagrams, whose payload is kept whole).  A file that tcpdump
is still writing may end in a partial packet; it is ignored, so a growing
capture can be read while it grows.
"""
from __future__ import annotations

import bisect
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

#: pcap magic (as stored) -> (struct byte order, seconds per timestamp fraction unit)
_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
ETH_P_IP = 0x0800
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMP = 1

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

#: TLS record content types (RFC 8446 §5.1)


class PcapError(ValueError):
    """The bytes are not a capture this reader understands."""


@dataclass(frozen=True)
class Segment:
    """One TCP/IPv4 segment as captured; TS in seconds (capture clock)."""
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes
    proto: int = 6           # IPPROTO_TCP; UDP datagrams (17) have seq = ack = flags = 0
    window: int = 0          # the TCP window field as sent (unscaled)
    mss_opt: int = 0         # the MSS option (SYNs), 0 if absent
    wscale: int = -1         # the window-scale option (SYNs), -1 if absent
    ts_opt: bool = False     # the timestamp option is present

    @property
    def syn(self) -> bool:
        return bool(self.flags & TCP_SYN)


def read_pcap(data: bytes) -> list[Segment]:
    """All TCP and UDP segments over IPv4 in a pcap file's bytes, in capture order.
    Other packets are skipped; a truncated last packet is ignored."""
    if len(data) < 24:
        if len(data) == 0 or _MAGIC.get(data[:4]) or len(data) < 4:
            return []  # tcpdump has not written its header yet
        raise PcapError("too short for a pcap header")
    try:
        order, unit = _MAGIC[data[:4]]
    except KeyError:
        raise PcapError(f"not a classic pcap file (magic {data[:4].hex()})") from None
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    if linktype not in (LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL):
        raise PcapError(f"link type {linktype} is not supported (Ethernet or Linux cooked only)")
    out = []
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, _origlen = struct.unpack_from(order + "IIII", data, pos)
        pos += 16
        if pos + caplen > len(data):
            break  # still being written
        seg = decode_frame(data[pos:pos + caplen], linktype, sec + frac * unit)
        pos += caplen
        if seg is not None:
            out.append(seg)
    return out


def read_pcap_file(path: str | Path) -> list[Segment]:
    return read_pcap(Path(path).read_bytes())


def decode_frame(frame: bytes, linktype: int, ts: float, icmp: bool = False) -> Segment | None:
    """A TCP or UDP packet over IPv4 in FRAME as a Segment (ICMP too when asked: type and
    code in sport and dport), else None."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        ethertype, off = struct.unpack_from("!H", frame, 12)[0], 14
        if ethertype == 0x8100 and len(frame) >= 18:  # one VLAN tag
            ethertype, off = struct.unpack_from("!H", frame, 16)[0], 18
    else:
        if len(frame) < 16:
            return None
        ethertype, off = struct.unpack_from("!H", frame, 14)[0], 16
    if ethertype != ETH_P_IP:
        return None
    return _decode_ipv4(frame[off:], ts, icmp)


def _decode_ipv4(pkt: bytes, ts: float, icmp: bool = False) -> Segment | None:
    if len(pkt) < 20 or pkt[0] >> 4 != 4:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    total = struct.unpack_from("!H", pkt, 2)[0]
    frag = struct.unpack_from("!H", pkt, 6)[0]
    wanted = (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP) if icmp else (IPPROTO_TCP, IPPROTO_UDP)
    if pkt[9] not in wanted or frag & 0x1FFF or len(pkt) < ihl + 8:
        return None
    # The frame may carry Ethernet padding past the IP datagram.
    tcp = pkt[ihl:min(total, len(pkt))] if total >= ihl else pkt[ihl:]
    if pkt[9] == IPPROTO_ICMP:      # type and code as the "ports"; the message as payload
        return Segment(ts, socket.inet_ntoa(pkt[12:16]), tcp[0], socket.inet_ntoa(pkt[16:20]),
                       tcp[1], 0, 0, 0, bytes(tcp[4:]), IPPROTO_ICMP)
    if pkt[9] == IPPROTO_UDP:
        sport, dport = struct.unpack_from("!HH", tcp, 0)
        return Segment(ts, socket.inet_ntoa(pkt[12:16]), sport, socket.inet_ntoa(pkt[16:20]),
                       dport, 0, 0, 0, bytes(tcp[8:]), IPPROTO_UDP)
    if len(tcp) < 20:
        return None
    sport, dport, seq, ack, off_flags, window = struct.unpack_from("!HHIIHH", tcp, 0)
    doff = (off_flags >> 12) * 4
    if doff < 20 or doff > len(tcp):
        return None
    mss, wscale, ts_opt = _options(tcp[20:doff])
    return Segment(ts, socket.inet_ntoa(pkt[12:16]), sport, socket.inet_ntoa(pkt[16:20]), dport,
                   seq, ack, off_flags & 0x3F, bytes(tcp[doff:]), IPPROTO_TCP, window, mss,
                   wscale, ts_opt)


def _options(opts: bytes) -> tuple[int, int, bool]:
    """(MSS, window scale, timestamps present) from a TCP header's options (RFC 9293,
    7323); 0, -1, False where absent.  A malformed option ends the parse."""
    mss, wscale, ts, i = 0, -1, False, 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2 or i + opts[i + 1] > len(opts):
            break
        length = opts[i + 1]
        if kind == 2 and length == 4:
            mss = struct.unpack_from("!H", opts, i + 2)[0]
        elif kind == 3 and length == 3:
            wscale = opts[i + 2]
        elif kind == 8 and length == 10:
            ts = True
        i += length
    return mss, wscale, ts


@dataclass
class Stream:
    """One direction's bytes, reassembled by sequence number.  CHUNKS maps
    the stream offset where each newly seen piece starts to the time the
    segment carrying it was captured (first copy wins; retransmissions add
    nothing)."""
    data: bytearray = field(default_factory=bytearray)
    starts: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def time_of(self, offset: int) -> float:
        """Capture time of the segment that first carried byte OFFSET."""
        if not 0 <= offset < len(self.data):
            raise IndexError(f"offset {offset} not in the stream (0..{len(self.data) - 1})")
        return self.times[bisect.bisect_right(self.starts, offset) - 1]


@dataclass
class Connection:
    """The segments of one TCP connection in one capture, in capture order."""
    client: tuple[str, int]
    server: tuple[str, int]
    isn: int                       # the client's initial sequence number (its SYN)
    segments: list[Segment] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int, int]:
        return (*self.client, self.isn)

    def from_client(self, seg: Segment) -> bool:
        return (seg.src, seg.sport) == self.client

    def syn_time(self) -> float:
        return next(s.ts for s in self.segments if s.syn and self.from_client(s))

    def handshake_ack_time(self) -> float | None:
        """When the client's segment completing the three-way handshake
        (its first segment without SYN) crossed this interface."""
        for s in self.segments:
            if self.from_client(s) and not s.syn and s.flags & TCP_ACK:
                return s.ts
        return None

    def stream(self, from_client: bool = True) -> Stream:
        """Reassemble one direction (the client's by default)."""
        isn = self.isn if from_client else self.server_isn()
        st = Stream()
        pending: dict[int, tuple[float, bytes]] = {}
        for s in self.segments:
            if self.from_client(s) != from_client or not s.payload or isn is None:
                continue
            off = (s.seq - isn - 1) % 2**32
            pending.setdefault(off, (s.ts, s.payload))
            _drain(st, pending)
        return st

    def server_isn(self) -> int | None:
        """The server's initial sequence number (its SYN-ACK), if captured."""
        for s in self.segments:
            if s.syn and not self.from_client(s):
                return s.seq
        return None


def _drain(st: Stream, pending: dict[int, tuple[float, bytes]]) -> None:
    """Append every pending piece that now touches the end of the stream."""
    progress = True
    while progress:
        progress = False
        for off in sorted(pending):
            ts, payload = pending[off]
            end = off + len(payload)
            if off <= len(st.data) < end:
                st.starts.append(len(st.data))
                st.times.append(ts)
                st.data += payload[len(st.data) - off:]
                del pending[off]
                progress = True
            elif end <= len(st.data):
                del pending[off]  # a retransmission of bytes already seen
                progress = True


def connections(segments: list[Segment], server_port: int) -> list[Connection]:
    """TCP connections to SERVER_PORT, each opened by a SYN in the capture,
    in the order of their SYNs.  A new SYN from the same client port with a
    new ISN starts a new connection (port reuse)."""
    out: list[Connection] = []
    live: dict[tuple[str, int], Connection] = {}
    for s in segments:
        if s.proto != IPPROTO_TCP:
            continue
        if s.dport == server_port:
            client, server = (s.src, s.sport), (s.dst, s.dport)
        elif s.sport == server_port:
            client, server = (s.dst, s.dport), (s.src, s.sport)
        else:
            continue
        conn = live.get(client)
        if s.syn and s.dport == server_port and (conn is None or conn.isn != s.seq):
            conn = Connection(client, server, s.seq)
            live[client] = conn
            out.append(conn)
        if conn is not None:
            conn.segments.append(s)
    return out
