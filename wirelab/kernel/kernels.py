"""The User-Mode Linux kernels a lab can boot: the system's (Debian's user-mode-linux
package, 6.1 on Debian 12) and Debian 13's 6.12, fetched as Debian packages and unpacked
into a cache under the project -- never installed over the system's own.

Debian 13's ``linux.uml`` needs glibc 2.38 or later; on an older system it runs with
Debian 13's own loader and C library from the same cache, which is why libc6 is fetched
with it: ``patchelf`` points the binary's interpreter and library path at them.  (Starting
it as ``ld-linux-x86-64.so.2 linux.uml`` does not work: the kernel then sets the program
break after the loader, and UML sizes its physical memory from the break: "Too few
physical memory! Needed=93824198115328".)  A debootstrap'd Debian 13 root would also work
but costs 300 MB and a chroot per boot for the same binary.

Downloads are checked the way apt checks them: the suite's InRelease is verified with
``gpgv`` against Debian's archive keyring, Packages.xz against the SHA256 InRelease lists,
each .deb against the SHA256 Packages lists."""
from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from wirelab import settings
from wirelab.errors import BadInput, EnvironmentProblem

SYSTEM_MODULES = Path("/usr/lib/uml/modules")
MIRROR = os.environ.get("WIRELAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE, ARCH = "trixie", "amd64"
PACKAGES = ("user-mode-linux", "libc6")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
LIBDIR = "usr/lib/x86_64-linux-gnu"
LOADER = "ld-linux-x86-64.so.2"
BINARY = "usr/bin/linux.uml.wirelab"        # the package's, pointed at its own C library


@dataclass(frozen=True)
class Kernel:
    name: str                       # "6.1", "6.12": the release's major.minor
    release: str                    # "6.12.113": its module tree
    binary: Path
    module_root: Path               # holds <release>/
    origin: str                     # "system" or the packages it came from
    loader: Path | None = None      # its dynamic loader when not the system's

    def command(self) -> list[str]:
        """How to start this kernel (before its command line)."""
        return [str(self.binary)]


def cache_root() -> Path:
    """$WIRELAB_KERNELS_DIR, else build/kernels in a checkout, else the cache directory's
    kernels/."""
    if os.environ.get("WIRELAB_KERNELS_DIR"):
        return Path(os.environ["WIRELAB_KERNELS_DIR"])
    root = Path(__file__).resolve().parents[2]          # a checkout: wirelab/ beside setup.cfg
    proj = root if (root / "setup.cfg").is_file() and (root / "wirelab").is_dir() else None
    return (proj / "build" / "kernels") if proj else settings.current().cache_dir / "kernels"


def _tree(root: Path) -> str | None:
    trees = sorted(p.name for p in root.glob("*") if (p / "modules.dep").exists())
    return trees[-1] if trees else None


def _major_minor(release: str) -> str:
    m = re.match(r"(\d+\.\d+)", release)
    return m.group(1) if m else release


def system_kernel() -> Kernel | None:
    release = _tree(SYSTEM_MODULES)
    binary = settings.current().uml_binary
    if release is None or not os.access(binary, os.X_OK):
        return None
    return Kernel(_major_minor(release), release, binary, SYSTEM_MODULES, "system")


def debian13_kernel() -> Kernel | None:
    root = cache_root() / "debian13"
    release = _tree(root / "usr/lib/uml/modules")
    binary = root / BINARY
    if release is None or not binary.exists() or not (root / ".complete").exists():
        return None
    return Kernel(_major_minor(release), release, binary, root / "usr/lib/uml/modules",
                  (root / ".complete").read_text().strip(), root / LIBDIR / LOADER)


def available_kernels() -> dict[str, Kernel]:
    """{name: kernel} of every UML kernel this machine can boot now."""
    out: dict[str, Kernel] = {}
    for k in (system_kernel(), debian13_kernel()):
        if k is not None and k.name not in out:
            out[k.name] = k
    return out


def select(name: str) -> Kernel:
    """The kernel NAME ("" = the system's) or a clear error naming what there is."""
    have = available_kernels()
    if not name:
        k = system_kernel()
        if k is None:
            raise EnvironmentProblem("no system UML kernel: install Debian's user-mode-linux")
        return k
    if name in have:
        return have[name]
    hint = " (`sudo make setup` fetches Debian 13's 6.12)" if name == "6.12" else ""
    raise BadInput(f"--kernel uml:{name}: no such UML kernel here{hint}; available: "
                   + (", ".join(f"uml:{n}" for n in have) or "none"))


# -- fetching Debian 13's ------------------------------------------------------------

def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as resp:     # noqa: S310 (Debian's mirror)
        return resp.read()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verified_release() -> str:
    """The suite's InRelease, its signature checked by gpgv against Debian's keyring."""
    signed = _get(f"{MIRROR}/dists/{SUITE}/InRelease")
    if not KEYRING.exists() or shutil.which("gpgv") is None:
        raise EnvironmentProblem(f"cannot verify Debian's InRelease: needs gpgv and {KEYRING} "
                                 "(packages gpgv, debian-archive-keyring)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "InRelease")
        path.write_bytes(signed)
        out = Path(tmp, "Release")
        res = subprocess.run(["gpgv", "--keyring", str(KEYRING), "--output", str(out), str(path)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise EnvironmentProblem(f"Debian's {SUITE} InRelease failed its signature check: "
                                     f"{res.stderr.strip()[-300:]}")
        return out.read_text()


def _packages(release: str) -> dict[str, dict[str, str]]:
    """{package: {Filename, SHA256, Version}} for PACKAGES, from Packages.xz checked
    against RELEASE."""
    name = f"main/binary-{ARCH}/Packages.xz"
    want = re.search(rf"^ ([0-9a-f]{{64}})\s+\d+\s+{re.escape(name)}$", release, re.M)
    if want is None:
        raise EnvironmentProblem(f"{SUITE}'s Release lists no {name}")
    data = _get(f"{MIRROR}/dists/{SUITE}/{name}")
    if _sha256(data) != want.group(1):
        raise EnvironmentProblem(f"{name}: SHA256 mismatch against the signed Release")
    out: dict[str, dict[str, str]] = {}
    for stanza in lzma.decompress(data).decode().split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z0-9-]+): (.*)$", stanza, re.M))
        if fields.get("Package") in PACKAGES and fields.get("Architecture") in (ARCH, None):
            out.setdefault(fields["Package"], fields)
    missing = set(PACKAGES) - set(out)
    if missing:
        raise EnvironmentProblem(f"{SUITE} has no {', '.join(sorted(missing))} for {ARCH}")
    return out


def _point_at_own_libc(tmp_root: Path, root: Path) -> None:
    """A copy of the kernel binary whose interpreter and library path are the cache's
    (under ROOT, where TMP_ROOT will be renamed)."""
    if shutil.which("patchelf") is None:
        raise EnvironmentProblem("pointing Debian 13's linux.uml at its own C library needs "
                                 "patchelf (scripts/packages.txt)")
    lib = root / LIBDIR
    shutil.copy2(tmp_root / "usr/bin/linux.uml", tmp_root / BINARY)
    subprocess.run(["patchelf", "--set-interpreter", str(lib / LOADER), "--set-rpath", str(lib),
                    str(tmp_root / BINARY)], check=True, capture_output=True)


def fetch_debian13(progress=print) -> Kernel:
    """Download, verify and unpack Debian 13's UML kernel and C library into the cache
    (idempotent: a complete cache is kept)."""
    have = debian13_kernel()
    if have is not None:
        return have
    if shutil.which("dpkg-deb") is None:
        raise EnvironmentProblem("unpacking Debian packages needs dpkg-deb")
    root = cache_root() / "debian13"
    tmp_root = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp_root, ignore_errors=True)
    tmp_root.mkdir(parents=True)
    try:
        pkgs = _packages(_verified_release())
        for name in PACKAGES:
            meta = pkgs[name]
            progress(f"kernels: fetching {name} {meta['Version']} ({int(meta['Size']) >> 20} MiB)")
            deb = _get(f"{MIRROR}/{meta['Filename']}")
            if _sha256(deb) != meta["SHA256"]:
                raise EnvironmentProblem(f"{meta['Filename']}: SHA256 mismatch")
            path = tmp_root / f"{name}.deb"
            path.write_bytes(deb)
            subprocess.run(["dpkg-deb", "-x", str(path), str(tmp_root)], check=True)
            path.unlink()
        _point_at_own_libc(tmp_root, root)
        (tmp_root / ".complete").write_text(
            ", ".join(f"Debian 13 {n} {pkgs[n]['Version']}" for n in PACKAGES) + "\n")
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp_root, root)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    got = debian13_kernel()
    if got is None:
        raise EnvironmentProblem(f"Debian 13's user-mode-linux unpacked into {root} has no kernel")
    return got
