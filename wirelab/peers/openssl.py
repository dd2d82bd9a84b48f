"""openssl s_server / s_client as lab tools: their argument lists, starting a
server and running a client in a lab node, and what s_client reports about the
connection it made (protocol, resumption, early data, verification), parsed from
its output and checked against what was asked.

s_client's full report contains the session's master key and ticket; those
are dropped (:func:`redact`) before anything is saved.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wirelab.errors import LabError
from wirelab.lab.wait import poll
from wirelab.models.tls import PROTOCOL_NAME

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

    def problems(self, version: str, reused: bool, early_data: str) -> list[str]:
        """How the connection differs from one of TLS VERSION whose session was REUSED (or
        new), with EARLY_DATA as s_client words it (TLS 1.3 only), and a verified server
        certificate: one phrase per difference."""
        want = PROTOCOL_NAME[version]
        return [p for bad, p in (
            (not self.verified, "the server certificate was not verified"),
            (self.protocol != want, f"protocol {self.protocol}, expected {want}"),
            (self.reused is not reused, f"session {'reused' if self.reused else 'new'}"
             f", expected {'reused' if reused else 'new'}"),
            (version == "1.3" and self.early_data != early_data,
             f"early data {self.early_data}, expected {early_data}")) if bad]


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


def start_s_server(node, argv: list[str], port: int, log: Path, timeout_s: float = 30.0) -> None:
    """Start s_server (ARGV, from :func:`s_server_argv`) in NODE with its output in LOG,
    and wait until it listens on PORT.  Its stdin stays an open pipe: s_server ends a
    connection at EOF on stdin."""
    with open(log, "wb") as outf:
        node.popen(argv, stdin=subprocess.PIPE, stdout=outf, stderr=subprocess.STDOUT)
    node.wait_listening(port, timeout_s)


def saved(session: Path) -> bool:
    """Whether s_client has written a session (its -sess_out file, not empty)."""
    return session.exists() and session.stat().st_size > 0


def run_s_client(node, argv: list[str], payload: bytes, log: Path, *, ticket: Path | None = None,
                 timeout_s: float = 30.0) -> tuple[int, str]:
    """Run s_client (ARGV, from :func:`s_client_argv`) in NODE with its output in LOG,
    write PAYLOAD to it and end its input: it sends close_notify and exits.  With TICKET
    (its -sess_out) the input stays open until the session has been saved there (TLS 1.3
    sends tickets after the handshake) or s_client exited.  Returns (its exit status, its
    output without key material); LabError if it does not exit within TIMEOUT_S."""
    with open(log, "wb") as outf:
        proc = node.popen(argv, stdin=subprocess.PIPE, stdout=outf, stderr=subprocess.STDOUT)
    try:
        proc.stdin.write(payload)
        proc.stdin.flush()
        if ticket is not None:
            poll(lambda: proc.poll() is not None or saved(ticket), timeout_s,
                 "s_client to receive and save a session ticket")
    finally:
        proc.stdin.close()
    try:
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"s_client did not exit within {timeout_s} s") from e
    return rc, redact(log.read_text(errors="replace"))
