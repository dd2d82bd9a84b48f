"""[01] url_journey_rtt_budget without root: the RTT-count prediction, the one-sided
band of the claim's pass criterion, curl -w parsing on captured output and the checks on
it, the curl command line, the client's private resolver files and the in-process DNS
client."""
from __future__ import annotations

import socket
import struct

import pytest

from support import kernel_facts
from wirelab.errors import LabError
from wirelab.lab.node import Node
from wirelab.measure import curl as curlw
from wirelab.measure.phases import PHASES
from wirelab.measure.tap import run_tapped
from wirelab.models.tls import PROTOCOL_NAME
from wirelab.peers import dns as resolver
from wirelab.run import catalog
from wirelab.spec.context import EXCLUDED

KERNEL = kernel_facts(release="6.1.176")

# Captured in a UML run (r=50, cold resolver, TLS 1.3): curl's -w line.
CAPTURED_W = ("0.073210\t0.123882\t0.178179\t0.229509\t0.229787\t1\t1.1\t200\t1024\t51730\t"
              "TLSv1.3\thttps://p6b0n1.lab.test/page.html\n")


@pytest.fixture(scope="module")
def exp():
    return catalog.load("url_journey")


def point(rtt=50.0, dns="warm", tls="1.3", think=0.0, auth=20.0):
    return {"rtt_ms": rtt, "dns": dns, "tls": tls, "think_ms": think, "auth_rtt_ms": auth}


@pytest.mark.parametrize("tls, rtts", [("1.3", 4), ("1.2", 5)])
def test_the_texts_4_to_5_rtts_hold_with_a_warm_resolver_as_far_as_the_server(exp, tls, rtts):
    pred = exp.predict(point(tls=tls), KERNEL)
    assert pred["starttransfer_ms"] == pytest.approx(rtts * 50)
    assert pred["namelookup_ms"] == 50 and pred["connect_ms"] == 100


@pytest.mark.parametrize("dns", ["hosts", "pinned"])
@pytest.mark.parametrize("tls, rtts", [("1.3", 3), ("1.2", 4)])
def test_without_a_resolver_round_trip_the_first_byte_is_one_rtt_sooner(exp, dns, tls, rtts):
    pred = exp.predict(point(rtt=10.0, dns=dns, tls=tls), KERNEL)
    assert pred["namelookup_ms"] == 0
    assert pred["starttransfer_ms"] == pytest.approx(rtts * 10)


def test_cold_cache_adds_the_resolvers_own_exchange(exp):
    warm = exp.predict(point(dns="warm"), KERNEL)
    cold = exp.predict(point(dns="cold", auth=35.0), KERNEL)
    for m in exp.metrics:
        if m.name != "curl_overhead_ms":
            assert cold[m.name] - warm[m.name] == pytest.approx(35.0)


def test_think_time_adds_to_curls_first_byte_only(exp):
    """The server's think time is its processing: curl sees it, the time in
    the network does not."""
    a = exp.predict(point(think=0.0), KERNEL)
    b = exp.predict(point(think=200.0), KERNEL)
    assert b["curl_appconnect_ms"] == a["curl_appconnect_ms"] == a["appconnect_ms"]
    assert b["curl_starttransfer_ms"] - a["curl_starttransfer_ms"] == 200.0
    assert b["starttransfer_ms"] == a["starttransfer_ms"]
    assert b["total_ms"] == b["starttransfer_ms"]          # a 1 KB page: no extra round
    assert b["curl_total_ms"] == b["curl_starttransfer_ms"]
    network = [m.name for m in exp.metrics if m.name in PHASES]
    assert len(network) == 5
    for m in network:
        assert a[f"curl_{m}"] == a[m]
    assert a["curl_overhead_ms"] == 0.0


def test_times_are_cumulative_and_ordered_for_the_whole_grid(exp):
    for p in exp.grid({}):
        pred = exp.predict(p, KERNEL)
        values = [pred[m] for m in ("namelookup_ms", "connect_ms", "appconnect_ms",
                                    "starttransfer_ms", "total_ms")]
        assert values == sorted(values)
        assert set(pred) == {m.name for m in exp.metrics}


def test_grids(exp):
    assert len(exp.grid({})) == 5 * 3 * 2 * 2
    quick = exp.grid({}, quick=True)
    assert len(quick) == 8
    assert {p["rtt_ms"] for p in quick} == {10.0, 50.0}
    assert {p["dns"] for p in quick} == {"hosts", "warm"}


@pytest.mark.parametrize("page, timestamps, extra", [
    (1024, "1", 0), (10 * 1448, "1", 0), (10 * 1448 + 1, "1", 1),
    (10 * 1460, "0", 0), (10 * 1460 + 1, "0", 1)])
def test_extra_rounds_read_the_mss_from_the_timestamp_sysctl(exp, monkeypatch, page,
                                                             timestamps, extra):
    """Rounds after the first byte: slow start's beyond the first, with the MSS the
    timestamp sysctl leaves (the page is 1 KB; other sizes are patched in)."""
    monkeypatch.setattr(exp.module, "PAGE_BYTES", page)
    pred = exp.predict(point(), kernel_facts(tcp_timestamps=timestamps))
    assert pred["total_ms"] - pred["starttransfer_ms"] == pytest.approx(extra * 50)
    assert pred["curl_total_ms"] - pred["curl_starttransfer_ms"] == pytest.approx(extra * 50)


def test_tolerance_is_the_one_sided_band_of_the_claim(exp):
    tol = exp.metric("starttransfer_ms").tolerance
    pred = 200.0
    lo, hi = tol.bounds(pred)
    assert lo == pred and hi == pytest.approx(pred + 0.5 + 6.0)
    assert not tol.check([pred - 0.01], pred)[0]            # earlier than physics: fails
    assert tol.check([pred + 6.4], pred)[0]
    assert not tol.check([pred + 6.6], pred)[0]


def test_topology_leaves_the_resolver_out_when_unused(exp):
    assert exp.topology_params(point(dns="hosts"))["resolver"] is False
    tp = exp.topology_params(point(rtt=100.0, dns="cold"))
    assert tp["resolver"] is True and tp["rdns_ms"] == 100.0


def test_parse_captured_write_out():
    rows = curlw.parse_write_out(CAPTURED_W)
    assert len(rows) == 1
    row = rows[0]
    assert row["namelookup_ms"] == pytest.approx(73.210)
    assert row["starttransfer_ms"] == pytest.approx(229.509)
    assert row["num_connects"] == 1 and row["x-tls"] == "TLSv1.3"
    assert row["http_version"] == "1.1" and row["size_download"] == 1024


def test_write_out_format_round_trips_field_count():
    fmt = curlw.write_out_format()
    assert fmt.count("\\t") == len(curlw.FIELDS) - 1 and fmt.endswith("\\n")
    assert "%header{x-tls}" in fmt
    with pytest.raises(curlw.CurlOutputError):
        curlw.parse_write_out("0.1\t0.2\n")
    with pytest.raises(curlw.CurlOutputError):
        curlw.parse_write_out(CAPTURED_W.replace("0.073210", "abc"))


class _Certs:
    ca = "/lab/ca.pem"


@pytest.mark.parametrize("pinned, tls", [(True, "1.2"), (False, "1.3")])
def test_curl_command_line(pinned, tls):
    urls = ["https://a.lab.test/page.html", "https://b.lab.test/page.html"]
    argv = curlw.fetch_argv(urls, tls, "/lab/ca.pem", 171,
                            {"a.lab.test": "10.0.2.2"} if pinned else None)
    assert all(isinstance(a, str) for a in argv) and argv[0] == "curl"
    assert ("--resolve" in argv) == pinned
    if pinned:
        assert argv[argv.index("--resolve") + 1] == "a.lab.test:443:10.0.2.2"
    assert argv.count("--output") == 2 and argv[-1] == urls[-1]
    assert ("--tls-max" in argv) == (tls == "1.2")
    assert argv[argv.index("--rate") + 1] == "171/m"
    assert argv[argv.index("--cacert") + 1] == "/lab/ca.pem" and "--http1.1" in argv
    assert argv[argv.index("--write-out") + 1] == curlw.write_out_format()


def _wire(network=50.0, compute=2.0, resent=()):
    """One transfer as wire_phases gives it: every phase NETWORK ms in the network,
    COMPUTE ms at the client."""
    return {"name": "n.lab.test", "retransmissions": list(resent),
            **{m: network for m in PHASES},
            "compute": {m: {"h1": compute} for m in PHASES}}


def test_a_row_says_what_curl_reports_beyond_the_packets(exp):
    row = exp.module._row(_wire(), {m: 53.5 for m in PHASES}, exp.BUDGET_MS)
    assert row["curl_overhead_ms"] == pytest.approx(1.5)
    assert EXCLUDED not in row and row["starttransfer_ms"] == 50.0


def test_a_transfer_with_a_resent_packet_is_excluded(exp):
    row = exp.module._row(_wire(resent=["h1 resent SYN to 10.0.2.2:443 at 1.0"]),
                          {m: 1053.5 for m in PHASES}, exp.BUDGET_MS)
    assert row[EXCLUDED].startswith("resent: h1 resent SYN")


def test_processing_over_its_budget_excludes_the_transfer(exp):
    """Recorded with the numbers, never judged; a point that cannot collect its trials is
    then a lab fault (the runner's limit)."""
    row = exp.module._row(_wire(compute=25.0), {m: 80.0 for m in PHASES}, exp.BUDGET_MS)
    assert "h1 processed for 25.0 ms on the path, over its budget of 20 ms" in row["excluded"]
    assert "excluded" not in exp.module._row(_wire(compute=5.0), {m: 80.0 for m in PHASES},
                                             exp.BUDGET_MS)


def _validate(exp, rows, params, names):
    """The check every batch's rows pass: fresh transfers of the page over the TLS
    version the point asks for."""
    curlw.check_fresh(rows, names, exp.PAGE_BYTES, PROTOCOL_NAME[params["tls"]])


def test_validate_refuses_a_reused_connection_or_wrong_tls(exp):
    row = curlw.parse_write_out(CAPTURED_W)[0]
    names = ["p6b0n1.lab.test"]
    _validate(exp, [row], point(), names)
    with pytest.raises(LabError, match="new connections"):
        _validate(exp, [{**row, "num_connects": 0}], point(), names)
    with pytest.raises(LabError, match="TLSv1.3"):
        _validate(exp, [row], point(tls="1.2"), names)
    with pytest.raises(LabError, match="512 B"):
        _validate(exp, [{**row, "size_download": 512}], point(), names)
    with pytest.raises(LabError, match="URL"):
        _validate(exp, [row], point(), ["p6b0n2.lab.test"])
    with pytest.raises(LabError, match="1 transfers for 2 URLs"):
        _validate(exp, [row], point(), names * 2)


def test_note_counts_rtts(exp):
    entry = {"params": point(think=200.0),
             "measured": {"starttransfer_ms": 210.0, "curl_starttransfer_ms": 431.5},
             "predicted": {"starttransfer_ms": 200.0}}
    assert exp.check(entry) is None           # the bands alone decide
    note = exp.note(entry)
    assert "4.20 RTT in the network" in note and "model 4" in note
    assert "curl: 431.5 ms" in note


@pytest.mark.parametrize("metric", ["curl_namelookup_ms", "curl_connect_ms",
                                    "curl_appconnect_ms", "curl_starttransfer_ms",
                                    "curl_total_ms"])
def test_curls_own_figures_have_a_floor_and_a_ceiling(exp, metric):
    """curl's figures may never beat the model; above it by at most every end's
    processing budget and curl's own overhead (3% for the timer's rounding)."""
    tol = exp.metric(metric).tolerance
    lo, hi = tol.bounds(200.0, {"rtt_ms": 50.0})
    assert lo == 200.0
    assert hi == pytest.approx(200.0 + sum(exp.BUDGET_MS.values()) + exp.CURL_OVERHEAD_MS + 6.0)


def test_curls_overhead_is_judged_against_a_few_ms(exp):
    tol = exp.metric("curl_overhead_ms").tolerance
    assert tol.bounds(0.0) == (-0.5, exp.CURL_OVERHEAD_MS)


def test_dns_question_names_are_read_from_queries_and_replies():
    _qid, q = resolver.build_query("P1b0n2.lab.test", "AAAA")
    assert resolver.question(q) == ("p1b0n2.lab.test", False)
    reply = q[:2] + b"\x81\x80" + q[4:]
    assert resolver.question(reply) == ("p1b0n2.lab.test", True)
    assert resolver.question(b"\x00" * 5) is None


def test_client_files_and_binds(tmp_path):
    files = resolver.client_files(tmp_path, "h1", ["10.0.3.2"], hosts={"a.lab.test": "10.0.2.2"})
    assert files.resolv_conf.read_text() == "nameserver 10.0.3.2\n"
    assert "10.0.2.2\ta.lab.test" in files.hosts.read_text()
    assert files.nsswitch.read_text() == "hosts: files dns\n"
    targets = [dst for _src, dst in files.binds()]
    assert targets == ["/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf"]
    assert all(str(tmp_path) in src for src, _dst in files.binds())


def test_running_curl_with_the_resolver_files_refuses_a_shell_string(tmp_path):
    """curl runs in h1 through run_tapped (node.run with the files bound): a shell
    string is refused before anything starts."""
    node = Node.__new__(Node)               # no namespace: nothing may be started
    node.name, node.ns = "h1", "wl-none"
    files = resolver.client_files(tmp_path, "h1", ["10.0.3.2"])
    with pytest.raises(TypeError, match="shell string"):
        run_tapped(node, "curl http://x", {}, binds=files.binds())
    with pytest.raises(TypeError, match="shell string"):
        node.run("curl http://x", binds=files.binds())


def _reply(qid: int, question: bytes, answers: list[tuple[int, int, bytes]]) -> bytes:
    head = struct.pack("!HHHHHH", qid, 0x8180, 1, len(answers), 0, 0)
    body = question
    for rtype, rclass, rdata in answers:
        body += b"\xc0\x0c" + struct.pack("!HHIH", rtype, rclass, 3600, len(rdata)) + rdata
    return head + body


def test_dns_query_and_reply_round_trip():
    qid, msg = resolver.build_query("www.lab.test", "A", qid=0x1234)
    assert qid == 0x1234
    assert msg[:2] == b"\x12\x34" and msg[12:] == b"\x03www\x03lab\x04test\x00\x00\x01\x00\x01"
    reply = _reply(qid, msg[12:], [(1, 1, socket.inet_aton("10.0.2.2"))])
    parsed = resolver.parse_response(reply, qid)
    assert parsed["rcode"] == 0
    assert parsed["answers"] == [(1, socket.inet_aton("10.0.2.2"), 3600)]


def test_dns_reply_to_another_query_is_refused():
    qid, msg = resolver.build_query("x.lab.test", qid=7)
    with pytest.raises(resolver.DnsError):
        resolver.parse_response(_reply(8, msg[12:], []), qid)
    with pytest.raises(resolver.DnsError):
        resolver.parse_response(b"\x00\x07", qid)


def test_chaos_txt_counter_parses():
    qid, msg = resolver.build_query("hits.bind", "TXT", resolver.CLASS_CH, qid=9)
    reply = _reply(qid, msg[12:], [(16, 3, b"\x0242")])
    parsed = resolver.parse_response(reply, qid)
    (rtype, rdata, _ttl), = parsed["answers"]
    assert rtype == 16 and rdata[1:1 + rdata[0]] == b"42"
