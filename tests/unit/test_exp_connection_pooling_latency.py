"""connection_pooling_latency: predictions, the ±(1 ms + 5%) band, and the HTTPS
client and CPU helpers it uses (no root, no lab: fakes stand in for lab nodes).  The TLS
round trips are tested in test_models_tls.py."""
from __future__ import annotations

import os
import ssl
import subprocess

import pytest

from support import kernel_facts
from wirelab.errors import LabError
from wirelab.measure.cpu import child_of, cpu_ns
from wirelab.models.tls import handshake_round_trips
from wirelab.peers.https_client import LabHTTPSConnection, client_context, get
from wirelab.run import catalog

KERNEL = kernel_facts(release="6.1.0")


@pytest.fixture(scope="module")
def exp():
    return catalog.load("pooling")


@pytest.mark.parametrize("tls, t", [("1.2", 2), ("1.3", 1)])
@pytest.mark.parametrize("r", [0.0, 1.0, 50.0, 100.0, 200.0])
def test_new_connection_costs_two_plus_tls_round_trips(exp, tls, t, r):
    pred = exp.predict({"rtt_ms": r, "tls": tls}, KERNEL)
    assert set(pred) == {m.name for m in exp.metrics if m.judged}
    assert pred["new_conn_ms"] == pytest.approx((2 + t) * r)
    assert pred["keepalive_ms"] == pytest.approx(r)
    assert pred["pool4_ms"] == pytest.approx(r)


def test_network_time_is_the_critical_path_from_the_syn_to_the_last_response_byte(exp):
    """A new connection seen by taps at both hosts, 10 ms each way: 40 ms in flight, the
    server 0.1 ms on its SYN-ACK and 0.5 ms on the response, the client 0.4 ms on its
    request; what comes after the client's FIN is not the response."""
    from wirelab.measure.packets import Segment
    from wirelab.measure.tap import Event
    c, sv = ("10.0.0.1", 40000), ("10.0.1.2", exp.module.PORT)

    def seg(ts, frm, flags, seq, ack, n=0):
        (src, sport), (dst, dport) = (c, sv) if frm == "c" else (sv, c)
        return Segment(ts, src, sport, dst, dport, seq, ack, flags, b"x" * n)
    syn, synack = seg(0.0, "c", 0x02, 100, 0), seg(0.0101, "s", 0x12, 500, 101)
    req, resp = seg(0.0205, "c", 0x18, 101, 501, 200), seg(0.0310, "s", 0x18, 501, 301, 300)
    fin, bye = seg(0.0415, "c", 0x11, 301, 801), seg(0.0520, "s", 0x18, 801, 302, 50)
    h1 = [Event(0.0, True, syn), Event(0.0201, False, synack), Event(0.0205, True, req),
          Event(0.0410, False, resp), Event(0.0415, True, fin), Event(0.0620, False, bye)]
    h2 = [Event(0.0100, False, syn), Event(0.0101, True, synack), Event(0.0305, False, req),
          Event(0.0310, True, resp), Event(0.0515, False, fin), Event(0.0520, True, bye)]
    network, compute = exp.module.split({"h1": h1, "h2": h2}, {c[0]: "h1", sv[0]: "h2"})
    assert network == pytest.approx(40.0) and compute == pytest.approx(1.0)


def test_a_request_on_an_open_connection_is_split_on_its_own_connection(exp):
    """Pooled connections at once, 10 ms each way: each request's network time is its own
    (the others' packets, interleaved, belong to the others).  The server's 0.5 ms and
    1.5 ms of processing are not in it; 3 ms is, because the taps saw no handshake of the
    open connection (no window provably open) and a TCP timer could have sent the answer
    that late (2 ms and more: critical_path's rule errs towards network time)."""
    from wirelab.measure.packets import Segment
    from wirelab.measure.tap import Event
    sv, port = "10.0.1.2", exp.module.PORT

    def pair(sport, t, server_s):
        req = Segment(t, "10.0.0.1", sport, sv, port, 1000, 2000, 0x18, b"q" * 80)
        resp = Segment(t + 0.010 + server_s, sv, port, "10.0.0.1", sport, 2000, 1080, 0x18, b"r" * 300)
        return ([Event(t, True, req), Event(t + 0.020 + server_s, False, resp)],
                [Event(t + 0.010, False, req), Event(t + 0.010 + server_s, True, resp)])
    a1, a2 = pair(40001, 0.0, 0.0005)
    b1, b2 = pair(40002, 0.0002, 0.0015)
    c1, c2 = pair(40003, 0.0003, 0.003)
    events = {"h1": sorted(a1 + b1 + c1, key=lambda e: e.ts),
              "h2": sorted(a2 + b2 + c2, key=lambda e: e.ts)}
    owner = {"10.0.0.1": "h1", sv: "h2"}
    assert exp.module.exchange(events, owner, 40001) == pytest.approx(20.0)
    assert exp.module.exchange(events, owner, 40002) == pytest.approx(20.0)
    assert exp.module.exchange(events, owner, 40003) == pytest.approx(23.0)


def test_the_numbers_the_claim_gives(exp):
    p = exp.predict
    assert p({"rtt_ms": 50, "tls": "1.3"}, KERNEL)["new_conn_ms"] == 150
    assert p({"rtt_ms": 50, "tls": "1.2"}, KERNEL)["new_conn_ms"] == 200
    assert p({"rtt_ms": 100, "tls": "1.2"}, KERNEL)["new_conn_ms"] == 400


def test_handshake_overhead_is_the_texts_100_to_300_ms_only_at_50_to_100_ms(exp):
    def overhead(r, tls):
        return (1 + handshake_round_trips(tls)) * r
    assert overhead(50, "1.3") == 100 and overhead(100, "1.2") == 300
    assert {overhead(r, v) for r in (50, 100) for v in ("1.2", "1.3")} <= set(range(100, 301))
    assert overhead(1, "1.2") == 3 and overhead(200, "1.3") == 400


def test_grid_sizes(exp):
    assert len(exp.grid({})) == 6
    assert [(p["rtt_ms"], p["tls"]) for p in exp.grid({}, quick=True)] == [(50.0, "1.2"), (50.0, "1.3")]
    assert exp.repeats(None, quick=False) == 100 and exp.repeats(None, quick=True) == 20


@pytest.mark.parametrize("metric", ["new_conn_ms", "keepalive_ms", "pool4_ms"])
@pytest.mark.parametrize("pred", [1.0, 50.0, 150.0, 400.0])
def test_band_is_one_ms_plus_five_percent_never_early(exp, metric, pred):
    tol = exp.metric(metric).tolerance
    m = 1.0 + 0.05 * pred
    assert tol.bounds(pred) == pytest.approx((pred, pred + m))
    assert tol.check([pred + m * (1 - 1e-9)], pred)[0]
    assert not tol.check([pred + m + 1e-6], pred)[0]
    assert not tol.check([pred - 1e-3], pred)[0]            # nothing beats its round trips
    assert tol.impossible(pred - 0.1, pred)


def test_one_extra_round_trip_fails_at_50_ms(exp):
    tol = exp.metric("new_conn_ms").tolerance
    assert not tol.check([200.0], 150.0)[0]   # TLS 1.2's count against TLS 1.3's prediction
    assert not tol.check([100.0], 50.0)[0]    # a request that waited a second RTT


@pytest.mark.parametrize("spans, n", [
    ([(0, 1), (0.1, 1.1), (0.2, 1.2), (0.3, 1.3)], 4),
    ([(0, 1), (1.5, 2), (2.5, 3), (3.5, 4)], 1),
    ([(0, 2), (1, 3), (2.5, 4), (3.5, 5)], 2),
])
def test_in_flight(exp, spans, n):
    assert exp.in_flight(spans) == n


def test_client_context_verifies_and_pins_the_version(exp, tmp_path):
    ca = tmp_path / "ca.pem"
    # Any valid certificate will do as a trust anchor for this check.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tmp_path / "k"), "-out",
                    str(ca), "-days", "1", "-subj", "/CN=t"], check=True, capture_output=True)
    for v, want in (("1.2", ssl.TLSVersion.TLSv1_2), ("1.3", ssl.TLSVersion.TLSv1_3)):
        ctx = client_context(ca, v)
        assert ctx.minimum_version == ctx.maximum_version == want
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


class FakeSocket:
    def __init__(self, log):
        self.log = log

    def settimeout(self, t):
        self.log.append(("timeout", t))

    def connect(self, addr):
        self.log.append(("connect", addr))

    def close(self):
        self.log.append(("close",))


class FakeNode:
    def __init__(self):
        self.log = []

    def socket(self):
        self.log.append(("socket",))
        return FakeSocket(self.log)


def test_http_connections_make_their_socket_in_the_node():
    node = FakeNode()
    conn = LabHTTPSConnection(node, "10.0.2.2", 443, ssl.create_default_context())
    sock = conn._create_connection(("10.0.2.2", 443), 7.0)
    assert isinstance(sock, FakeSocket)
    assert node.log == [("socket",), ("timeout", 7.0), ("connect", ("10.0.2.2", 443))]
    assert conn.timeout == 30.0
    assert LabHTTPSConnection(node, "10.0.2.2", 443, ssl.create_default_context(),
                              timeout_s=5.0).timeout == 5.0


class RefusingSocket(FakeSocket):
    def connect(self, addr):
        raise ConnectionRefusedError(addr)


def test_a_refused_connect_closes_the_lab_socket():
    node = FakeNode()
    node.socket = lambda: (node.log.append(("socket",)), RefusingSocket(node.log))[1]
    conn = LabHTTPSConnection(node, "10.0.2.2", 443, ssl.create_default_context())
    with pytest.raises(ConnectionRefusedError):
        conn._create_connection(("10.0.2.2", 443), 7.0)
    assert node.log == [("socket",), ("timeout", 7.0), ("close",)]


class FakeResponse:
    def __init__(self, status, body, will_close=False):
        self.status, self._body, self.will_close = status, body, will_close

    def read(self):
        return self._body


class FakeConn:
    def __init__(self, resp):
        self.resp = resp
        self.requests = []

    def request(self, method, path):
        self.requests.append((method, path))

    def getresponse(self):
        return self.resp


def test_get_times_one_request_and_checks_the_answer(exp):
    conn = FakeConn(FakeResponse(200, exp.BODY))
    t0, t1 = get(conn, exp.PATH, exp.BODY)
    assert t1 >= t0 and conn.requests == [("GET", exp.PATH)]
    assert len(exp.BODY) == 100
    with pytest.raises(LabError, match="status 404"):
        get(FakeConn(FakeResponse(404, b"")), exp.PATH, exp.BODY)
    with pytest.raises(LabError, match="status 200, 99 bytes"):
        get(FakeConn(FakeResponse(200, exp.BODY[:-1])), exp.PATH, exp.BODY)
    with pytest.raises(LabError, match="closed a keep-alive"):
        get(FakeConn(FakeResponse(200, exp.BODY, will_close=True)), exp.PATH, exp.BODY)


def test_cpu_time_of_a_process_and_its_child():
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child_of(os.getpid()) == child.pid
    finally:
        child.kill()
        child.wait()
    before = cpu_ns(os.getpid())
    sum(i * i for i in range(300_000))
    assert cpu_ns(os.getpid()) >= before > 0
