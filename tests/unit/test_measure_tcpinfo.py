"""wirelab.measure.tcpinfo: struct tcp_info parsed from bytes built here, field by field."""
from __future__ import annotations

import re
import socket
import struct

import pytest

from wirelab.measure import tcpinfo

#: struct tcp_info as include/uapi/linux/tcp.h declares it (6.1), captured
#: verbatim up to tcpi_snd_wnd: the field order the parser must follow.
HEADER_6_1 = """
struct tcp_info {
	__u8	tcpi_state;
	__u8	tcpi_ca_state;
	__u8	tcpi_retransmits;
	__u8	tcpi_probes;
	__u8	tcpi_backoff;
	__u8	tcpi_options;
	__u8	tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4;
	__u8	tcpi_delivery_rate_app_limited:1, tcpi_fastopen_client_fail:2;

	__u32	tcpi_rto;
	__u32	tcpi_ato;
	__u32	tcpi_snd_mss;
	__u32	tcpi_rcv_mss;

	__u32	tcpi_unacked;
	__u32	tcpi_sacked;
	__u32	tcpi_lost;
	__u32	tcpi_retrans;
	__u32	tcpi_fackets;

	/* Times. */
	__u32	tcpi_last_data_sent;
	__u32	tcpi_last_ack_sent;     /* Not remembered, sorry. */
	__u32	tcpi_last_data_recv;
	__u32	tcpi_last_ack_recv;

	/* Metrics. */
	__u32	tcpi_pmtu;
	__u32	tcpi_rcv_ssthresh;
	__u32	tcpi_rtt;
	__u32	tcpi_rttvar;
	__u32	tcpi_snd_ssthresh;
	__u32	tcpi_snd_cwnd;
	__u32	tcpi_advmss;
	__u32	tcpi_reordering;

	__u32	tcpi_rcv_rtt;
	__u32	tcpi_rcv_space;

	__u32	tcpi_total_retrans;

	__u64	tcpi_pacing_rate;
	__u64	tcpi_max_pacing_rate;
	__u64	tcpi_bytes_acked;    /* RFC4898 tcpEStatsAppHCThruOctetsAcked */
	__u64	tcpi_bytes_received; /* RFC4898 tcpEStatsAppHCThruOctetsReceived */
	__u32	tcpi_segs_out;	     /* RFC4898 tcpEStatsPerfSegsOut */
	__u32	tcpi_segs_in;	     /* RFC4898 tcpEStatsPerfSegsIn */

	__u32	tcpi_notsent_bytes;
	__u32	tcpi_min_rtt;
	__u32	tcpi_data_segs_in;	/* RFC4898 tcpEStatsDataSegsIn */
	__u32	tcpi_data_segs_out;	/* RFC4898 tcpEStatsDataSegsOut */

	__u64   tcpi_delivery_rate;

	__u64	tcpi_busy_time;      /* Time (usec) busy sending data */
	__u64	tcpi_rwnd_limited;   /* Time (usec) limited by receive window */
	__u64	tcpi_sndbuf_limited; /* Time (usec) limited by send buffer */

	__u32	tcpi_delivered;
	__u32	tcpi_delivered_ce;

	__u64	tcpi_bytes_sent;     /* RFC4898 tcpEStatsPerfHCDataOctetsOut */
	__u64	tcpi_bytes_retrans;  /* RFC4898 tcpEStatsPerfOctetsRetrans */
	__u32	tcpi_dsack_dups;     /* RFC4898 tcpEStatsStackDSACKDups */
	__u32	tcpi_reord_seen;     /* reordering events seen */

	__u32	tcpi_rcv_ooopack;    /* Out-of-order packets received */

	__u32	tcpi_snd_wnd;	     /* peer's advertised receive window after
				      * scaling (bytes)
				      */
};
"""
C_SIZES = {"__u8": 1, "__u32": 4, "__u64": 8}


def _header_fields() -> list[tuple[str, int]]:
    """(name, size) of every non-bitfield member of HEADER_6_1, in order; a
    bitfield byte is one entry named after its first member."""
    body = re.sub(r"/\*.*?\*/", "", HEADER_6_1, flags=re.S)
    out = []
    for typ, decl in re.findall(r"(__u8|__u32|__u64)\s+([^;]+);", body):
        first = decl.split(",")[0].split(":")[0].strip()
        out.append((first.removeprefix("tcpi_"), C_SIZES[typ]))
    return out


def test_field_order_and_offsets_follow_the_c_header():
    fields = _header_fields()
    offset = 0
    for name, size in fields:
        # C aligns each member to its size; the parser has no padding, so the
        # header must need none either.
        assert offset % size == 0, name
        ours = {"snd_wscale": "_wscale", "delivery_rate_app_limited": "_flags"}.get(name, name)
        assert tcpinfo.OFFSETS[ours] == offset, name
        offset += size
    assert offset == tcpinfo.SIZE == 232
    assert [n for n, _ in tcpinfo.FIELDS] == [
        {"snd_wscale": "_wscale", "delivery_rate_app_limited": "_flags"}.get(n, n)
        for n, _ in fields]


def test_offsets_of_the_fields_the_experiments_read():
    assert tcpinfo.OFFSETS["snd_mss"] == 16
    assert tcpinfo.OFFSETS["snd_ssthresh"] == 76
    assert tcpinfo.OFFSETS["snd_cwnd"] == 80
    assert tcpinfo.OFFSETS["pacing_rate"] == 104
    assert tcpinfo.OFFSETS["bytes_acked"] == 120
    assert tcpinfo.OFFSETS["rwnd_limited"] == 176
    assert tcpinfo.OFFSETS["snd_wnd"] == 228


def _hand_packed(**over) -> bytes:
    """232 bytes packed by hand from the C layout (not via tcpinfo.build)."""
    v = {"head": [1, 0, 0, 0, 0, 7, 0x97, 0x05],
         "u32a": list(range(100, 124)),            # rto .. total_retrans
         "u64a": [10**10, 2 * 10**10, 3 * 10**10, 4 * 10**10],
         "u32b": [200, 201, 202, 203, 204, 205],
         "u64b": [5 * 10**10, 6, 7, 8],
         "u32c": [300, 301],
         "u64c": [9 * 10**10, 10],
         "u32d": [400, 401, 402, 65536]}
    v.update(over)
    return struct.pack("=8B24I4Q6I4Q2I2Q4I", *v["head"], *v["u32a"], *v["u64a"], *v["u32b"],
                       *v["u64b"], *v["u32c"], *v["u64c"], *v["u32d"])


def test_parse_hand_packed_bytes():
    info = tcpinfo.parse(_hand_packed())
    assert info["state"] == 1 and info["options"] == 7
    # 0x97: snd_wscale in the low nibble, rcv_wscale in the high one.
    assert info["snd_wscale"] == 7 and info["rcv_wscale"] == 9
    # 0x05: app_limited bit 0, fastopen_client_fail bits 1-2 (= 2).
    assert info["delivery_rate_app_limited"] == 1 and info["fastopen_client_fail"] == 2
    assert info["rto"] == 100 and info["ato"] == 101
    assert info["snd_mss"] == 102 and info["rcv_mss"] == 103
    assert info["pmtu"] == 113 and info["rcv_ssthresh"] == 114 and info["rtt"] == 115
    assert info["snd_ssthresh"] == 117 and info["snd_cwnd"] == 118 and info["advmss"] == 119
    assert info["total_retrans"] == 123
    assert info["pacing_rate"] == 10**10 and info["bytes_received"] == 4 * 10**10
    assert info["segs_out"] == 200 and info["data_segs_out"] == 205
    assert info["delivery_rate"] == 5 * 10**10 and info["rwnd_limited"] == 7
    assert info["delivered"] == 300 and info["bytes_sent"] == 9 * 10**10
    assert info["rcv_ooopack"] == 402 and info["snd_wnd"] == 65536
    assert "_wscale" not in info and "_flags" not in info


def test_build_is_the_inverse_of_parse_and_matches_hand_packing():
    data = _hand_packed()
    assert tcpinfo.build(**tcpinfo.parse(data)) == data
    assert tcpinfo.parse(tcpinfo.build(snd_cwnd=10, snd_mss=1448))["snd_cwnd"] == 10
    with pytest.raises(KeyError, match="cwnd"):
        tcpinfo.build(cwnd=10)


def test_a_shorter_answer_yields_only_the_fields_it_holds():
    # An older kernel (or a short buffer) stops after tcpi_total_retrans.
    info = tcpinfo.parse(_hand_packed()[:104])
    assert info["snd_cwnd"] == 118 and info["total_retrans"] == 123
    assert "pacing_rate" not in info and "snd_wnd" not in info
    # A newer kernel appends fields: extra bytes are ignored.
    assert tcpinfo.parse(_hand_packed() + b"\xff" * 16)["snd_wnd"] == 65536


def test_too_short_to_hold_the_cwnd_is_an_error():
    with pytest.raises(tcpinfo.TcpInfoError, match="83 bytes"):
        tcpinfo.parse(_hand_packed()[:83])
    assert tcpinfo.parse(_hand_packed()[:84])["snd_cwnd"] == 118


def test_option_numbers_match_pythons_socket_module():
    assert tcpinfo.TCP_INFO == socket.TCP_INFO
    assert tcpinfo.TCP_CONGESTION == socket.TCP_CONGESTION
    assert tcpinfo.TCP_MAXSEG == socket.TCP_MAXSEG


def test_episodes_are_the_runs_of_samples_in_one_state():
    states = [0, 3, 3, 0, 1, 3, 4, 4, 0, 3]
    samples = [{"ca_state": s} for s in states]
    assert tcpinfo.episodes(samples, tcpinfo.CA_RECOVERY) == [(1, 3), (5, 6), (9, 10)]
    assert tcpinfo.episodes(samples, tcpinfo.CA_LOSS) == [(6, 8)]
    assert tcpinfo.episodes(samples, tcpinfo.CA_CWR) == [] and tcpinfo.episodes([], 0) == []
    assert (tcpinfo.CA_OPEN, tcpinfo.CA_DISORDER, tcpinfo.CA_LOSS) == (0, 1, 4)
