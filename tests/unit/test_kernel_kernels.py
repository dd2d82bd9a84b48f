"""wirelab.kernel.kernels: which UML kernels there are, how one is started, and how
Debian 13's is found in a signed package index -- without the network or root."""
from __future__ import annotations

import hashlib
import lzma
from pathlib import Path

import pytest

from wirelab import settings
from wirelab.errors import BadInput, EnvironmentProblem
from wirelab.kernel import kernels


def _tree(root: Path, release: str) -> None:
    d = root / release
    d.mkdir(parents=True)
    (d / "modules.dep").write_text("")


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A system kernel 6.1.176 and a complete Debian 13 cache with 6.12.113."""
    sysmods = tmp_path / "sys/modules"
    _tree(sysmods, "6.1.176")
    binary = tmp_path / "sys/linux.uml"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setattr(kernels, "SYSTEM_MODULES", sysmods)
    settings.override(uml_binary=binary, uml_kernel="")
    cache = tmp_path / "cache"
    monkeypatch.setattr(kernels, "cache_root", lambda: cache)
    root = cache / "debian13"
    _tree(root / "usr/lib/uml/modules", "6.12.113")
    (root / "usr/bin").mkdir(parents=True)
    (root / kernels.BINARY).write_text("")
    (root / ".complete").write_text("Debian 13 user-mode-linux 6.12um1+b22, Debian 13 libc6 2.41\n")
    yield tmp_path
    settings.reset()


def test_both_kernels_by_their_release(machine):
    have = kernels.available_kernels()
    assert list(have) == ["6.1", "6.12"]
    assert have["6.1"].origin == "system" and have["6.1"].release == "6.1.176"
    assert have["6.12"].release == "6.12.113" and "libc6 2.41" in have["6.12"].origin


def test_debian_13s_kernel_is_the_copy_pointed_at_its_own_c_library(machine):
    assert kernels.select("").command() == [str(machine / "sys/linux.uml")]
    assert kernels.select("").loader is None
    k = kernels.select("6.12")
    assert k.command() == [str(machine / "cache/debian13/usr/bin/linux.uml.wirelab")]
    assert k.loader == machine / "cache/debian13/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"


def test_an_unknown_or_missing_kernel_is_bad_input_naming_what_there_is(machine):
    with pytest.raises(BadInput, match=r"uml:5.10: no such UML kernel here; available: uml:6.1, uml:6.12"):
        kernels.select("5.10")
    (machine / "cache/debian13/.complete").unlink()        # an interrupted fetch does not count
    with pytest.raises(BadInput, match=r"make setup. fetches Debian 13's 6.12\); available: uml:6.1$"):
        kernels.select("6.12")


def test_no_system_kernel_is_an_environment_problem(machine, monkeypatch):
    monkeypatch.setattr(kernels, "SYSTEM_MODULES", machine / "nothing")
    with pytest.raises(EnvironmentProblem, match="user-mode-linux"):
        kernels.select("")


def _stanza(pkg: str, version: str, data: bytes, arch: str = "amd64") -> str:
    return (f"Package: {pkg}\nVersion: {version}\nArchitecture: {arch}\nFilename: pool/{pkg}.deb\n"
            f"Size: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n")


def test_packages_are_taken_only_from_an_index_the_signed_release_vouches_for(monkeypatch):
    index = "\n".join([_stanza("libc6", "2.41-12", b"c", "i386"), _stanza("libc6", "2.41-12", b"c"),
                       _stanza("hello", "1", b"h"), _stanza("user-mode-linux", "6.12um1", b"u")])
    blob = lzma.compress(index.encode())
    name = "main/binary-amd64/Packages.xz"
    monkeypatch.setattr(kernels, "_get", lambda url: blob)
    release = f"SHA256:\n {hashlib.sha256(blob).hexdigest()} {len(blob)} {name}\n"
    got = kernels._packages(release)
    assert set(got) == {"libc6", "user-mode-linux"}
    assert got["libc6"]["Architecture"] == "amd64" and got["user-mode-linux"]["Version"] == "6.12um1"
    with pytest.raises(EnvironmentProblem, match="SHA256 mismatch"):
        kernels._packages(release.replace(hashlib.sha256(blob).hexdigest()[:8], "00000000"))
    with pytest.raises(EnvironmentProblem, match="lists no"):
        kernels._packages("SHA256:\n")
