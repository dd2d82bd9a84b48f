"""The Vagrantfile is valid and provisions a Debian 12 VM with scripts/provision.sh."""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

PROJECT_DIR = pathlib.Path(__file__).resolve().parents[2]
VAGRANTFILE = PROJECT_DIR / "Vagrantfile"

pytestmark = pytest.mark.lab  # the test tools provisioning installs (vagrant)


def vagrant_validate(tmp_path, **extra_env):
    vagrant = shutil.which("vagrant")
    if vagrant is None:
        pytest.fail("vagrant is not installed; `make setup-test` (scripts/provision.sh "
                    "--with-test-tools) installs it, and CI runs that before the tests")
    env = dict(os.environ,
               VAGRANT_HOME=str(tmp_path / "vagrant.d"),
               VAGRANT_DOTFILE_PATH=str(tmp_path / "dot-vagrant"),
               VAGRANT_CHECKPOINT_DISABLE="1",
               **extra_env)
    # Debian's vagrant 2.3.4 has no provider installed: plain `validate` fails for want
    # of one, --ignore-provider checks everything else.
    return subprocess.run([vagrant, "validate", "--ignore-provider"], cwd=PROJECT_DIR,
                          env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)


def test_vagrantfile_validates(tmp_path):
    result = vagrant_validate(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


def test_vagrantfile_rejects_bad_vm_size(tmp_path):
    result = vagrant_validate(tmp_path, WIRELAB_VM_MEMORY="lots")
    assert result.returncode != 0
    assert 'WIRELAB_VM_MEMORY="lots"' in result.stdout + result.stderr


def test_vagrantfile_is_bookworm_provisioned_by_the_ci_script():
    text = VAGRANTFILE.read_text()
    assert re.search(r'config\.vm\.box\s*=\s*"debian/bookworm64"', text)
    assert re.search(r'bash /vagrant/scripts/provision\.sh', text)
    assert re.search(r'config\.vm\.synced_folder\s+"\.",\s*"/vagrant"', text)
