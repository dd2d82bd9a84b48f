"""wirelab.kernel.uml: the guest's command script, kernel command line and mounts (no
boot), and the settings a guest reads."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from wirelab import settings
from wirelab.errors import BadInput, EnvironmentProblem
from wirelab.kernel import uml

NASTY = ["a b; rm -rf /", "$(touch pwned)", "`touch pwned`", "it's", '"dq"', "*", "~",
         "tab\there", "new\nline", "", "--kernel", "$HOME", "\\", "é"]


def _script(argv, cwd="/", env=None):
    return uml.command_script(argv, cwd, {} if env is None else env)


def test_every_word_is_quoted():
    argv = ["printf", "%s\n", *NASTY]
    s = _script(argv)
    assert s.endswith("\nexec " + " ".join(shlex.quote(a) for a in argv) + "\n")
    assert " 'a b; rm -rf /' " in s
    assert " '$(touch pwned)' " in s and " '' " in s


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_shell_accepts_the_script(shell, tmp_path):
    if not shutil.which(shell):
        pytest.skip(f"no {shell}")
    env = {"GOOD": "x'y $(z) `w`", "PATH": "/usr/bin:/bin"}
    path = tmp_path / "cmd.sh"
    path.write_text(_script(["printf", "%s\n", *NASTY], cwd="/tmp/a dir; ls", env=env))
    res = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, timeout=10)
    assert res.returncode == 0, res.stderr


def test_the_words_arrive_intact(tmp_path):
    """Run the script with the guest's /bin/sh: printf gets exactly our words,
    nothing is expanded or executed."""
    script = tmp_path / "cmd.sh"
    work = tmp_path / "work dir; x"
    work.mkdir()
    words = [w for w in NASTY if "\n" not in w]   # one word per output line
    env = {"GOOD": "x'y $(touch pwned2)", "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    script.write_text(uml.command_script(["sh", "-c", 'printf "%s\\n" "$PWD" "$GOOD" "$@"',
                                          "sh", *words], str(work), env))
    res = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, timeout=10,
                         cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:-1] == [str(work), env["GOOD"], *words]
    assert not list(tmp_path.rglob("pwned*"))


def test_env_keys_that_are_not_identifiers_are_dropped():
    env = {"GOOD_1": "1", "_UNDER": "2", "1BAD": "3", "BAD-KEY": "4", "BAD KEY": "5",
           "BAD=KEY": "6", "": "7", "A;B": "8", "PWD": "/skipped", "DISPLAY": ":0"}
    s = _script(["true"], env=env)
    exports = [ln.split("=", 1)[0].removeprefix("export ") for ln in s.splitlines()
               if ln.startswith("export ")]
    assert "GOOD_1" in exports and "_UNDER" in exports
    for bad in ("1BAD", "BAD-KEY", "BAD KEY", "BAD", "A;B", "PWD", "DISPLAY"):
        assert bad not in exports
    assert "export GOOD_1=1" in s


def test_non_ascii_env_keys_are_dropped(tmp_path):
    # dash exits on `export CAFÉ=1` (bad variable name) before reaching exec.
    s = _script(["true"], env={"CAFÉ": "1", "A²": "2"})
    assert "CAFÉ" not in s and "A²" not in s
    script = tmp_path / "cmd.sh"
    script.write_text(s)
    res = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, timeout=10)
    assert res.returncode == 0, res.stderr


def test_guest_protocol_travels_in_one_variable():
    s = _script(["true"], env={"WIRELAB_GUEST": "forged", "WIRELAB_RESULTS": "/r"})
    lines = s.splitlines()
    ours = [ln for ln in lines if ln.startswith("export WIRELAB_GUEST=")]
    # Ours comes after anything copied from the caller's environment.
    assert lines.index(ours[-1]) > lines.index("export WIRELAB_GUEST=forged")
    value = json.loads(shlex.split(ours[-1].split("=", 1)[1])[0])
    assert value == {"outputs": f"{uml.GUEST_CTL}/outputs", "stderr_tty": sys.stderr.isatty(),
                     "idle": "sleep"}
    assert not [ln for ln in lines if ln.startswith(("export WIRELAB_IN_UML",
                                                     "export WIRELAB_GUEST_OUTPUTS"))]
    assert lines[-1] == "exec true"


def test_kernel_cmdline():
    line = uml.kernel_cmdline("/tmp/ctl", 512)
    assert "ro" in line and "rootfstype=hostfs" in line and "rw" not in line
    assert "mem=512M" in line and "uml_dir=/tmp/ctl" in line and "WIRELAB_CTL=/tmp/ctl" in line
    inits = [w for w in line if w.startswith("init=")]
    assert len(inits) == 1
    init = inits[0].removeprefix("init=")
    assert os.path.isabs(init) and init.endswith("guest-init.sh")
    assert os.path.isfile(init) and os.access(init, os.X_OK)


def test_memory_mb(monkeypatch):
    monkeypatch.delenv("WIRELAB_UML_MEM_MB", raising=False)
    assert settings.from_environment().uml_mem_mb == 1024
    monkeypatch.setenv("WIRELAB_UML_MEM_MB", "256")
    assert settings.from_environment().uml_mem_mb == 256
    for bad, fragment in (("abc", "'abc' is not a whole number"), ("64", "64 is outside 128-16384"),
                          ("16385", "outside"), ("1.5", "not a whole number"), ("", "not a whole")):
        monkeypatch.setenv("WIRELAB_UML_MEM_MB", bad)
        with pytest.raises(EnvironmentProblem, match=fragment):
            settings.from_environment()


def test_inside_guest(monkeypatch):
    monkeypatch.delenv("WIRELAB_GUEST", raising=False)
    assert not settings.inside_guest() and settings.guest() is None
    monkeypatch.setenv("WIRELAB_GUEST", '{"outputs": "/x", "stderr_tty": false}')
    assert settings.inside_guest() and settings.guest()["outputs"] == "/x"


def test_results_outside_the_project_are_written_through(tmp_path):
    res = tmp_path / "r"
    assert uml.write_through(str(res), "/work/project") == [str(res)] and res.is_dir()
    assert uml.write_through("/work/project/results", "/work/project") == []
    with pytest.raises(EnvironmentProblem, match="system directory"):
        uml.write_through("/etc", "/work/project")


def test_folders_under_tmp_are_mounted_for_reading():
    got = uml.visible(["/tmp/venv", "/usr/lib", "/tmp/venv/lib", "/tmp/w/exp"], ["/tmp/w"])
    assert got == ["/tmp/venv"]


# --- the idle shim (idle_shim.c) -----------------------------------------------------

_SUSPEND = """
import ctypes, json, resource, signal, sys, time
got = []
signal.signal(signal.SIGALRM, lambda *a: got.append(time.monotonic()))
signal.signal(signal.SIGUSR1, lambda *a: got.append(-1))
libc = ctypes.CDLL(None, use_errno=True)
block, empty = ctypes.create_string_buffer(128), ctypes.create_string_buffer(128)
libc.sigemptyset(empty)
libc.sigemptyset(block)
libc.sigaddset(block, signal.SIGUSR1)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
signal.setitimer(signal.ITIMER_REAL, 0.3)
t0, r0 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
ret = libc.sigsuspend(block)     # SIGUSR1 stays blocked: only SIGALRM may end it
err = ctypes.get_errno()
t1, r1 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
print(json.dumps({"ret": ret, "eintr": err == 4, "wall": t1 - t0, "handled": len(got),
                  "cpu": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
                  "usr1_still_blocked": signal.SIGUSR1 in mask, "alrm_blocked": signal.SIGALRM in mask}))
"""


def _suspend_with_shim(mode: str) -> dict:
    lib = uml.idle_shim()
    if lib is None:
        pytest.skip("no C compiler to build the idle shim")
    env = {**os.environ, "LD_PRELOAD": str(lib), "WIRELAB_UML_IDLE": mode}
    res = subprocess.run([sys.executable, "-c", _SUSPEND], capture_output=True, text=True,
                         timeout=30, env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize("mode", ["poll", "sleep"])
def test_the_idle_shim_keeps_sigsuspend_s_meaning(mode, tmp_path, monkeypatch):
    """Either way sigsuspend() returns -1/EINTR once the alarm's handler has run, not before,
    with the caller's mask back as it was; polling spends the wait on the CPU, sleeping
    does not."""
    monkeypatch.setattr(settings, "_current", None)
    monkeypatch.setenv("WIRELAB_CACHE_DIR", str(tmp_path))
    out = _suspend_with_shim(mode)
    assert out["ret"] == -1 and out["eintr"] and out["handled"] == 1
    assert 0.28 <= out["wall"] < 2.0
    assert out["usr1_still_blocked"] and not out["alrm_blocked"]
    if mode == "poll":
        assert out["cpu"] >= 0.5 * out["wall"]
    else:
        assert out["cpu"] < 0.1


def test_idle_mode_polls_unless_a_person_is_at_the_terminal(monkeypatch):
    monkeypatch.setattr(settings, "_current", None)
    monkeypatch.delenv("WIRELAB_UML_IDLE", raising=False)
    assert uml.idle_mode(interactive=False) == "poll"
    assert uml.idle_mode(interactive=True) == "sleep"
    monkeypatch.setattr(settings, "_current", None)
    monkeypatch.setenv("WIRELAB_UML_IDLE", "sleep")
    assert uml.idle_mode(interactive=False) == "sleep"
    monkeypatch.setattr(settings, "_current", None)
    monkeypatch.setenv("WIRELAB_UML_IDLE", "spin")
    with pytest.raises(BadInput, match="WIRELAB_UML_IDLE='spin': allowed poll, sleep"):
        settings.current()
    monkeypatch.setattr(settings, "_current", None)


def test_the_guest_is_told_how_it_idles():
    s = _script(["true"])
    line = next(ln for ln in s.splitlines() if settings.GUEST_ENV in ln)
    assert json.loads(shlex.split(line.split("=", 1)[1])[0])["idle"] == "sleep"
    s = uml.command_script(["true"], "/", {}, "poll")
    line = next(ln for ln in s.splitlines() if settings.GUEST_ENV in ln)
    assert json.loads(shlex.split(line.split("=", 1)[1])[0])["idle"] == "poll"
