"""The CLI's argument handling: bad input exits 2 before anything exists."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from wirelab import backend, cli, ledger, results, runner
from wirelab.cli import parse_sets
from wirelab.errors import BadInput


# --- --set parsing ------------------------------------------------------------

def test_parse_sets_values():
    assert parse_sets([]) == {}
    assert parse_sets(["rtt_ms=10"]) == {"rtt_ms": "10"}
    assert parse_sets(["rtt_ms=1,10"]) == {"rtt_ms": ["1", "10"]}
    assert parse_sets([" rtt_ms = 1 , 10 ,50"]) == {"rtt_ms": ["1", "10", "50"]}
    assert parse_sets(["a_ms=1", "b_pct=2,3"]) == {"a_ms": "1", "b_pct": ["2", "3"]}


@pytest.mark.parametrize("items, fragment", [
    (["rtt_ms"], "expected NAME=VALUE"),
    (["=5"], "expected NAME=VALUE"),
    ([" =5"], "expected NAME=VALUE"),
    (["rtt_ms="], "empty value for rtt_ms"),
    (["rtt_ms=1,,2"], "empty value for rtt_ms"),
    (["rtt_ms=1,"], "empty value for rtt_ms"),
    (["rtt_ms=1", "rtt_ms=2"], "--set rtt_ms given twice"),
])
def test_parse_sets_bad(items, fragment):
    with pytest.raises(BadInput, match=re.escape(fragment)):
        parse_sets(items)


# --- bad input never reaches the lab ----------------------------------------------

class Tripwire(BaseException):
    """Raised if the CLI gets past validation; not caught by cli.main."""


def _trip(what):
    def fn(*a, **k):
        raise Tripwire(f"cli went on to {what} before rejecting its input")
    return fn


@pytest.fixture
def no_lab(monkeypatch):
    """Every step after validation trips a wire, so a test that runs as root
    can never build a lab; returns a snapshot function of what exists."""
    monkeypatch.setattr(cli, "_require_root", _trip("the root check"))
    monkeypatch.setattr(backend, "resolve", _trip("choose a kernel backend"))
    monkeypatch.setattr(backend, "run_in_uml", _trip("boot UML"))
    monkeypatch.setattr(backend, "HostLock", _trip("take the host lock"))
    monkeypatch.setattr(runner, "run", _trip("run the experiment"))

    def snapshot():
        netns = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
        made = [str(p) for root in (results.RESULTS_ROOT, ledger.STATE_DIR) if root.exists()
                for p in Path(root).rglob("*")]
        return netns, made
    return snapshot


def _code(argv):
    """cli.main's exit status, whether returned or raised by argparse."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("argv, fragment", [
    (["run", "nope"], "unknown experiment 'nope'"),
    (["run", "tcp_handshake", "--set", "rtt_ms=-5"], "rtt_ms: '-5' is outside the allowed range"),
    (["run", "tcp_handshake", "--set", "rtt_ms=1,abc", "--quick"], "'abc' is not a number"),
    (["run", "tcp_handshake", "--set", "rtt=5"], "unknown parameter 'rtt'"),
    (["run", "tcp_handshake", "--set", "rtt_ms"], "expected NAME=VALUE"),
    (["run", "tcp_handshake", "--repeats", "0"], "--repeats 0: must be 1 to 10000"),
    (["run", "tcp_handshake_one_rtt", "--repeats", "10001"], "--repeats 10001"),
    (["exec", "--kernel", "host", "--"], "exec needs a command"),
    (["exec", "--timeout", "0", "--", "true"], "--timeout 0: must be more than 0"),
])
def test_bad_input_exits_2_before_anything_exists(no_lab, capsys, argv, fragment):
    before = no_lab()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("wirelab: ") and fragment in err
    assert "Traceback" not in err
    assert no_lab() == before
    assert not results.RESULTS_ROOT.exists()


@pytest.mark.parametrize("argv, fragment", [
    (["run", "tcp_handshake", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "tcp_handshake", "--kernel", "bogus"], "invalid choice: 'bogus'"),
    (["doctor", "--kernel", "bogus"], "invalid choice"),
    (["run", "tcp_handshake", "--repeats", "many"], "invalid int value"),
    (["run"], "experiment"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_argparse_errors_exit_2(no_lab, capsys, argv, fragment):
    before = no_lab()
    assert _code(argv) == 2
    err = capsys.readouterr().err
    assert "usage: wirelab" in err and fragment in err
    assert no_lab() == before


def test_good_input_gets_past_validation(no_lab):
    """The tripwire itself works: valid input reaches the root check."""
    with pytest.raises(Tripwire, match="root check"):
        cli.main(["run", "tcp_handshake", "--set", "rtt_ms=1,5", "--repeats", "3"])


def test_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "tcp_handshake_one_rtt (alias: tcp_handshake)" in out
    assert "rtt_ms [1, 10, 50, 100, 200]" in out


# --- the argv a UML guest re-runs ---------------------------------------------------

def _words(argv):
    g = backend.guest_argv(argv)
    assert g[:3] == [sys.executable, "-m", "wirelab"]
    return g[3:]


def test_guest_argv_forces_host_kernel():
    out = _words(["run", "x", "--kernel", "uml", "--set", "a=1"])
    assert out == ["run", "--kernel", "host", "x", "--set", "a=1"]
    assert "uml" not in out
    args = cli.build_parser().parse_args(out)
    assert (args.kernel, args.experiment, args.set) == ("host", "x", ["a=1"])


@pytest.mark.parametrize("kernel", [["--kernel=auto"], ["--kernel=uml"], ["--kernel", "auto"], []])
def test_guest_argv_any_kernel_spelling(kernel):
    out = _words(["run", "tcp_handshake", *kernel, "--quick"])
    assert out == ["run", "--kernel", "host", "tcp_handshake", "--quick"]
    assert out.count("--kernel") == 1


def test_guest_argv_exec_keeps_the_command_untouched():
    cmd = ["sh", "-c", "echo --kernel uml", "--kernel", "uml", "--kernel=auto", "--"]
    out = _words(["-v", "exec", "--kernel", "uml", "--timeout", "9", "--", *cmd])
    assert out == ["-v", "exec", "--kernel", "host", "--timeout", "9", "--", *cmd]
    guest_cmd, guest_kernel = _parsed_cmd(out[1:])
    assert guest_cmd == cmd and guest_kernel == "host"


def _parsed_cmd(argv):
    args = cli.build_parser().parse_args(argv)
    return args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd, args.kernel


def test_guest_argv_exec_round_trip_with_separator():
    argv = ["exec", "--kernel", "uml", "--", "tc", "--kernel", "qdisc"]
    host_cmd, _ = _parsed_cmd(argv)
    guest_cmd, guest_kernel = _parsed_cmd(_words(argv))
    assert guest_cmd == host_cmd == ["tc", "--kernel", "qdisc"]
    assert guest_kernel == "host"


def test_guest_argv_exec_round_trip_without_separator():
    # `wirelab exec --kernel uml tc qdisc` (no "--") must not turn into a guest
    # command line where argparse.REMAINDER swallows an appended --kernel.
    argv = ["exec", "--kernel", "uml", "tc", "qdisc"]
    host_cmd, _ = _parsed_cmd(argv)
    assert host_cmd == ["tc", "qdisc"]
    guest_cmd, guest_kernel = _parsed_cmd(_words(argv))
    assert guest_cmd == host_cmd
    assert guest_kernel == "host"
