"""The listen queues' rules, event by event (wirelab.models.listen_queue)."""
from __future__ import annotations

import pytest

from wirelab.models.listen_queue import simulate
from wirelab.models.retransmit import syn_schedule

SYNS_61 = syn_schedule(6, 0)[0]          # 0, 1, 3, 7 ... s


def run(clients=8, backlog=3, cookies=False, abort=False, start=10.0, every=0.1, until=9.0,
        syns=SYNS_61, slack=0.0):
    return simulate(clients, backlog, 0.05, syns, syncookies=cookies, abort_on_overflow=abort,
                    accept_start_s=start, accept_every_s=every, until_s=until,
                    probe_s=(0.5, 2.0), slack_s=slack)


def test_both_queues_take_backlog_plus_one():
    out = run(cookies=False)            # nobody accepts before the end
    assert out.queue_at == {0.5: 4, 2.0: 4}
    assert sorted(out.connect_s.values()) == [0.05] * 4
    # four SYNs dropped on the full SYN queue at once; at 1, 3 and 7 s on the accept queue
    assert out.syn_drops == 4 and out.overflows == 4 * 3


def test_cookies_answer_when_the_syn_queue_is_full_and_leave_phantoms():
    out = run(cookies=True)
    assert out.cookies == 4 and len(out.connect_s) == 8        # every connect() returned
    assert out.queue_at[0.5] == 4 and out.overflows == 4        # four cookie ACKs dropped
    assert len(out.phantoms()) == 8 and not out.served_s        # no accept() before the end
    served = run(cookies=True, start=1.0)
    assert len(served.served_s) == 4 and len(served.phantoms()) == 4   # nothing resends


def test_an_overflowing_ack_keeps_its_request_sock_or_is_reset():
    # one accept() at 0.65 s makes room for one; the SYNs resent at 1 s get four request
    # socks, and three of their ACKs find the queue full again
    kept = run(start=0.65, every=0.4, until=4.0)
    assert len(kept.served_s) == 8 and not kept.reset            # SYN-ACK resent, let in later
    reset = run(abort=True, start=0.65, every=0.4, until=4.0)
    assert len(reset.reset) == 2 and len(reset.served_s) == 6
    cookie = run(cookies=True, abort=True, start=0.65, every=0.4, until=4.0)
    assert not cookie.reset                                      # a cookie's ACK is only dropped


def test_an_empty_queue_makes_accept_wait_for_the_next_connection():
    out = run(clients=1, start=0.01, every=0.4)
    # the SYN reaches the server at r/2, its ACK at 3r/2 (joins, accepted at once), the
    # byte reaches the client at 2r
    assert out.served_s == {0: pytest.approx(0.1)}


def test_late_timers_move_times_not_counts_here():
    base = run(start=0.65, every=0.4, until=4.0)
    late = run(start=0.65, every=0.4, until=4.0, slack=0.2)
    assert len(late.served_s) == len(base.served_s) and late.overflows == base.overflows
    assert max(late.connect_s.values()) == pytest.approx(max(base.connect_s.values()) + 0.2)
