"""wirelab.peers.openssl: a client report checked against what a trial asked for, and
s_client / s_server run in a node (a fake node that starts a stand-in Python process in
this namespace).  No root, no openssl.  The argument lists and the parser are tested in
test_exp_tls_handshake_rtts.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wirelab.errors import LabError
from wirelab.peers import openssl
from wirelab.peers.openssl import ClientReport


@pytest.mark.parametrize("report, version, reused, early, problems", [
    (ClientReport("TLSv1.3", "x", True, "accepted", True), "1.3", True, "accepted", []),
    (ClientReport("TLSv1.2", "x", False, None, True), "1.2", False, "not sent", []),   # 1.2: no early data
    (ClientReport("TLSv1.3", "x", True, "rejected", True), "1.3", True, "accepted",
     ["early data rejected, expected accepted"]),
    (ClientReport("TLSv1.3", "x", False, "not sent", False), "1.2", True, "not sent",
     ["the server certificate was not verified", "protocol TLSv1.3, expected TLSv1.2",
      "session new, expected reused"]),
    (ClientReport(None, None, None, None, False), "1.3", False, "not sent",
     ["the server certificate was not verified", "protocol None, expected TLSv1.3",
      "session new, expected new", "early data None, expected not sent"]),
])
def test_a_report_names_each_way_it_differs_from_what_was_asked(report, version, reused, early,
                                                                  problems):
    assert report.problems(version, reused, early) == problems


class _Node:
    """Starts ARGV here; remembers the processes to stop them."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []
        self.waited: list[tuple[int, float]] = []

    def popen(self, argv, **kwargs):
        self.procs.append(subprocess.Popen(argv, **kwargs))
        return self.procs[-1]

    def wait_listening(self, port, timeout_s):
        self.waited.append((port, timeout_s))

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


@pytest.fixture
def node():
    n = _Node()
    yield n
    n.stop()


def stand_in(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_the_client_gets_the_payload_and_its_output_comes_back_redacted(node, tmp_path):
    code = ("import sys; data = sys.stdin.buffer.read(); "
            "print('got', len(data), 'B'); print('    Master-Key: 0011AABB'); sys.exit(3)")
    rc, text = openssl.run_s_client(node, stand_in(code), b"x" * 200, tmp_path / "out.txt")
    assert rc == 3 and "got 200 B" in text
    assert "0011AABB" not in text and "Master-Key: <removed>" in text
    assert "0011AABB" in (tmp_path / "out.txt").read_text()     # the log itself is the tool's


def test_with_a_ticket_the_input_stays_open_until_the_session_is_saved(node, tmp_path):
    ticket = tmp_path / "session.pem"
    # EOF before the ticket is written would end the stand-in with status 1
    code = ("import sys, time, pathlib; sys.stdin.buffer.read(10); time.sleep(0.2); "
            f"pathlib.Path({str(ticket)!r}).write_text('SESSION'); "
            "sys.exit(0 if sys.stdin.buffer.read() == b'' else 1)")
    rc, _ = openssl.run_s_client(node, stand_in(code), b"y" * 10, tmp_path / "out.txt",
                                 ticket=ticket)
    assert rc == 0 and openssl.saved(ticket)
    assert not openssl.saved(tmp_path / "none.pem")
    (tmp_path / "empty.pem").write_text("")
    assert not openssl.saved(tmp_path / "empty.pem")


def test_a_client_that_does_not_exit_is_a_lab_fault(node, tmp_path):
    code = "import time; time.sleep(30)"
    with pytest.raises(LabError, match="did not exit within 0.3 s"):
        openssl.run_s_client(node, stand_in(code), b"", tmp_path / "out.txt", timeout_s=0.3)


def test_the_server_keeps_its_input_open_and_is_waited_for(node, tmp_path):
    code = "import sys; print('ACCEPT', flush=True); sys.stdin.read(); print('EOF')"
    openssl.start_s_server(node, stand_in(code), 4433, tmp_path / "server.txt", 5.0)
    assert node.waited == [(4433, 5.0)]
    with pytest.raises(subprocess.TimeoutExpired):           # stdin open: still serving
        node.procs[0].wait(timeout=0.3)
    node.procs[0].stdin.close()
    node.procs[0].wait(timeout=5)
    assert Path(tmp_path / "server.txt").read_text() == "ACCEPT\nEOF\n"
