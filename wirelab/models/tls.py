"""TLS round trips from first principles, and the names the tools give each version.

Round trips a client waits for after the TCP handshake before it may send application
data (RFC 5246 §7.3, RFC 5077, RFC 8446 §2):

================  =============================================  ==
TLS 1.2 full      CH -> SH..Done | CKE,CCS,Fin -> CCS,Fin | data  2
TLS 1.2 ticket    CH+ticket -> SH,CCS,Fin | CCS,Fin,data          1
TLS 1.3 full      CH -> SH..Fin | Fin,data                        1
TLS 1.3 PSK       CH+PSK -> SH..Fin | Fin,data                    1
TLS 1.3 0-RTT     CH+PSK,early data                               0
================  =============================================  ==
"""
from __future__ import annotations

from dataclasses import dataclass

VERSIONS = ("1.2", "1.3")
#: How OpenSSL, nginx ($ssl_protocol) and Python's ssl name each version.
PROTOCOL_NAME = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}


def handshake_round_trips(version: str, resumed: bool = False, early_data: bool = False) -> int:
    """Round trips before the client's first application byte (the table above)."""
    if version not in VERSIONS:
        raise ValueError(f"TLS version {version!r}: allowed {', '.join(VERSIONS)}")
    if early_data:
        if version != "1.3" or not resumed:
            raise ValueError("early data needs a resumed TLS 1.3 session")
        return 0
    return 2 if version == "1.2" and not resumed else 1


@dataclass(frozen=True)
class Handshake:
    """One kind of TLS handshake a client can make."""
    version: str            # "1.2" or "1.3"
    resume: bool            # offer a session from an earlier connection
    early_data: bool        # send the payload as 0-RTT early data
    fresh_ticket: bool      # each connection must use the ticket the previous one received


HANDSHAKES = {
    "tls12_full": Handshake("1.2", resume=False, early_data=False, fresh_ticket=False),
    "tls12_resumed": Handshake("1.2", resume=True, early_data=False, fresh_ticket=False),
    "tls13_full": Handshake("1.3", resume=False, early_data=False, fresh_ticket=False),
    "tls13_psk": Handshake("1.3", resume=True, early_data=False, fresh_ticket=True),
    "tls13_0rtt": Handshake("1.3", resume=True, early_data=True, fresh_ticket=True),
}
