"""wirelab.measure.netstat.counted: what an action made counters grow.  No root (the
namespace read is replaced by a script of readings)."""
from __future__ import annotations

from wirelab.measure import netstat


def test_counted_reads_before_and_after_the_action(monkeypatch):
    readings = iter([{"TCPTimeouts": 3, "TCPLossProbes": 10}, {"TCPTimeouts": 4, "TCPLossProbes": 10}])
    calls = []

    def read(ns, group, names):
        calls.append((ns, group, names))
        return next(readings)
    monkeypatch.setattr(netstat, "read_counters", read)
    got, grew = netstat.counted("wl-h2", "TcpExt", iter(["TCPTimeouts", "TCPLossProbes"]),
                                lambda: "fetched")
    assert got == "fetched" and grew == {"TCPTimeouts": 1, "TCPLossProbes": 0}
    assert calls == [("wl-h2", "TcpExt", ("TCPTimeouts", "TCPLossProbes"))] * 2
