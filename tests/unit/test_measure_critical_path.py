"""wirelab.measure.tap without root: the critical-path walk and a batch's span on
synthetic timelines whose answers are known by construction."""
from __future__ import annotations

import pytest

from wirelab.errors import LabError
from wirelab.measure.critical_path import critical_path
from wirelab.measure.packets import Segment
from wirelab.measure.tap import Event, fetch_span

C, S = "10.0.1.2", "10.0.2.2"
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01
OWNER = {C: "client", S: "server"}


def seg(src, dst, seq, ack, flags, n=0, sport=None, dport=None):
    sport = sport if sport is not None else (40000 if src == C else 443)
    dport = dport if dport is not None else (443 if src == C else 40000)
    return Segment(0.0, src, sport, dst, dport, seq, ack, flags, b"x" * n)


def both(ts_send, ts_recv, s):
    """One packet: its departure at the sender, its arrival at the receiver."""
    return Event(ts_send, True, s), Event(ts_recv, False, s)


def request_response(one_way=0.025, client_think=0.004, server_think=0.002):
    """SYN, SYN-ACK, the client's ACK at once, its request after
    CLIENT_THINK, the response after SERVER_THINK; one-way delay ONE_WAY.
    Returns the two taps."""
    d = one_way
    c_syn, s_syn = both(0.0, d, seg(C, S, 100, 0, SYN))
    s_sa, c_sa = both(d, 2 * d, seg(S, C, 900, 101, SYN | ACK))
    c_ack, s_ack = both(2 * d, 3 * d, seg(C, S, 101, 901, ACK))
    t_req = 2 * d + client_think
    c_req, s_req = both(t_req, t_req + d, seg(C, S, 101, 901, PSH | ACK, 200))
    t_resp = t_req + d + server_think
    s_resp, c_resp = both(t_resp, t_resp + d, seg(S, C, 901, 301, PSH | ACK, 3000))
    return {"client": sorted([c_syn, c_sa, c_ack, c_req, c_resp], key=lambda e: e.ts),
            "server": sorted([s_syn, s_sa, s_ack, s_req, s_resp], key=lambda e: e.ts)}


def test_critical_path_splits_network_and_processing():
    taps = request_response(one_way=0.025, client_think=0.004, server_think=0.002)
    end = taps["client"][-1]
    path = critical_path(taps, OWNER, 0.0, "client", end)
    assert path.span_ms == pytest.approx(106.0)            # 2 RTT + 4 + 2 ms
    assert path.network_ms == pytest.approx(100.0)         # exactly two round trips
    assert path.compute_ms == pytest.approx({"client": 4.0, "server": 2.0})
    assert path.network_ms + path.total_compute_ms == pytest.approx(path.span_ms)


def test_a_pure_ack_wait_is_not_processing():
    """A window-limited sender (two full segments out) waits for a delayed
    ACK (a timer): that wait is counted as network time, so the walk never
    shortens the round-trip count."""
    d = 0.01
    data = seg(S, C, 1, 1, PSH | ACK, 2896)
    s_data, c_data = both(0.0, d, data)
    ack = seg(C, S, 1, 2897, ACK)
    c_ack, s_ack = both(d + 0.040, 2 * d + 0.040, ack)           # 40 ms delayed ACK
    more = seg(S, C, 2897, 1, PSH | ACK, 1000)
    s_more, c_more = both(2 * d + 0.040, 3 * d + 0.040, more)    # sent when the ACK came
    taps = {"client": [c_data, c_ack, c_more], "server": [s_data, s_ack, s_more]}
    path = critical_path(taps, OWNER, 0.0, "client", c_more)
    assert path.network_ms == pytest.approx(70.0)
    assert path.total_compute_ms == pytest.approx(0.0)


def test_an_ack_of_a_lone_small_packet_arriving_as_the_application_answers():
    """TLS 1.3 session tickets (one small packet) are ACKed one RTT later,
    just as a server that thinks for one RTT answers: the ACK did not hold
    the answer back, the application did."""
    d = 0.100
    taps = request_response(one_way=d, client_think=0.001, server_think=0.200)
    req_in = next(e for e in taps["server"] if not e.out and e.seg.payload)
    resp_out = taps["server"][-1]
    ticket = seg(S, C, 901, 301, PSH | ACK, 500)
    s_t, c_t = both(req_in.ts + 0.0001, req_in.ts + 0.0001 + d, ticket)
    ack = seg(C, S, 301, 1401, ACK)
    c_a, s_a = both(c_t.ts, resp_out.ts - 0.0005, ack)
    resp = seg(S, C, 1401, 301, PSH | ACK, 3000)       # the response, after the ticket
    s_r, c_r = Event(resp_out.ts, True, resp), Event(resp_out.ts + d, False, resp)
    taps["server"] = sorted([*taps["server"][:-1], s_t, s_a, s_r], key=lambda e: e.ts)
    taps["client"] = sorted([*taps["client"][:-1], c_t, c_a, c_r], key=lambda e: e.ts)
    path = critical_path(taps, OWNER, 0.0, "client", c_r)
    assert path.network_ms == pytest.approx(400.0)                   # two round trips
    assert path.compute_ms["server"] == pytest.approx(200.1, abs=0.2)


def test_a_pure_ack_during_the_servers_think_time_is_not_its_cause():
    """The client's delayed ACK of something else reaches the server while
    its application thinks: the response was waiting for the application,
    so the think time is processing, and the ACK's timer is off the path."""
    taps = request_response(one_way=0.0005, client_think=0.001, server_think=0.200)
    req_in = next(e for e in taps["server"] if not e.out and e.seg.payload)
    stray = seg(C, S, 301, 901, ACK)                                   # a delayed ACK
    c_stray, s_stray = both(req_in.ts + 0.040, req_in.ts + 0.0405, stray)
    taps["client"] = sorted([*taps["client"], c_stray], key=lambda e: e.ts)
    taps["server"] = sorted([*taps["server"], s_stray], key=lambda e: e.ts)
    path = critical_path(taps, OWNER, 0.0, "client", taps["client"][-1])
    assert path.network_ms == pytest.approx(2.0)                     # two round trips of 1 ms
    assert path.compute_ms["server"] == pytest.approx(200.0)


def test_a_gso_packet_matches_its_pieces():
    """A 2896 B packet that left whole may arrive as two 1448 B segments."""
    big = seg(S, C, 1, 1, ACK, 2896)
    out = Event(0.0, True, big)
    second = Event(0.010, False, seg(S, C, 1449, 1, ACK, 1448))
    taps = {"server": [out], "client": [second]}
    path = critical_path(taps, OWNER, 0.0, "client", second)
    assert path.network_ms == pytest.approx(10.0) and path.hops == 1


def test_an_untapped_node_is_part_of_the_network():
    """A resolver asks an authoritative server without a tap: the whole
    exchange (its processing included) counts as network time."""
    q = Event(0.002, True, seg(C, "10.9.9.9", 0, 0, 0, 30, sport=5000, dport=53))
    a = Event(0.030, False, seg("10.9.9.9", C, 0, 0, 0, 40, sport=53, dport=5000))
    path = critical_path({"client": [q, a]}, OWNER, 0.0, "client", a)
    assert path.network_ms == pytest.approx(28.0)
    assert path.compute_ms == pytest.approx({"client": 2.0})
    with pytest.raises(LabError, match="no tap"):
        critical_path({"client": [a]}, OWNER, 0.0, "client", a)


def test_only_data_departures_are_charged_as_processing():
    """The client's pure ACK of the SYN-ACK leaves at once and is no
    processing; its request 4 ms later and the server's answer 2 ms after
    the request are."""
    taps = request_response(one_way=0.025, client_think=0.004, server_think=0.002)
    path = critical_path(taps, OWNER, 0.0, "client", taps["client"][-1])
    assert path.compute_ms["client"] == pytest.approx(4.0)
    assert path.compute_ms["server"] == pytest.approx(2.0, abs=1e-6)


def test_fetch_span_runs_from_the_first_syn_to_the_last_byte_before_closing():
    taps = request_response(one_way=0.025, client_think=0.004, server_think=0.002)
    # The previous batch's goodbye at the start, this batch's FIN at the end
    # and the server's reply to it after: neither belongs to the span.
    old_fin = Event(-0.5, False, seg(S, C, 5, 5, FIN | ACK, dport=39999))
    fin = Event(0.2, True, seg(C, S, 301, 3901, FIN | ACK))
    bye = Event(0.25, False, seg(S, C, 3901, 302, PSH | ACK, 24))
    events = [old_fin, *taps["client"], fin, bye]
    span = fetch_span(events, 443, 3000)
    assert span["span_ms"] == pytest.approx(106.0)
    assert span["connections"] == 1 and span["bytes"] == 3000
    with pytest.raises(LabError, match="only 3000 B"):
        fetch_span(events, 443, 3001)
    with pytest.raises(LabError, match="no SYN"):
        fetch_span([old_fin], 443, 1)
