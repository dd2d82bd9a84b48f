"""scripts/provision.sh is idempotent and refuses systems it does not support."""

import os
import pathlib
import subprocess

import pytest

PROJECT_DIR = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = PROJECT_DIR / "scripts" / "provision.sh"
PACKAGES = PROJECT_DIR / "scripts" / "packages.txt"
STAMP = PROJECT_DIR / ".venv" / ".wirelab-provisioned"

pytestmark = pytest.mark.lab  # provisions the machine: root, apt, the network


@pytest.fixture
def as_root():
    """Fail, never skip: CI and `sudo make test` run these as root, so a non-root run is
    a wrong invocation, not a reason to go green."""
    if os.geteuid() != 0:
        pytest.fail("this test provisions the machine and must run as root: sudo make test")


def package_names(text):
    """Every package named in packages.txt text: all alternatives, all tags."""
    names = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            names.extend(words[0].split("|"))
    return names


def dpkg_state(names):
    """{package: 'Status Version'} as dpkg sees it now ('' when dpkg knows nothing)."""
    state = {}
    for name in names:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", name],
                             capture_output=True, text=True)
        state[name] = out.stdout if out.returncode == 0 else ""
    return state


def run_provision(*args, env=None):
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=PROJECT_DIR,
                          env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=900)


def test_package_list_parses():
    names = package_names(PACKAGES.read_text())
    for required in ("mininet", "openvswitch-switch", "iperf3", "bind9", "user-mode-linux",
                     "python3-venv", "nginx-light", "nginx", "vagrant"):
        assert required in names, f"{required} missing from {PACKAGES}"


@pytest.mark.parametrize("args", [(), ("--with-test-tools",)], ids=["plain", "test-tools"])
def test_second_run_changes_nothing(as_root, args):
    names = package_names(PACKAGES.read_text())
    assert STAMP.exists(), f"{STAMP} missing: provision first (make test does)"
    stamp_before = STAMP.read_text()
    stamp_mtime = STAMP.stat().st_mtime_ns
    packages_before = dpkg_state(names)

    result = run_provision(*args)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines, "provision printed nothing"
    assert lines[-1].startswith("provision: nothing to change ("), result.stdout
    assert "apt-get" not in result.stdout
    assert STAMP.read_text() == stamp_before
    assert STAMP.stat().st_mtime_ns == stamp_mtime
    assert dpkg_state(names) == packages_before


@pytest.mark.parametrize("os_release, pretty", [
    ('ID=fedora\nVERSION_ID=40\nPRETTY_NAME="Fedora Linux 40 (Forty)"\n',
     "Fedora Linux 40 (Forty)"),
    ('ID=debian\nVERSION_ID="11"\nPRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\n',
     "Debian GNU/Linux 11 (bullseye)"),
    ('ID=ubuntu\nVERSION_ID="20.04"\nPRETTY_NAME="Ubuntu 20.04.6 LTS"\n',
     "Ubuntu 20.04.6 LTS"),
], ids=["fedora-40", "debian-11", "ubuntu-20.04"])
def test_unsupported_os_is_refused(tmp_path, os_release, pretty):
    fake = tmp_path / "os-release"
    fake.write_text(os_release)
    env = dict(os.environ, WIRELAB_OS_RELEASE=str(fake))

    result = run_provision(env=env)

    assert result.returncode != 0
    assert f"unsupported OS: {pretty}; wirelab supports" in result.stderr
    assert "Debian 12" in result.stderr
    # Refused before doing anything: no step ran.
    assert "apt:" not in result.stdout and "venv:" not in result.stdout


def test_missing_os_release_is_refused(tmp_path):
    env = dict(os.environ, WIRELAB_OS_RELEASE=str(tmp_path / "absent"))
    result = run_provision(env=env)
    assert result.returncode != 0
    assert "cannot read" in result.stderr and "wirelab supports" in result.stderr
