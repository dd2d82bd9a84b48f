"""The CLI's argument handling: bad input exits 2 before anything exists."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from wirelab import __version__, cli, settings
from wirelab.errors import BadInput
from wirelab.kernel import backend
from wirelab.run import runner
from wirelab.spec.params import parse_sets

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
        conf = settings.current()
        made = [str(p) for root in (conf.results_dir, conf.state_dir) if root.exists()
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
    assert not settings.current().results_dir.exists()


@pytest.mark.parametrize("argv, fragment", [
    (["run", "tcp_handshake", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "tcp_handshake", "--kernel", "bogus"], "'bogus': allowed auto, host, uml, or uml:X.Y"),
    (["doctor", "--kernel", "uml:six"], "'uml:six': allowed auto, host, uml, or uml:X.Y"),
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
    g = backend.guest_argv(cli.command_part(argv))
    assert g[:3] == [sys.executable, "-m", "wirelab"]
    # This process's settings travel as flags, the results directory always.
    assert g[3:5] == ["--results-dir", str(settings.current().results_dir)]
    return g[5:]


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
    settings.configure(verbose=True)
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


def test_guest_argv_drops_global_options_before_the_subcommand(tmp_path):
    settings.configure(results_dir=tmp_path / "r")
    out = _words(["--results-dir", str(tmp_path / "r"), "run", "x", "--kernel", "uml"])
    assert out == ["run", "--kernel", "host", "x"]


# --- a conventional command line ----------------------------------------------------------

def test_version(capsys):
    assert _code(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"wirelab {__version__}"


@pytest.mark.parametrize("argv", [["-v", "list"], ["list", "-v"], ["list", "--verbose"]])
def test_verbose_anywhere(argv, capsys):
    assert cli.main(argv) == 0
    assert settings.current().verbose


@pytest.mark.parametrize("before", [True, False])
def test_results_dir_flag_before_or_after_the_subcommand(tmp_path, before):
    flag = ["--results-dir", str(tmp_path / "r")]
    assert cli.main([*flag, "list"] if before else ["list", *flag]) == 0
    assert settings.current().results_dir == tmp_path / "r"


def test_list_json_is_valid_and_complete(capsys):
    assert cli.main(["list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {e["id"] for e in doc} >= {"tcp_handshake_one_rtt", "url_journey_rtt_budget"}
    one = next(e for e in doc if e["id"] == "tcp_handshake_one_rtt")
    assert one["aliases"] == ["tcp_handshake"] and one["linux_fact"]
    assert [m["name"] for m in one["metrics"]] == ["connect_ms", "accept_ms"]
    assert all(m["judged"] and "never below" in m["band"] for m in one["metrics"])


def test_list_one_experiment_in_full(capsys):
    assert cli.main(["list", "tcp_handshake"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tcp_handshake_one_rtt (alias: tcp_handshake)")
    assert "What Linux does:" in out and "metrics:" in out


@pytest.mark.parametrize("name", ["tcp_retries2", "net.ipv4.tcp_retries2", "net/ipv4/tcp_retries2"])
def test_list_sysctl_finds_the_experiment_that_sweeps_it(capsys, name):
    assert cli.main(["list", "--sysctl", name]) == 0
    out = capsys.readouterr().out
    assert out.startswith("net.ipv4.tcp_retries2: its effect is measured by")
    assert "wirelab run rto_backoff_partition --set retries2_count=5,8,15" in out


def test_list_sysctl_all_and_json(capsys):
    assert cli.main(["list", "--sysctl", "all", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"net.ipv4.tcp_syn_retries", "net.ipv4.tcp_sack", "net.ipv4.tcp_recovery",
            "net.ipv4.tcp_slow_start_after_idle"} <= set(doc)
    assert doc["net.ipv4.tcp_syn_retries"] == [{"experiment": "syn_retransmission_schedule",
                                                "parameter": "syn_retries_count", "grid": [2, 3, 6]}]


def test_list_sysctl_nobody_sweeps_is_bad_input(capsys):
    assert _code(["list", "--sysctl", "tcp_retries"]) == 2   # a prefix is not a name
    err = capsys.readouterr().err
    assert "'tcp_retries'" in err and "swept sysctls: " in err and "net.ipv4.tcp_retries2" in err


def test_list_markdown_is_the_whole_catalog(capsys):
    assert cli.main(["list", "--markdown"]) == 0
    out = capsys.readouterr().out
    ids = re.findall(r"^## \[(\d\d)\] ", out, re.M)
    assert ids == [f"{i:02d}" for i in range(1, 44)]     # the course's 40, the project's 41-43
    assert "measured by `tcp_handshake_one_rtt`" in out and "**Status:** planned" in out


def test_show_json(make_run, capsys):
    run_dir = make_run({1.0: (1.1, 1.6), 10.0: (10.2, 15.3)})
    assert cli.main(["show", str(run_dir), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "match" and doc["exit_code"] == 0 and len(doc["points"]) == 2


# --- an experiment module from any folder ---------------------------------------------------

def test_run_a_file_that_is_not_an_experiment_exits_2_naming_what_is_missing(
        no_lab, tmp_path, capsys):
    f = tmp_path / "my_claim.py"
    f.write_text("ID = 'mine'\nCLAIM = 'x'\n")
    before = no_lab()
    assert cli.main(["run", str(f), "--quick"]) == 2
    err = capsys.readouterr().err
    assert str(f) in err and "no TOPOLOGY" in err and "no predict" in err
    assert no_lab() == before


def test_run_a_file_that_does_not_import_exits_2(no_lab, tmp_path, capsys):
    f = tmp_path / "broken.py"
    f.write_text("import no_such_module_anywhere\n")
    assert cli.main(["run", str(f)]) == 2
    assert "does not import" in capsys.readouterr().err


def test_run_a_missing_file_exits_2(no_lab, tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "nope.py")]) == 2
    assert "no such experiment file" in capsys.readouterr().err


def test_a_teachers_own_claim_gets_past_validation(no_lab, tmp_path):
    """A copy of a built-in experiment in another folder is a valid experiment."""
    from wirelab.run import catalog
    src = catalog.content_dir("experiments") / "tcp_handshake_one_rtt.py"
    f = tmp_path / "my_handshake.py"
    f.write_text(src.read_text().replace('ID = "tcp_handshake_one_rtt"', 'ID = "my_handshake"'))
    with pytest.raises(Tripwire, match="root check"):
        cli.main(["run", str(f), "--quick"])
