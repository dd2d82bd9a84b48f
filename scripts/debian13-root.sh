#!/usr/bin/env bash
# The Debian 13 lane: wirelab as a new user on Debian 13 (trixie) gets it, inside a
# Debian 13 root made with debootstrap. Run by `make test-debian13` (and so by `make test`
# and CI). Idempotent: the root is made once and cached OUTSIDE the clone, so a fresh CI
# clone reuses it; a second run only refreshes the project copy and runs the checks.
#
# Usage: scripts/debian13-root.sh [--shell | --root-only]
#   (no argument)  make or reuse the root, then inside it (chroot): provision for tests
#                  (scripts/provision.sh --with-test-tools), the unit tests under Debian 13's
#                  Python 3.13 (`make test-unit`: ruff, mypy, pytest -m "not lab"), and one
#                  quick experiment on Debian 13's own UML kernel 6.12
#                  (`wirelab run pooling --quick --kernel uml:6.12`, which must match)
#   --root-only    make or reuse the root and copy the project in; no checks
#   --shell        the same, then an interactive shell in the root (mounts undone after)
# Environment:
#   WIRELAB_DEBIAN13_ROOT  where the root is cached (default /var/cache/wirelab/debian13-root)
#   WIRELAB_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#
# The archive is verified as debootstrap does: the suite's Release signature is checked by
# gpgv against debian-archive-keyring, every package by its checksum. The project is
# copied to /srv/wirelab in the root (its .venv, build/ and results/ stay there, apart from
# the clone's). /proc, /sys and /dev are bind-mounted (rslave, so nothing propagates back),
# /tmp and /run are fresh tmpfs (Debian 13's /tmp is a tmpfs; UML keeps guest memory in
# /dev/shm, the host's tmpfs through the /dev bind), and a trap undoes every mount on exit,
# error or Ctrl-C. Services that packages would start are refused (policy-rc.d), so
# nothing listens on the host's ports. Nothing outside the cache directory is changed.
set -euo pipefail

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"

script_path=$(readlink -f "${BASH_SOURCE[0]}")
project_dir=$(dirname "$(dirname "$script_path")")
root=${WIRELAB_DEBIAN13_ROOT:-/var/cache/wirelab/debian13-root}
root=${root%/}
mirror=${WIRELAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
readonly suite=trixie keyring=/usr/share/keyrings/debian-archive-keyring.gpg
readonly stamp_name=.wirelab-debootstrap-complete
readonly guest_project=/srv/wirelab

mode=check
for arg in "$@"; do
    case "$arg" in
        --shell) mode=shell ;;
        --root-only) mode=root ;;
        -h|--help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$script_path"; exit 0 ;;
        *) echo "debian13: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

say() { printf 'debian13: %s\n' "$*"; }
die() { printf 'debian13: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }

case "$root" in
    /*) ;;
    *) die "WIRELAB_DEBIAN13_ROOT must be an absolute path: $root" ;;
esac
[ "$root" != / ] || die "WIRELAB_DEBIAN13_ROOT must not be /"
case "$root/" in
    "$project_dir"/*) die "the root must live outside the clone ($project_dir): $root" ;;
esac
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap and chroot): sudo make test-debian13"
for tool in debootstrap gpgv chroot findmnt flock tar; do
    command -v "$tool" >/dev/null 2>&1 \
        || die "needs $tool: run 'sudo bash scripts/provision.sh --with-test-tools'"
done
[ -r "$keyring" ] || die "needs $keyring (package debian-archive-keyring)"

lane_start=$(now)
mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock -w 1800 9 || die "another run holds $root.lock"

# --- mounts ------------------------------------------------------------------------------

# Everything mounted at or under PATH, deepest first.
mounts_under() {
    findmnt -rn -o TARGET | awk -v p="$1" '$0 == p || index($0, p "/") == 1' | sort -r
}

# Processes whose root is the chroot (a daemon a postinst started despite policy-rc.d, a
# guest left by Ctrl-C): this script started them, so it ends them, by pid.
end_chroot_processes() {
    local pid link pids=()
    for pid in /proc/[0-9]*; do
        link=$(readlink "$pid/root" 2>/dev/null) || continue
        [ "$link" = "$root" ] && pids+=("${pid#/proc/}")
    done
    [ "${#pids[@]}" -gt 0 ] || return 0
    say "ending ${#pids[@]} process(es) left in the root: ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    sleep 1
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

unmount_all() {
    local m
    [ -d "$root" ] || return 0
    end_chroot_processes
    while IFS= read -r m; do
        [ -n "$m" ] || continue
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null \
            || printf 'debian13: warning: could not unmount %s\n' "$m" >&2
    done < <(mounts_under "$root")
}

on_exit() {
    local rc=$?
    trap - EXIT INT TERM HUP
    unmount_all
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# A run killed with SIGKILL may have left mounts: undo them before anything else (and
# before any rm -rf could walk into the host's /dev or /proc).
unmount_all

mount_root() {
    local d
    for d in proc sys dev; do
        mkdir -p "$root/$d"
        mount --rbind "/$d" "$root/$d"
        mount --make-rslave "$root/$d"
    done
    mkdir -p "$root/tmp" "$root/run"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
    mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$root/run"
    mkdir -p -m 1777 "$root/run/lock"
}

# in_root CMD...: CMD inside the root, as root, in the project copy (so results/ is
# its), with a clean environment (the host's PIP_*, PYTHON* and PATH settings name things
# that do not exist there).
in_root() {
    chroot "$root" /usr/bin/env -i --chdir="$guest_project" \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" DEBIAN_FRONTEND=noninteractive \
        ${CI:+CI="$CI"} WIRELAB_SECOND_KERNEL=0 "$@"
}

# --- the root ----------------------------------------------------------------------------

t=$(now)
if [ -f "$root/$stamp_name" ]; then
    say "root: $root ... ok (cached: $(head -n 1 "$root/$stamp_name"))"
    debootstrap_s=0
else
    # Made beside its final place and renamed when complete: an interrupted debootstrap
    # leaves no half root that a later run would trust.
    partial="$root.partial"
    [ -z "$(mounts_under "$partial")" ] || die "$partial still has mounts; not removing it"
    rm -rf --one-file-system -- "$partial"
    [ -z "$(mounts_under "$root")" ] || die "$root still has mounts; not removing it"
    rm -rf --one-file-system -- "$root"
    say "root: debootstrap $suite from $mirror into $root (verified with $keyring)"
    debootstrap --variant=minbase --include=ca-certificates --keyring="$keyring" \
        --force-check-gpg "$suite" "$partial" "$mirror"
    printf '%s %s %s\n' "Debian $(cat "$partial/etc/debian_version")" "$suite" \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$partial/$stamp_name"
    mv -- "$partial" "$root"
    debootstrap_s=$(secs "$t")
    say "root: made in $debootstrap_s s"
fi
grep -q '^VERSION_ID="13"' "$root/etc/os-release" || die "$root is not Debian 13"

# Host-specific settings, refreshed every run (all inside the root):
# - name resolution;
# - no service may start from a postinst (the chroot shares the host's network);
# - the host's locally added CAs (a TLS-inspecting proxy's), so pip reaches PyPI as on
#   the host.
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\n# wirelab: no services start inside the Debian 13 root\nexit 101\n' \
    >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mkdir -p "$root/usr/local/share/ca-certificates"
ca_changed=0
if [ -d /usr/local/share/ca-certificates ]; then
    for crt in /usr/local/share/ca-certificates/*.crt; do
        [ -f "$crt" ] || continue
        cmp -s "$crt" "$root/usr/local/share/ca-certificates/${crt##*/}" && continue
        cp -- "$crt" "$root/usr/local/share/ca-certificates/"
        ca_changed=1
    done
fi

# --- the project copy --------------------------------------------------------------------

# The working tree as it is (not only what git has), without what the host made; the
# copy's own .venv, build/ and egg-info stay from run to run. The git directory comes
# along (a unit test lists the repository's files with `git ls-files`) unless .git is a
# worktree's pointer file; files are owned by root there, so git trusts the copy.
dest="$root$guest_project"
mkdir -p "$dest"
find "$dest" -mindepth 1 -maxdepth 1 ! -name .venv ! -name build ! -name '*.egg-info' \
    -exec rm -rf --one-file-system -- {} +
git_exclude=()
[ -d "$project_dir/.git" ] || git_exclude=(--exclude=./.git)
tar -C "$project_dir" "${git_exclude[@]}" \
    --exclude=./.venv --exclude=./build --exclude=./.vagrant \
    --exclude=./results --exclude='./*.egg-info' --exclude=__pycache__ \
    --exclude=.pytest_cache --exclude=.mypy_cache --exclude=.ruff_cache \
    -cf - . | tar -C "$dest" --no-same-owner -xf -
mkdir -p "$dest/results"
[ -f "$project_dir/results/README.md" ] && cp -- "$project_dir/results/README.md" "$dest/results/"
say "project: copied $project_dir to $guest_project in the root"

mount_root
if [ "$ca_changed" = 1 ]; then
    in_root update-ca-certificates >/dev/null
    say "ca: the host's local CAs added to the root's trust store"
fi

case "$mode" in
    root) say "root ready: $root (nothing run)"; exit 0 ;;
    shell) say "shell in $root (exit to leave; mounts are undone after)"
           in_root bash -l || true; exit 0 ;;
esac

# --- the checks --------------------------------------------------------------------------

t=$(now)
say "provision: scripts/provision.sh --with-test-tools"
in_root bash "$guest_project/scripts/provision.sh" --with-test-tools
provision_s=$(secs "$t")

python_version=$(in_root "$guest_project/.venv/bin/python" -c \
    'import sys; print(".".join(map(str, sys.version_info[:3])))')
say "unit tests: make test-unit under Python $python_version"
t=$(now)
in_root make -C "$guest_project" --no-print-directory test-unit
unit_s=$(secs "$t")

uml=$(in_root "$guest_project/.venv/bin/wirelab" kernels 2>&1 | tr '\n' ' ')
say "experiment: wirelab run pooling --quick --kernel uml:6.12 (kernels: $uml)"
t=$(now)
in_root "$guest_project/.venv/bin/wirelab" run pooling --quick --kernel uml:6.12
experiment_s=$(secs "$t")

say "passed: Debian $(cat "$root/etc/debian_version"), Python $python_version;" \
    "root ${debootstrap_s} s, provision $provision_s s, unit tests $unit_s s," \
    "experiment $experiment_s s; lane $(secs "$lane_start") s"
