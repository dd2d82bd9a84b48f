"""curl's phases of a page load, timed on the wire from packet taps.

For each transfer (one fresh connection to a host name never used before), the
client's tap gives the moment each phase ends at its interface: the last DNS reply for
the name; the SYN-ACK; the server's last handshake packet before the client sends its
request; the response's first and last byte.  A critical-path walk back to the
transfer's first packet (its first DNS query, or its SYN without DNS) splits each into
time in the network and each end's processing (wirelab.measure.critical_path).
"""
from __future__ import annotations

from wirelab.errors import LabError
from wirelab.measure import critical_path as cp
from wirelab.measure.dns_messages import question
from wirelab.measure.packets import connections
from wirelab.measure.tap import Event
from wirelab.measure.tls_records import APPLICATION_DATA, first_app_data, tls_records

PHASES = ("namelookup_ms", "connect_ms", "appconnect_ms", "starttransfer_ms", "total_ms")
#: A TLS record at least this long from the client is the request, not a Finished.
REQUEST_MIN_BYTES = 80


def _dns(e: Event) -> tuple[str, bool] | None:
    s = e.seg
    if s.proto != 17 or 53 not in (s.sport, s.dport):
        return None
    return question(s.payload)


def resent(events: dict[str, list[Event]], keep) -> list[str]:
    """Every packet any tap shows resent that KEEP(segment) selects."""
    out = []
    for node, ev in events.items():
        for i in sorted(cp.originals(ev)):
            if keep(ev[i].seg):
                out.append(cp.describe(ev[i], node))
    return out


def _of_transfer(conn, name: str):
    """A predicate: is a segment part of the transfer to NAME on CONN (its TCP
    connection, either way, or a DNS query for the name)?"""
    key = (6, *conn.client, *conn.server)

    def keep(s) -> bool:
        return (s.proto, s.src, s.sport, s.dst, s.dport) == key or \
            (s.proto, s.dst, s.dport, s.src, s.sport) == key or \
            (s.proto == 17 and question(s.payload) == (name.lower(), False))
    return keep


def wire_phases(events: dict[str, list[Event]], owner: dict[str, str], names: list[str],
                with_dns: bool, page_bytes: int, port: int = 443, client: str = "h1",
                nodelay: frozenset[str] = frozenset(),
                iw_segs: int = cp.DEFAULT_IW_SEGS) -> list[dict]:
    """Per transfer to each of NAMES (in order): {"name", phase: network ms, ...,
    "compute": {phase: {node: ms}}, "retransmissions": [...]}.  WITH_DNS: each transfer
    starts with a lookup through the resolver (else none may leave the client).
    NODELAY: the nodes whose programs set TCP_NODELAY (see critical_path)."""
    h1 = events[client]
    conns = connections([e.seg for e in h1], port)
    if len(conns) != len(names):
        raise LabError(f"the client's tap shows {len(conns)} connections for {len(names)} "
                       "transfers")
    at = {(e.ts, e.out, e.seg): e for e in h1}
    out = []
    for name, conn in zip(names, conns, strict=True):
        ev = [at[(s.ts, conn.from_client(s), s)] for s in conn.segments]
        queries = [e for e in h1 if e.out and _dns(e) == (name.lower(), False)]
        replies = [e for e in h1 if not e.out and _dns(e) == (name.lower(), True)]
        if with_dns and (not queries or not replies):
            raise LabError(f"{name}: no DNS exchange on the client's tap")
        if not with_dns and queries:
            raise LabError(f"{name}: a DNS query left the client without a resolver")
        start = queries[0].ts if with_dns else ev[0].ts
        synack = next((e for e in ev if not e.out and e.seg.syn), None)
        req = next((r for r in tls_records(conn.stream(True))
                    if r.content_type == APPLICATION_DATA and r.length >= REQUEST_MIN_BYTES), None)
        server = conn.stream(False)
        resp = first_app_data(tls_records(server), page_bytes)
        if synack is None or req is None or resp is None:
            raise LabError(f"{name}: the client's tap lacks the handshake, request or response")
        handshake = [e for e in ev if not e.out and e.seg.payload and e.ts < req.ts]
        if not handshake:
            raise LabError(f"{name}: no TLS handshake from the server before the request")

        def arrival(ts: float, ev: list[Event] = ev) -> Event:
            return next(e for e in ev if not e.out and e.ts == ts)

        ends = {"namelookup_ms": replies[-1] if replies else None, "connect_ms": synack,
                "appconnect_ms": handshake[-1], "starttransfer_ms": arrival(resp.ts),
                "total_ms": arrival(server.time_of(resp.offset + 5 + resp.length - 1))}
        w: dict = {"name": name, "compute": {},
                   "retransmissions": resent(events, _of_transfer(conn, name))}
        for m, end in ends.items():
            if end is None:
                w[m], w["compute"][m] = 0.0, {}
                continue
            path = cp.critical_path(events, owner, start, client, end, iw_segs, nodelay)
            w[m], w["compute"][m] = path.network_ms, path.compute_ms
            w["retransmissions"] += [r for r in path.retransmissions
                                     if r not in w["retransmissions"]]
        out.append(w)
    return out


def describe(wire: list[dict]) -> str:
    """One line per transfer for raw/: network / each node's processing, per phase."""
    return "".join(f"{w['name']}: " + ", ".join(
        f"{m.removesuffix('_ms')} {w[m]:.3f} / "
        + " ".join(f"{n} {c:.3f}" for n, c in w["compute"][m].items()) for m in PHASES) + "\n"
        for w in wire)
