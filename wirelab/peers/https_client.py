"""An in-process HTTPS client in a lab node: Python's ssl and http.client over a TCP
socket made in the node's namespace (no process start per request; http.client sets
TCP_NODELAY, so a request is never held by Nagle behind the client's Finished)."""
from __future__ import annotations

import http.client
import ssl
import time
from pathlib import Path

from wirelab.errors import LabError
from wirelab.models.tls import PROTOCOL_NAME

TLS_VERSION = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class LabHTTPSConnection(http.client.HTTPSConnection):
    """http.client's HTTPS connection over a socket made in a lab node."""

    def __init__(self, node, host: str, port: int, context: ssl.SSLContext,
                 timeout_s: float = 30.0):
        super().__init__(host, port, timeout=timeout_s, context=context)
        self._node = node
        self._create_connection = self._lab_socket

    def _lab_socket(self, address, timeout, source_address=None):
        sock = self._node.socket()
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock


def client_context(ca: Path, version: str) -> ssl.SSLContext:
    """Verifies the server against the lab CA; exactly one TLS version."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.minimum_version = ctx.maximum_version = TLS_VERSION[version]
    return ctx


def get(conn: LabHTTPSConnection, path: str, body: bytes) -> tuple[float, float]:
    """One GET of PATH on CONN expecting BODY; (start, end) in perf_counter seconds.
    Opens the connection first if it is not open."""
    t0 = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    got = resp.read()
    t1 = time.perf_counter()
    if resp.status != 200 or got != body:
        raise LabError(f"GET {path}: status {resp.status}, {len(got)} bytes")
    if resp.will_close:
        raise LabError("the server closed a keep-alive connection")
    return t0, t1


def check_tls(conn: LabHTTPSConnection, version: str, resumed: bool = False) -> None:
    """The connection runs TLS VERSION and (not) a resumed session, as asked."""
    got = conn.sock.version()
    if got != PROTOCOL_NAME[version] or conn.sock.session_reused != resumed:
        raise LabError(f"TLS {got}, session reused {conn.sock.session_reused}; expected "
                       f"{PROTOCOL_NAME[version]}, reused {resumed}")
