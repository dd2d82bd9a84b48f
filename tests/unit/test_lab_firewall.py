"""wirelab.lab.firewall: the one-shot drop rules, the string match for a marked segment,
rules armed for a block and an outage in a thread, against a node that records what it
is asked to run.  No root."""
from __future__ import annotations

import time

import pytest

from wirelab.lab import firewall


class _Node:
    def __init__(self):
        self.argvs: list[list[str]] = []

    def run(self, argv):
        self.argvs.append(argv)

    def ops(self) -> list[tuple[str, tuple[str, ...]]]:
        """(-A or -D, the rule) of each iptables call."""
        return [(a[4], tuple(a[5:])) for a in self.argvs]


@pytest.fixture(autouse=True)
def _no_probe(monkeypatch):
    monkeypatch.setattr(firewall, "iptables", lambda: "iptables")


def test_a_one_shot_drop_counts_only_what_its_match_selects():
    rule = firewall.nth_drop(2, "-p", "tcp", chain="INPUT")
    assert rule == ("INPUT", "-p", "tcp", "-m", "statistic", "--mode", "nth", "--every",
                    "1000000000", "--packet", "2", "-j", "DROP")
    with pytest.raises(ValueError, match="first packet is 0"):
        firewall.nth_drop(-1)
    node = _Node()
    firewall.drop_nth(node, 0, "-p", "udp")
    assert node.argvs == [["iptables", "-w", "-t", "filter", "-A", *firewall.nth_drop(0, "-p", "udp")]]


def test_a_marked_segment_is_matched_by_its_source_port_and_marker():
    match = firewall.carrying(b"<mark-7>", 7401)
    assert match == ("-p", "tcp", "--sport", "7401", "-m", "string", "--algo", "bm",
                     "--string", "<mark-7>")


def test_armed_rules_are_deleted_after_the_block_even_when_it_fails():
    node, a, b = _Node(), ("FORWARD", "-j", "DROP"), ("INPUT", "-j", "DROP")
    with firewall.armed(node, [a, a, b]):
        assert node.ops() == [("-A", a), ("-A", a), ("-A", b)]
    assert node.ops()[3:] == [("-D", b), ("-D", a), ("-D", a)]
    node = _Node()
    with pytest.raises(RuntimeError), firewall.armed(node, [a]):
        raise RuntimeError("the trial failed")
    assert node.ops() == [("-A", a), ("-D", a)]


def test_an_outage_starts_late_and_is_over_when_the_block_ends():
    node = _Node()
    with firewall.outage(node, 0.05, 0.01, "-p", "tcp", "--sport", "1"):
        assert node.ops() == []             # not yet: it starts AT_S into the block
        time.sleep(0.2)
    cut = ("FORWARD", "-p", "tcp", "--sport", "1", "-j", "DROP")
    assert node.ops() == [("-A", cut), ("-D", cut)]
    node = _Node()
    with firewall.outage(node, 0.0, 0.05, chain="INPUT"):
        pass                                # the exit waits for the outage to end
    assert node.ops() == [("-A", ("INPUT", "-j", "DROP")), ("-D", ("INPUT", "-j", "DROP"))]
