"""tls_handshake_rtts: predictions, the RTT-count band, and the capture analysis
(pure-Python pcap reader, TLS records, compute removal) on captures taken once in the lab
(tests/unit/data/tls_handshake_rtts/, r = 50 ms, lab addresses and throw-away keys only)
and on synthetic bytes.  The round-trip table itself is tested in test_models_tls.py."""
from __future__ import annotations

import dataclasses
import shutil
import struct
from pathlib import Path

import pytest

from support import kernel_facts
from wirelab.errors import LabError
from wirelab.measure.packets import (
    TCP_ACK,
    TCP_PSH,
    TCP_SYN,
    Connection,
    PcapError,
    Segment,
    connections,
    decode_frame,
    read_pcap,
    read_pcap_file,
)
from wirelab.measure.tls_records import (
    APPLICATION_DATA,
    CHANGE_CIPHER_SPEC,
    HANDSHAKE,
    first_app_data,
    tls_records,
)
from wirelab.measure.tls_timing import IncompleteCapture, measure, new_connection
from wirelab.models.tls import handshake_round_trips
from wirelab.peers.openssl import ClientReport, parse_s_client, redact, s_client_argv, s_server_argv
from wirelab.run import catalog
from wirelab.spec import Tolerance

DATA = Path(__file__).parent / "data" / "tls_handshake_rtts"
KERNEL = kernel_facts(release="6.1.0")
R = 50.0  # the captures' rtt_ms
CLIENT, SERVER = "10.0.1.2", "10.0.2.2"


@pytest.fixture(scope="module")
def exp():
    return catalog.load("tls_handshake_rtts")


# --- prediction and tolerance -------------------------------------------------

@pytest.mark.parametrize("mode, n", [("tls12_full", 2), ("tls12_resumed", 1), ("tls13_full", 1),
                                     ("tls13_psk", 1), ("tls13_0rtt", 0)])
@pytest.mark.parametrize("r", [1.0, 10.0, 50.0, 100.0])
def test_round_trips_per_mode(exp, mode, n, r):
    pred = exp.predict({"rtt_ms": r, "mode": mode}, KERNEL)
    assert set(pred) == {m.name for m in exp.metrics}
    assert pred["handshake_rtts"] == n
    assert pred["handshake_ms"] == pytest.approx(n * r)
    m = exp.MODES[mode]
    assert handshake_round_trips(m.version, m.resume, m.early_data) == n


def test_modes_are_the_handshakes_they_are_named_after(exp):
    assert {name: (m.version, m.resume, m.early_data) for name, m in exp.MODES.items()} == {
        "tls12_full": ("1.2", False, False), "tls12_resumed": ("1.2", True, False),
        "tls13_full": ("1.3", False, False), "tls13_psk": ("1.3", True, False),
        "tls13_0rtt": ("1.3", True, True)}
    # 0-RTT and PSK resumption each need the ticket of the connection before.
    assert {n for n, m in exp.MODES.items() if m.fresh_ticket} == {"tls13_psk", "tls13_0rtt"}


def test_the_grid_is_every_mode_at_three_rtts(exp):
    grid = exp.grid({})
    assert len(grid) == 15 and {p["rtt_ms"] for p in grid} == {10.0, 50.0, 100.0}
    quick = exp.grid({}, quick=True)
    assert {p["mode"] for p in quick} == set(exp.MODES) and {p["rtt_ms"] for p in quick} == {50.0}


def test_the_bands_are_the_rtt_count_criterion(exp):
    assert exp.metric("handshake_rtts").band == Tolerance(abs=0.0, rel=0.10, min_abs=0.1,
                                                          resolution=0.01)
    assert exp.metric("handshake_ms").band == Tolerance(abs=0.0, rel=0.10, min_rtt_frac=0.10)


@pytest.mark.parametrize("n, hi", [(0, 0.1), (1, 1.1), (2, 2.2)])
def test_an_rtt_count_is_exact_up_to_a_tenth_late_never_early(exp, n, hi):
    tol = exp.metric("handshake_rtts").tolerance
    params = {"rtt_ms": 50.0}
    assert tol.bounds(float(n), params) == pytest.approx((n, hi))
    assert tol.check([hi - 1e-9], float(n), params)[0]
    assert not tol.check([hi + 1e-6], float(n), params)[0]
    assert not tol.check([n - 1e-3], float(n), params)[0]
    assert tol.impossible(n - 0.02, float(n), params)       # fewer round trips than physics
    # One round trip too many or too few never passes.
    assert not tol.check([n + 1.0], float(n), params)[0]


@pytest.mark.parametrize("r", [10.0, 50.0, 100.0])
def test_the_ms_band_is_the_same_criterion_scaled_by_r(exp, r):
    tol = exp.metric("handshake_ms").tolerance
    assert tol.bounds(2 * r, {"rtt_ms": r}) == pytest.approx((2 * r, 2.2 * r))
    assert tol.bounds(r, {"rtt_ms": r}) == pytest.approx((r, 1.1 * r))
    assert tol.bounds(0.0, {"rtt_ms": r}) == pytest.approx((0.0, 0.1 * r))
    assert not tol.check([2 * r + r], 2 * r, {"rtt_ms": r})[0]
    text = tol.describe()
    assert "10%" in text and "0.1 x rtt_ms" in text and "never below" in text


# --- the stored captures ------------------------------------------------------

def pair(mode: str):
    h1 = connections(read_pcap_file(DATA / f"{mode}_h1.pcap"), 4433)
    h2 = connections(read_pcap_file(DATA / f"{mode}_h2.pcap"), 4433)
    assert [c.key for c in h1] == [c.key for c in h2]
    return list(zip(h1, h2, strict=True))


@pytest.mark.parametrize("mode", ["tls12_full", "tls12_resumed", "tls13_full", "tls13_0rtt"])
def test_stored_captures_hold_the_warmup_and_three_trials(mode):
    conns = pair(mode)
    assert len(conns) == 4
    for cli, srv in conns:
        assert cli.client[0] == "10.0.1.2" and srv.server == ("10.0.2.2", 4433)
    # The server sees a SYN half an RTT after the client sent it; the
    # warm-up's SYN waited another half RTT at the router for ARP (its
    # request leaves through r1's delayed egress too): why there is a warm-up.
    delays = [(srv.syn_time() - cli.syn_time()) * 1e3 for cli, srv in conns]
    assert delays[0] == pytest.approx(R, abs=3)
    assert delays[1:] == pytest.approx([R / 2] * 3, abs=0.5)


def test_tls13_records_include_encrypted_handshake_as_type_23():
    _, srv = pair("tls13_full")[2]
    recs = [(r.content_type, r.length) for r in tls_records(srv.stream())]
    # ClientHello, CCS (middlebox compatibility), Finished (type 23, 69 bytes
    # with SHA-384), then the 200-byte line (+1 inner type +16 tag), close_notify.
    assert recs[:4] == [(HANDSHAKE, 220), (CHANGE_CIPHER_SPEC, 1), (APPLICATION_DATA, 69),
                        (APPLICATION_DATA, 217)]
    app = first_app_data(tls_records(srv.stream()), 200)
    assert app.length == 217 and app.offset == 225 + 6 + 74


def test_zero_rtt_data_rides_in_the_clienthello_segment():
    _, srv = pair("tls13_0rtt")[2]
    recs = tls_records(srv.stream())
    app = first_app_data(recs, 200)
    assert recs[0].content_type == HANDSHAKE and app.ts == recs[0].ts
    assert app.length == 217  # the same 200 bytes + inner type + tag


@pytest.mark.parametrize("mode, n", [("tls12_full", 2), ("tls12_resumed", 1),
                                     ("tls13_full", 1), ("tls13_0rtt", 0)])
def test_network_round_trips_after_compute_is_removed(mode, n):
    for cli, srv in pair(mode)[1:]:
        t = measure(cli, srv, 200)
        assert t.rtts(R) == pytest.approx(n, abs=0.02)
        # The raw interval holds that plus milliseconds of endpoint compute.
        assert t.interval_ms == pytest.approx(t.network_ms + t.compute_ms)
        assert t.client_compute_s > 0.004
        assert t.from_syn_ms == pytest.approx(t.interval_ms + R, abs=0.6)


def test_known_numbers_of_one_tls13_connection():
    cli, srv = pair("tls13_full")[2]
    t = measure(cli, srv, 200)
    # On the client's interface: its ACK out to its application data out.
    assert t.interval_ms == pytest.approx(66.799, abs=0.002)
    # Two gaps at the client: ClientHello after its ACK, Finished and data after the
    # server's flight arrived.
    assert t.client_compute_s * 1e3 == pytest.approx(15.071, abs=0.002)
    # The server's flight 1.507 ms after the ClientHello; its session ticket,
    # sent while the client's data was already on the way, is not on the path.
    assert t.server_compute_s * 1e3 == pytest.approx(1.507, abs=0.002)
    assert t.network_ms == pytest.approx(50.221, abs=0.002)
    assert t.retransmissions == ()


def _shifted(segs, at: float, by: float):
    return [dataclasses.replace(s, ts=s.ts + by) if s.ts >= at else s for s in segs]


def test_a_clienthello_lost_and_resent_is_network_time_and_named():
    # The stored TLS 1.3 connection as if the router had dropped the ClientHello and
    # the client resent it 200 ms later: everything from the resend on is 200 ms later.
    cli, srv = pair("tls13_full")[2]
    hello = next(s for s in cli.segments if cli.from_client(s) and s.payload)
    arrived = next(s for s in srv.segments if srv.from_client(s) and s.payload)
    lost = 0.2
    cli2 = Connection(cli.client, cli.server, cli.isn,
                      sorted([*_shifted(cli.segments, hello.ts, lost), hello], key=lambda s: s.ts))
    srv2 = Connection(srv.client, srv.server, srv.isn, _shifted(srv.segments, arrived.ts, lost))
    t = measure(cli2, srv2, 200)
    assert t.network_ms >= 50.221 + 1e3 * lost - 0.002        # the timeout is network time
    # After a retransmission the window is unknown: a gap longer than a loss probe's
    # shortest timer is no longer provably processing.
    assert t.compute_ms <= 15.071 + 1.507 + 0.002
    assert len(t.retransmissions) == 1 and "client resent 225 B" in t.retransmissions[0]


def test_new_connection_finds_the_one_unseen_connection_in_growing_captures(tmp_path):
    for side in ("h1", "h2"):
        shutil.copyfile(DATA / f"tls13_full_{side}.pcap", tmp_path / f"{side}.pcap")
    keys = [cli.key for cli, _ in pair("tls13_full")]
    seen = set(keys[:3])
    conn, timing = new_connection(tmp_path / "h1.pcap", tmp_path / "h2.pcap", 4433, seen, 200)
    assert conn.key == keys[3] and seen == set(keys)
    cli, srv = pair("tls13_full")[3]
    assert timing == measure(cli, srv, 200)
    assert timing.rtts(R) == pytest.approx(1, abs=0.02)
    # Nothing new left: it waits for one, and gives up at its deadline.
    with pytest.raises(TimeoutError):
        new_connection(tmp_path / "h1.pcap", tmp_path / "h2.pcap", 4433, seen, 200,
                       timeout_s=0.05)
    # More than one new connection: not the one trial it should be.
    with pytest.raises(LabError, match="4 new connections"):
        new_connection(tmp_path / "h1.pcap", tmp_path / "h2.pcap", 4433, set(), 200)


def test_measure_refuses_mismatched_or_incomplete_pairs():
    (c1, s1), (c2, s2) = pair("tls13_full")[:2]
    with pytest.raises(ValueError):
        measure(c1, s2, 200)
    with pytest.raises(IncompleteCapture):
        measure(c1, s1, 10_000)   # no record that long
    cut = Connection(s1.client, s1.server, s1.isn, s1.segments[:4])
    with pytest.raises(IncompleteCapture):
        measure(c1, cut, 200)


# --- the pcap reader on synthetic bytes ------------------------------------------

def pcap_bytes(frames: list[tuple[float, bytes]], *, order="<", nano=False, linktype=1) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)
    for ts, frame in frames:
        frac = round((ts % 1) * (1e9 if nano else 1e6))
        out += struct.pack(order + "IIII", int(ts), frac, len(frame), len(frame)) + frame
    return out


def tcp_frame(src, sport, dst, dport, seq, ack, flags, payload=b"", *, proto=6, sll=False) -> bytes:
    tcp = struct.pack("!HHIIHHHH", sport, dport, seq, ack, (5 << 12) | flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, proto, 0,
                     bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    head = (b"\x00" * 14 + b"\x08\x00") if sll else (b"\x02" * 12 + b"\x08\x00")
    return head + ip + tcp


def rec(ctype: int, body: bytes) -> bytes:
    return bytes([ctype, 3, 3]) + struct.pack("!H", len(body)) + body


@pytest.mark.parametrize("order, nano", [("<", False), (">", False), ("<", True), (">", True)])
def test_reader_handles_both_byte_orders_and_precisions(order, nano):
    data = pcap_bytes([(1.25, tcp_frame(CLIENT, 40000, SERVER, 4433, 7, 0, TCP_SYN))],
                      order=order, nano=nano)
    (seg,) = read_pcap(data)
    assert seg.ts == pytest.approx(1.25) and seg.syn and seg.seq == 7
    assert (seg.src, seg.sport, seg.dst, seg.dport) == (CLIENT, 40000, SERVER, 4433)


def test_reader_skips_other_packets_and_a_truncated_tail():
    icmp = tcp_frame(CLIENT, 1, SERVER, 2, 0, 0, 0, proto=1)
    data = pcap_bytes([(1.0, icmp), (2.0, tcp_frame(CLIENT, 1, SERVER, 2, 0, 0, TCP_ACK, b"x"))])
    assert [s.payload for s in read_pcap(data)] == [b"x"]
    assert len(read_pcap(data[:-3])) == 0          # tcpdump still writing the last one
    assert read_pcap(b"") == [] and read_pcap(data[:10]) == []


def test_reader_keeps_udp_datagrams_whole_and_out_of_connections():
    udp = struct.pack("!HHHH", 5353, 53, 8 + 3, 0) + b"dns"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     bytes(map(int, CLIENT.split("."))), bytes(map(int, SERVER.split("."))))
    (seg,) = read_pcap(pcap_bytes([(1.0, b"\x02" * 12 + b"\x08\x00" + ip + udp)]))
    assert (seg.proto, seg.sport, seg.dport, seg.payload) == (17, 5353, 53, b"dns")
    assert connections([seg], 53) == []


def test_reader_reads_linux_cooked_captures():
    data = pcap_bytes([(3.0, tcp_frame(CLIENT, 5, SERVER, 6, 1, 2, TCP_ACK, b"ab", sll=True))],
                      linktype=113)
    assert read_pcap(data)[0].payload == b"ab"


def test_decode_frame_keeps_tcp_and_udp_over_ipv4_only():
    seg = decode_frame(tcp_frame(CLIENT, 5, SERVER, 6, 1, 2, TCP_ACK, b"ab"), 1, 2.5)
    assert (seg.ts, seg.src, seg.dport, seg.payload) == (2.5, CLIENT, 6, b"ab")
    assert decode_frame(tcp_frame(CLIENT, 5, SERVER, 6, 1, 2, TCP_ACK, b"ab", sll=True),
                        113, 1.0).payload == b"ab"
    assert decode_frame(tcp_frame(CLIENT, 1, SERVER, 2, 0, 0, 0, proto=1), 1, 1.0) is None
    # ICMP only when asked (a tap that waits for an unreachable): type and code as ports
    icmp = decode_frame(tcp_frame(CLIENT, 1, SERVER, 2, 0, 0, 0, proto=1), 1, 1.0, icmp=True)
    assert (icmp.proto, icmp.sport, icmp.dport) == (1, 0, 1)
    arp = b"\x02" * 12 + b"\x08\x06" + b"\x00" * 28
    assert decode_frame(arp, 1, 1.0) is None and decode_frame(b"\x02" * 10, 1, 1.0) is None


def test_reader_refuses_what_it_cannot_read():
    with pytest.raises(PcapError, match="magic"):
        read_pcap(b"\x0a\x0d\x0d\x0a" + b"\x00" * 40)  # pcapng
    with pytest.raises(PcapError, match="link type 228"):
        read_pcap(pcap_bytes([], linktype=228))


def conn_from(events) -> Connection:
    """A connection from (ts, from_client, seq, flags, payload) events."""
    segs = []
    for ts, fc, seq, flags, payload in events:
        a, b = ((CLIENT, 40000), (SERVER, 4433)) if fc else ((SERVER, 4433), (CLIENT, 40000))
        segs.append(Segment(ts, a[0], a[1], b[0], b[1], seq, 0, flags, payload))
    return connections(segs, 4433)[0]


def test_streams_reassemble_out_of_order_and_ignore_retransmissions():
    ch = rec(HANDSHAKE, b"h" * 10)
    app = rec(APPLICATION_DATA, b"d" * 300)
    c = conn_from([(0.0, True, 99, TCP_SYN, b""), (0.1, False, 499, TCP_SYN | TCP_ACK, b""),
                   (0.2, True, 100, TCP_ACK, b""),
                   (0.3, True, 100 + len(ch), TCP_ACK | TCP_PSH, app),   # arrives first
                   (0.4, True, 100, TCP_ACK | TCP_PSH, ch),
                   (0.5, True, 100, TCP_ACK | TCP_PSH, ch)])             # retransmitted
    st = c.stream()
    assert bytes(st.data) == ch + app
    recs = tls_records(st)
    assert [(r.content_type, r.ts) for r in recs] == [(HANDSHAKE, 0.4), (APPLICATION_DATA, 0.3)]
    assert c.handshake_ack_time() == 0.2 and c.server_isn() == 499
    with pytest.raises(IndexError):
        st.time_of(len(st.data))


def test_records_stop_at_an_incomplete_one_and_refuse_non_tls():
    c = conn_from([(0.0, True, 0, TCP_SYN, b""),
                   (0.1, True, 1, TCP_ACK, rec(HANDSHAKE, b"x" * 5) + rec(APPLICATION_DATA, b"y" * 50)[:20])])
    assert [r.content_type for r in tls_records(c.stream())] == [HANDSHAKE]
    bad = conn_from([(0.0, True, 0, TCP_SYN, b""), (0.1, True, 1, TCP_ACK, b"GET / HTTP/1.1\r\n")])
    with pytest.raises(PcapError, match="no TLS record"):
        tls_records(bad.stream())


def test_first_app_data_skips_short_type_23_records():
    c = conn_from([(0.0, True, 0, TCP_SYN, b""),
                   (0.1, True, 1, TCP_ACK, rec(APPLICATION_DATA, b"f" * 69)),
                   (0.2, True, 75, TCP_ACK, rec(APPLICATION_DATA, b"a" * 217))])
    app = first_app_data(tls_records(c.stream()), 200)
    assert app.ts == 0.2 and app.length == 217
    assert first_app_data(tls_records(c.stream()), 300) is None


# --- s_client and s_server --------------------------------------------------------

def test_s_client_reports_are_parsed():
    text = (DATA / "tls13_0rtt_s_client.txt").read_text()
    first, second = text.split("### connection ")[1:3]
    assert parse_s_client(first) == ClientReport("TLSv1.3", "TLS_AES_256_GCM_SHA384", False,
                                                 "not sent", True)
    assert parse_s_client(second) == ClientReport("TLSv1.3", "TLS_AES_256_GCM_SHA384", True,
                                                  "accepted", True)
    r12 = parse_s_client((DATA / "tls12_resumed_s_client.txt").read_text().split("### connection ")[2])
    assert r12.protocol == "TLSv1.2" and r12.reused and r12.early_data is None
    assert parse_s_client("") == ClientReport(None, None, None, None, False)


def test_redact_removes_key_material():
    text = ("    Session-ID: ABCD\n    Master-Key: 00112233\n    Resumption PSK: 99\n"
            "    TLS session ticket:\n    0000 - 6a 3f 1c  ..\n    0010 - 11 22  ..\n"
            "-----BEGIN SSL SESSION PARAMETERS-----\nMIIB\n-----END SSL SESSION PARAMETERS-----\n"
            "Verify return code: 0 (ok)\n")
    out = redact(text)
    for secret in ("ABCD", "00112233", "99", "6a 3f", "MIIB"):
        assert secret not in out
    assert "Master-Key: <removed>" in out and "Verify return code: 0 (ok)" in out
    stored = "".join(p.read_text() for p in DATA.glob("*_s_client.txt"))
    assert "Master-Key: <removed>" in stored and "BEGIN" not in stored


def test_tool_argument_lists():
    srv12 = s_server_argv(4433, "1.2", Path("c.pem"), Path("k.pem"), no_cache=True)
    assert "-tls1_2" in srv12 and "-no_cache" in srv12 and "-early_data" not in srv12
    srv13 = s_server_argv(4433, "1.3", Path("c.pem"), Path("k.pem"), early_data=True)
    assert srv13[srv13.index("-max_early_data") + 1] == "16384" and "-early_data" in srv13
    cl = s_client_argv("10.0.2.2", 4433, "1.3", Path("ca.pem"), sess_in=Path("s"),
                       early_data=Path("p"))
    assert cl[cl.index("-CAfile") + 1] == "ca.pem" and "-verify_return_error" in cl
    assert cl[cl.index("-verify_ip") + 1] == "10.0.2.2" and "-sess_out" not in cl
    assert all(isinstance(a, str) for a in srv12 + srv13 + cl)


@pytest.mark.parametrize("mode, report, resumed, fragment", [
    ("tls13_0rtt", ClientReport("TLSv1.3", "x", True, "rejected", True), True, "early data rejected"),
    ("tls13_psk", ClientReport("TLSv1.3", "x", False, "not sent", True), True, "expected reused"),
    ("tls12_full", ClientReport("TLSv1.3", "x", False, None, True), False, "expected TLSv1.2"),
    ("tls13_full", ClientReport("TLSv1.3", "x", False, "not sent", False), False, "not verified"),
])
def test_a_trial_that_did_not_do_its_mode_is_refused(exp, mode, report, resumed, fragment):
    with pytest.raises(LabError, match=fragment):
        exp.check_report(mode, report, resumed)


def test_a_trial_that_did_its_mode_passes(exp):
    exp.check_report("tls13_0rtt", ClientReport("TLSv1.3", "x", True, "accepted", True), True)
    exp.check_report("tls12_resumed", ClientReport("TLSv1.2", "x", True, None, True), True)
