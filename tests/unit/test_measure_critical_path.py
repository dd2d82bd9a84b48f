"""wirelab.measure.critical_path and tap without root: the walk and a batch's span on
synthetic timelines whose answers are known by construction (among them the ones built
to fool it), and on real captures."""
from __future__ import annotations

from pathlib import Path

import pytest

from wirelab.errors import LabError
from wirelab.measure.critical_path import PathTime, critical_path
from wirelab.measure.packets import Segment, connections, read_pcap_file
from wirelab.measure.tap import Event, fetch_span
from wirelab.measure.tls_records import first_app_data, tls_records

C, S = "10.0.1.2", "10.0.2.2"
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01
OWNER = {C: "client", S: "server"}


def seg(src, dst, seq, ack, flags, n=0, sport=None, dport=None, window=1000):
    """A segment as Linux sends it on a lab link: SYNs offer MSS 1460, window scale 7
    and timestamps; later segments a window of WINDOW << 7 bytes."""
    sport = sport if sport is not None else (40000 if src == C else 443)
    dport = dport if dport is not None else (443 if src == C else 40000)
    if flags & SYN:
        return Segment(0.0, src, sport, dst, dport, seq, ack, flags, b"x" * n, 6, 64240,
                       1460, 7, True)
    return Segment(0.0, src, sport, dst, dport, seq, ack, flags, b"x" * n, 6, window, 0, -1,
                   True)


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
    q = Event(0.002, True, Segment(0.0, C, 5000, "10.9.9.9", 53, 0, 0, 0, b"q" * 30, 17))
    a = Event(0.030, False, Segment(0.0, "10.9.9.9", 53, C, 5000, 0, 0, 0, b"a" * 40, 17))
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


# --- timelines built to fool the walk: it must never find less network time than there
# was, and must name every retransmission ---------------------------------------------

def handshake(d: float, t0: float = 0.0):
    """SYN, SYN-ACK, ACK with one-way delay D from T0; the client is C:40000."""
    c_syn, s_syn = both(t0, t0 + d, seg(C, S, 100, 0, SYN))
    s_sa, c_sa = both(t0 + d, t0 + 2 * d, seg(S, C, 900, 101, SYN | ACK))
    c_ack, s_ack = both(t0 + 2 * d, t0 + 3 * d, seg(C, S, 101, 901, ACK))
    return [c_syn, c_sa, c_ack], [s_syn, s_sa, s_ack]


def taps_of(client, server):
    return {"client": sorted(client, key=lambda e: e.ts),
            "server": sorted(server, key=lambda e: e.ts)}


def test_a_slow_start_round_sent_2_ms_after_its_ack_keeps_its_round_trip():
    """Round 1 (10 full segments) leaves, the client ACKs it, round 2 leaves 2.1 ms
    after the ACK arrives.  In flight before that ACK: 10 segments, so the window may
    well have held round 2 back: the round trip is network time, 2.1 ms processing."""
    d = 0.025
    client, server = handshake(d)
    t = 3 * d                                    # the server sends when the ACK is in
    for k in range(10):
        s_out, c_in = both(t + 1e-5 * k, t + d + 1e-5 * k, seg(S, C, 901 + 1448 * k, 101, ACK, 1448))
        server.append(s_out)
        client.append(c_in)
    c_ack, s_ack = both(t + d + 1e-4, t + 2 * d + 1e-4, seg(C, S, 101, 901 + 14480, ACK))
    r2_out, r2_in = both(s_ack.ts + 0.0021, s_ack.ts + 0.0021 + d,
                         seg(S, C, 901 + 14480, 101, ACK, 1448))
    taps = taps_of(client + [c_ack, r2_in], server + [s_ack, r2_out])
    path = critical_path(taps, OWNER, t, "client", r2_in)
    # Round 1's last segment out, the ACK back (0.01 ms after it), round 2 out; the
    # server's 0.09 ms spent sending round 1 and its 2.1 ms before round 2 are its own.
    assert path.network_ms == pytest.approx(3 * d * 1e3 + 0.01)
    assert path.compute_ms == pytest.approx({"server": 2.19})
    assert path.retransmissions == []


def test_a_nagle_held_write_waits_out_the_delayed_ack_as_network_time():
    """write(100); write(100) with Nagle: the second 100 B leave when the server's
    delayed ACK (40 ms) of the first arrives; then the reply.  4 one-way delays and the
    40 ms timer are network time, whatever the write sizes."""
    d = 0.025
    client, server = handshake(d)
    t = 3 * d
    a_out, a_in = both(t, t + d, seg(C, S, 101, 901, ACK | PSH, 100))
    ack_out, ack_in = both(t + d + 0.040, t + 2 * d + 0.040, seg(S, C, 901, 201, ACK))
    b_out, b_in = both(ack_in.ts + 1e-5, ack_in.ts + 1e-5 + d, seg(C, S, 201, 901, ACK | PSH, 100))
    r_out, r_in = both(b_in.ts + 1e-4, b_in.ts + 1e-4 + d, seg(S, C, 901, 301, ACK | PSH, 100))
    taps = taps_of(client + [a_out, ack_in, b_out, r_in], server + [a_in, ack_out, b_in, r_out])
    path = critical_path(taps, OWNER, t, "client", r_in)
    assert path.network_ms >= (4 * d + 0.040) * 1e3 - 1e-6
    assert path.total_compute_ms == pytest.approx(0.11, abs=0.001)


def test_a_lost_syn_resent_after_a_second_is_network_time_and_named():
    d = 0.025
    lost = Event(0.0, True, seg(C, S, 100, 0, SYN))            # never arrives
    client, server = handshake(d, t0=1.0)
    req_out, req_in = both(1.0 + 2 * d, 1.0 + 3 * d, seg(C, S, 101, 901, ACK | PSH, 200))
    resp_out, resp_in = both(req_in.ts, req_in.ts + d, seg(S, C, 901, 301, ACK | PSH, 1000))
    taps = taps_of([lost, *client, req_out, resp_in], [*server, req_in, resp_out])
    path = critical_path(taps, OWNER, 0.0, "client", resp_in)
    assert path.network_ms >= (1.0 + 4 * d) * 1e3 - 1e-6      # the second and 2 RTTs
    assert len(path.retransmissions) == 1 and "client resent SYN" in path.retransmissions[0]


def test_a_lost_request_resent_after_an_rto_is_network_time_and_named():
    d = 0.025
    client, server = handshake(d)
    lost = Event(2 * d, True, seg(C, S, 101, 901, ACK | PSH, 200))        # dropped
    again_out, again_in = both(2 * d + 0.250, 3 * d + 0.250, seg(C, S, 101, 901, ACK | PSH, 200))
    resp_out, resp_in = both(again_in.ts, again_in.ts + d, seg(S, C, 901, 301, ACK | PSH, 1000))
    taps = taps_of([*client, lost, again_out, resp_in], [*server, again_in, resp_out])
    path = critical_path(taps, OWNER, 0.0, "client", resp_in)
    assert path.network_ms >= (4 * d + 0.250) * 1e3 - 1e-6
    assert path.retransmissions == [f"client resent 200 B to {S}:443 at {again_out.ts:.6f}"]


def test_new_data_sent_on_a_duplicate_ack_in_loss_recovery_keeps_its_round_trip():
    """Seen in the lab under 2% loss: a segment lost, resent at an RTO and lost again;
    the next segment arrives out of order, the client's duplicate ACK (no new
    cumulative ACK, only SACK news) comes back one round trip later and lets the
    server send new data.  The wait for that ACK is network time, not processing."""
    d, rto = 0.025, 0.200
    client, server = handshake(d)
    t = 3 * d
    x1 = seg(S, C, 901, 101, ACK, 1448)
    first = Event(t, True, x1)                                    # lost
    again = Event(t + rto, True, x1)                              # resent, lost again
    x2_out, x2_in = both(t + rto + 0.001, t + rto + 0.001 + d, seg(S, C, 2349, 101, ACK, 1448))
    dup_out, dup_in = both(x2_in.ts + 1e-5, x2_in.ts + 1e-5 + d, seg(C, S, 101, 901, ACK))
    x3_out, x3_in = both(dup_in.ts + 1e-5, dup_in.ts + 1e-5 + d, seg(S, C, 3797, 101, ACK, 1448))
    taps = taps_of([*client, x2_in, dup_out, x3_in], [*server, first, again, x2_out, dup_in, x3_out])
    path = critical_path(taps, OWNER, t, "client", x3_in)
    # Every wait but the server's 1 ms before X2: the RTO, X2 out and in, the
    # duplicate ACK back, X3 out.  (The 0.01 ms between that ACK and X3 is not provably
    # the server's: its window was not provably open and its timers were armed 2 r
    # earlier, long enough for a loss probe.)
    assert path.network_ms >= (rto + 3 * d) * 1e3 - 1e-6
    assert path.compute_ms["server"] == pytest.approx(1.0, abs=1e-3)
    assert len(path.retransmissions) == 1


def test_a_window_full_of_small_packets_holds_the_next_one_round_trip():
    """Seen in the lab (HTTP/2): the congestion window counts packets, not bytes.  Four
    small TLS records and three 2-segment GSO packets fill an initial window of 10 with
    under 10 KB; the next packet leaves when the first ACK comes back, a round trip
    later.  That round trip is network time."""
    d = 0.025
    client, server = handshake(d)
    t, seq, outs, ins = 3 * d, 901, [], []
    for k, n in enumerate([271, 271, 62, 31, 2896, 2896, 2896]):
        o, i = both(t + 1e-4 * k, t + d + 1e-4 * k, seg(S, C, seq, 101, ACK | PSH, n))
        outs.append(o)
        ins.append(i)
        seq += n
    ack_out, ack_in = both(ins[0].ts + 1e-5, ins[0].ts + 1e-5 + d, seg(C, S, 101, 901 + 271, ACK))
    nxt_out, nxt_in = both(ack_in.ts + 1e-5, ack_in.ts + 1e-5 + d, seg(S, C, seq, 101, ACK, 2896))
    taps = taps_of([*client, *ins, ack_out, nxt_in], [*server, *outs, ack_in, nxt_out])
    path = critical_path(taps, OWNER, t, "client", nxt_in, nodelay={"server"})
    assert path.network_ms >= 3 * d * 1e3 - 1e-6
    assert path.total_compute_ms == pytest.approx(0.01, abs=1e-4)


def test_new_data_sent_by_a_loss_probe_is_network_time():
    """Seen in the lab under 2% loss: after a retransmission the server's window is
    two packets; both leave, nothing comes back (lost), and 114 ms later the loss-probe
    timer sends the next, new data.  Nothing arrived to explain it, but it was a timer,
    not the server: network time."""
    d = 0.025
    client, server = handshake(d)
    t = 3 * d
    early = Event(t - 0.001, True, seg(S, C, 901, 101, ACK, 1448))      # resent below
    x1_out, x1_in = both(t, t + d, seg(S, C, 901, 101, ACK, 1448))
    x2 = Event(t + 1e-5, True, seg(S, C, 2349, 101, ACK, 1448))         # lost
    probe_out, probe_in = both(t + 0.114, t + 0.114 + d, seg(S, C, 3797, 101, ACK, 1448))
    taps = taps_of([*client, x1_in, probe_in], [*server, early, x1_out, x2, probe_out])
    path = critical_path(taps, OWNER, t, "client", probe_in)
    # All but the 10 us between the two packets of the window.
    assert path.network_ms >= (0.114 - 1e-5 + d) * 1e3 - 1e-6
    assert path.total_compute_ms == pytest.approx(0.01)


def test_a_resent_dns_query_is_named():
    query = Segment(0.0, C, 5000, "10.0.3.2", 53, 0, 0, 0, b"q" * 30, 17)
    answer = Segment(0.0, "10.0.3.2", 53, C, 5000, 0, 0, 0, b"a" * 40, 17)
    first, again = Event(0.0, True, query), Event(5.0, True, query)
    reply = Event(5.010, False, answer)
    path = critical_path({"client": [first, again, reply]}, OWNER, 0.0, "client", reply)
    assert path.network_ms == pytest.approx(5010.0)
    assert path.retransmissions == [f"client resent datagram to 10.0.3.2:53 at {5.0:.6f}"]


# --- a real capture ---------------------------------------------------------------

DATA = Path(__file__).parent / "data" / "tls_handshake_rtts"


def _events(pcap: Path, me: str) -> list[Event]:
    return [Event(s.ts, s.src == me, s) for s in read_pcap_file(pcap)]


@pytest.mark.parametrize("mode, trips", [("tls12_full", 2), ("tls13_full", 1)])
def test_real_captures_of_a_tls_handshake_at_50_ms(mode, trips):
    """Two captures of one TLS connection at r = 50 ms (h1 10.0.1.2, h2 10.0.2.2, taken
    by the tls_handshake_rtts experiment in UML): from the SYN to the first application
    byte at the server is (1 + TLS round trips) RTTs of network time, the rest the
    ends' processing, and nothing was resent."""
    client, server = _events(DATA / f"{mode}_h1.pcap", C), _events(DATA / f"{mode}_h2.pcap", S)
    conn = connections([e.seg for e in server], 4433)[-1]
    app = first_app_data(tls_records(conn.stream(True)), 200)
    end = next(e for e in server if not e.out and e.seg.payload and e.ts == app.ts)
    start = next(e.ts for e in client if e.out and e.seg.syn and e.seg.sport == conn.client[1])
    path = critical_path({"client": client, "server": server}, OWNER, start, "server", end)
    assert path.retransmissions == []
    # One-way delay 25 ms: SYN, SYN-ACK, each TLS round trip, then the data's way; the
    # routers' own forwarding in UML adds a fraction of a millisecond per packet.
    floor = (1.5 + trips) * 50
    assert floor <= path.network_ms <= floor + 0.3 * path.hops
    assert path.network_ms + path.total_compute_ms == pytest.approx(path.span_ms)


def test_capture_clocks_near_1e9_seconds_change_nothing():
    """Taps stamp packets with the wall clock (~1.8e9 s), where a nanosecond is below a
    float's resolution: the walk must order events by their place, not by adding to
    their times.  The same Nagle timeline, shifted, gives the same split."""
    d, t = 0.025, 0.075
    client, server = handshake(d)
    a_out, a_in = both(t, t + d, seg(C, S, 101, 901, ACK | PSH, 100))
    ack_out, ack_in = both(t + d + 0.040, t + 2 * d + 0.040, seg(S, C, 901, 201, ACK))
    b_out, b_in = both(ack_in.ts + 1e-5, ack_in.ts + 1e-5 + d, seg(C, S, 201, 901, ACK | PSH, 100))
    r_out, r_in = both(b_in.ts + 1e-4, b_in.ts + 1e-4 + d, seg(S, C, 901, 301, ACK | PSH, 100))
    base = taps_of(client + [a_out, ack_in, b_out, r_in], server + [a_in, ack_out, b_in, r_out])
    shift = 1_795_687_937.0
    moved = {n: [Event(e.ts + shift, e.out, e.seg) for e in ev] for n, ev in base.items()}
    one = critical_path(base, OWNER, t, "client", base["client"][-1])
    two = critical_path(moved, OWNER, t + shift, "client", moved["client"][-1])
    assert two.network_ms == pytest.approx(one.network_ms, abs=1e-3)
    assert two.network_ms >= (4 * d + 0.040) * 1e3 - 1e-3


def test_processing_over_budget_excludes_the_trial_with_the_numbers():
    from wirelab.measure.critical_path import over_budget
    from wirelab.spec.context import exclusion
    assert over_budget({"server": 2.8, "client": 17.0}, {"server": 10.0, "client": 70.0}, "c2") == ""
    why = over_budget({"server": 15.5, "client": 17.0}, {"server": 10.0, "client": 70.0}, "c2")
    assert why == "c2: server processed for 15.5 ms on the path, over its budget of 10 ms"
    assert over_budget({"h9": 0.1}, {}, "x").startswith("x: h9 processed for 0.1 ms")   # no budget: 0
    assert exclusion("", "") == {}
    assert exclusion("resent: 1 segment", why) == {"excluded": "resent: 1 segment; " + why}


def test_a_path_describes_itself_in_one_line_for_raw():
    path = PathTime(span_ms=106.0, network_ms=100.0, compute_ms={"h1": 4.0, "h2": 2.0}, hops=5)
    assert path.describe() == "span 106.000 ms: network 100.000, processing h1 4.000, h2 2.000\n"
