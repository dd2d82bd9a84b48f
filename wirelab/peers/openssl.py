"""openssl s_server / s_client as lab tools: their argument lists, and what
s_client reports about the connection it made (protocol, resumption, early
data, verification), parsed from its output.

s_client's full report contains the session's master key and ticket; those
are dropped (:func:`redact`) before anything is saved.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

VERSION_FLAG = {"1.2": "-tls1_2", "1.3": "-tls1_3"}
#: bytes of early data a TLS 1.3 server accepts (advertised in its tickets)
MAX_EARLY_DATA = 16384


def s_server_argv(port: int, version: str, cert: Path, key: Path, *, early_data: bool = False,
                  no_cache: bool = False) -> list[str]:
    """s_server pinned to one TLS VERSION ("1.2" or "1.3").  Session tickets
    are on (OpenSSL's default).  NO_CACHE turns the server-side session cache
    off, so a TLS 1.2 resumption can only be by ticket.  EARLY_DATA lets a
    TLS 1.3 server accept 0-RTT data (it reads it with SSL_read_early_data and
    advertises MAX_EARLY_DATA in its tickets; replay protection stays on)."""
    argv = ["openssl", "s_server", "-accept", str(port), VERSION_FLAG[version],
            "-cert", str(cert), "-key", str(key)]
    if no_cache:
        argv.append("-no_cache")
    if early_data:
        argv += ["-early_data", "-max_early_data", str(MAX_EARLY_DATA)]
    return argv


def s_client_argv(host: str, port: int, version: str, ca: Path, *, sess_in: Path | None = None,
                  sess_out: Path | None = None, early_data: Path | None = None) -> list[str]:
    """s_client pinned to VERSION that verifies the server against the lab CA
    (and the certificate's IP address) and fails if verification fails."""
    argv = ["openssl", "s_client", "-connect", f"{host}:{port}", VERSION_FLAG[version],
            "-CAfile", str(ca), "-verify_return_error", "-verify_ip", host]
    if sess_in is not None:
        argv += ["-sess_in", str(sess_in)]
    if sess_out is not None:
        argv += ["-sess_out", str(sess_out)]
    if early_data is not None:
        argv += ["-early_data", str(early_data)]
    return argv


@dataclass(frozen=True)
class ClientReport:
    protocol: str | None      # "TLSv1.3"
    cipher: str | None
    reused: bool | None       # "Reused, ..." vs "New, ..."
    early_data: str | None    # "accepted", "rejected", "not sent" (TLS 1.3 only)
    verified: bool            # "Verify return code: 0 (ok)"


_SESSION_LINE = re.compile(r"^(New|Reused), (TLSv[\d.]+), Cipher is (\S+)", re.M)
_EARLY = re.compile(r"^Early data was (accepted|rejected|not sent)", re.M)


def parse_s_client(text: str) -> ClientReport:
    """What s_client's (non-brief) report says about its connection."""
    m = _SESSION_LINE.search(text)
    e = _EARLY.search(text)
    return ClientReport(protocol=m.group(2) if m else None, cipher=m.group(3) if m else None,
                        reused=(m.group(1) == "Reused") if m else None,
                        early_data=e.group(1) if e else None,
                        verified="Verify return code: 0 (ok)" in text)


_HEXDUMP = re.compile(r"^\s+[0-9a-f]{4} - .*$\n?", re.M)
_SECRET = re.compile(r"^(\s*(?:Master-Key|Session-ID|Session-ID-ctx|Resumption PSK)):.*$", re.M)
_PEM = re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.S)


def redact(text: str) -> str:
    """TEXT without key material: master keys, PSKs, session IDs, ticket hex
    dumps and PEM blocks (sessions, certificates)."""
    text = _PEM.sub("<PEM block removed>", text)
    text = _SECRET.sub(r"\1: <removed>", text)
    return _HEXDUMP.sub("", text)
