"""TLS records in a reassembled TCP stream (5-byte header: content type, version,
length), each stamped with the time the segment carrying its first byte crossed the
interface."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from wirelab.measure.packets import PcapError, Stream

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23


@dataclass(frozen=True)
class TlsRecord:
    offset: int          # where its header starts in the stream
    content_type: int
    length: int          # of the fragment, without the 5-byte header
    ts: float            # capture time of the segment carrying its first byte


def tls_records(stream: Stream) -> list[TlsRecord]:
    """The complete TLS records at the start of a reassembled stream.
    Raise PcapError if the bytes are not TLS."""
    out = []
    pos, data = 0, stream.data
    while pos + 5 <= len(data):
        ctype, major, length = data[pos], data[pos + 1], struct.unpack_from("!H", data, pos + 3)[0]
        if ctype not in (CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, 24) or major != 3:
            raise PcapError(f"no TLS record at stream offset {pos} (bytes {bytes(data[pos:pos + 5]).hex()})")
        if pos + 5 + length > len(data):
            break  # not all captured yet
        out.append(TlsRecord(pos, ctype, length, stream.time_of(pos)))
        pos += 5 + length
    return out


def first_app_data(records: list[TlsRecord], min_length: int) -> TlsRecord | None:
    """The first application_data record at least MIN_LENGTH long.

    The length test is what separates real application data from TLS 1.3's
    encrypted handshake messages, which also travel as content type 23
    (Finished: 53 or 69 bytes, EndOfEarlyData: 21): a payload of MIN_LENGTH
    bytes or more only ever fits an application-data record."""
    for rec in records:
        if rec.content_type == APPLICATION_DATA and rec.length >= min_length:
            return rec
    return None
