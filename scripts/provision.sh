#!/usr/bin/env bash
# Provision a machine for wirelab: Debian packages, the project virtualenv, the editable
# install. One script for `make setup`, CI and the Vagrantfile, so what CI proves is what
# a VM gets. Idempotent: a second run changes nothing and takes seconds.
#
# Usage: scripts/provision.sh [--with-test-tools]
#   --with-test-tools   also install the test tools of scripts/packages.txt ([test]);
#                       the same as WIRELAB_TEST_TOOLS=1.
# Environment:
#   WIRELAB_OS_RELEASE  os-release file to read (default /etc/os-release; tests use it)
#
# It never changes host sysctls, iptables or routes. Installing bind9, nginx or
# openvswitch-switch may start their system services; wirelab starts its own instances
# inside lab namespaces and neither needs nor stops the system ones.
set -euo pipefail

readonly MIN_PYTHON=(3 11)  # setup.cfg python_requires
readonly SUPPORTED="Debian 12 (reference), Debian 13, Ubuntu 22.04, Ubuntu 24.04"

# System paths first: apt/dpkg need the sbin directories, and a python3 from pyenv or
# similar earlier on PATH must never be picked up by accident.
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"

script_path=$(readlink -f "${BASH_SOURCE[0]}")
project_dir=$(dirname "$(dirname "$script_path")")
packages_file="$project_dir/scripts/packages.txt"
venv="$project_dir/.venv"
stamp="$venv/.wirelab-provisioned"
os_release="${WIRELAB_OS_RELEASE:-/etc/os-release}"

with_test_tools=0
[ "${WIRELAB_TEST_TOOLS:-0}" = 1 ] && with_test_tools=1
for arg in "$@"; do
    case "$arg" in
        --with-test-tools) with_test_tools=1 ;;
        -h|--help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$script_path"; exit 0 ;;
        *) echo "provision: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

start_ns=$(date +%s%N)
changed=()

say()  { printf 'provision: %s\n' "$*"; }
die()  { printf 'provision: error: %s\n' "$*" >&2; exit 1; }
elapsed() { awk -v a="$start_ns" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f s", (b - a) / 1e9 }'; }

# --- operating system ------------------------------------------------------------------

# os_field KEY: the value of KEY in the os-release file, unquoted. Parsed, not sourced:
# the file may come from the environment.
os_field() {
    sed -n "s/^$1=//p" "$os_release" | head -n 1 | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/"
}

[ -r "$os_release" ] || die "cannot read $os_release; wirelab supports $SUPPORTED"
os_id=$(os_field ID)
os_version=$(os_field VERSION_ID)
os_pretty=$(os_field PRETTY_NAME)
os_pretty=${os_pretty:-${os_id:-unknown} ${os_version}}
case "$os_id-$os_version" in
    debian-12|debian-13|ubuntu-22.04|ubuntu-24.04) ;;
    *) echo "unsupported OS: $os_pretty; wirelab supports $SUPPORTED" >&2; exit 1 ;;
esac
say "os: $os_pretty ... ok"

# --- root --------------------------------------------------------------------------------

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        say "not root; re-running with sudo"
        # sudo resets the environment: pass the test-tools switch as a flag.
        extra=()
        [ "$with_test_tools" = 1 ] && extra=(--with-test-tools)
        exec sudo -- bash "$script_path" "$@" "${extra[@]}"
    fi
    die "must run as root, and sudo is not installed: run it as root (e.g. su -c 'bash $script_path')"
fi

# --- Debian packages -------------------------------------------------------------------

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

has_candidate() {
    local c
    c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2; exit }')
    [ -n "$c" ] && [ "$c" != "(none)" ]
}

# Entries of packages.txt that apply here, one a line: "alt1|alt2 OPTIONAL(0|1)".
wanted_entries() {
    local line words word optional
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%%#*}
        read -r -a words <<<"$line" || true
        [ "${#words[@]}" -gt 0 ] || continue
        optional=0
        for word in "${words[@]:1}"; do
            case "$word" in
                "[test]") [ "$with_test_tools" = 1 ] || continue 2; optional=1 ;;
                "[os=$os_id-$os_version]") ;;
                "[os="*) continue 2 ;;
                *) die "$packages_file: unknown tag '$word' in: $line" ;;
            esac
        done
        printf '%s %s\n' "${words[0]}" "$optional"
    done <"$packages_file"
}

[ -r "$packages_file" ] || die "missing $packages_file"
entries_text=$(wanted_entries)  # an assignment, so a die() in it stops the script
mapfile -t entries <<<"$entries_text"
missing=()
for entry in "${entries[@]}"; do
    read -r alts _ <<<"$entry"
    IFS='|' read -r -a alternatives <<<"$alts"
    ok=0
    for p in "${alternatives[@]}"; do installed "$p" && { ok=1; break; }; done
    [ "$ok" = 1 ] || missing+=("$entry")
done

if [ "${#missing[@]}" -eq 0 ]; then
    say "apt: ${#entries[@]} packages ... ok (already present)"
else
    export DEBIAN_FRONTEND=noninteractive
    apt_opts=(-o DPkg::Lock::Timeout=600)
    # Refresh the package lists unless all that is missing is optional and absent from
    # the lists we have (a test tool this system does not package): then a rerun must
    # stay quick and change nothing.
    refresh=0
    compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || refresh=1
    for entry in "${missing[@]}"; do
        read -r alts optional <<<"$entry"
        IFS='|' read -r -a alternatives <<<"$alts"
        [ "$optional" = 1 ] || refresh=1
        for p in "${alternatives[@]}"; do has_candidate "$p" && refresh=1; done
    done
    if [ "$refresh" = 1 ]; then
        say "apt: ${#missing[@]} of ${#entries[@]} entries missing; apt-get update"
        apt-get "${apt_opts[@]}" update
    fi
    to_install=()
    unavailable=()
    for entry in "${missing[@]}"; do
        read -r alts optional <<<"$entry"
        IFS='|' read -r -a alternatives <<<"$alts"
        pick=""
        for p in "${alternatives[@]}"; do has_candidate "$p" && { pick=$p; break; }; done
        if [ -n "$pick" ]; then
            to_install+=("$pick")
        elif [ "$optional" = 1 ]; then
            say "apt: skipped ${alts//|/ or }: no install candidate on $os_pretty"
        else
            unavailable+=("${alts//|/ or }")
        fi
    done
    if [ "${#unavailable[@]}" -gt 0 ]; then
        hint=""
        [ "$os_id" = ubuntu ] && hint=" (is the 'universe' component enabled?)"
        die "no install candidate on $os_pretty for: ${unavailable[*]}$hint"
    fi
    if [ "${#to_install[@]}" -gt 0 ]; then
        say "apt: installing ${to_install[*]}"
        apt-get "${apt_opts[@]}" install -y --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${to_install[@]}"
        for p in "${to_install[@]}"; do installed "$p" || die "apt-get did not install $p"; done
        n=${#to_install[@]}
        changed+=("apt($n package$([ "$n" = 1 ] || echo s))")
    fi
fi

# --- virtualenv --------------------------------------------------------------------------

# The system interpreter (Debian's, so Debian's mininet package is importable through
# --system-site-packages); never whatever python3 comes first on PATH.
min_python="${MIN_PYTHON[0]}.${MIN_PYTHON[1]}"
python_new_enough() {
    "$1" -c "import sys; sys.exit(sys.version_info < (${MIN_PYTHON[0]}, ${MIN_PYTHON[1]}))" 2>/dev/null
}
python=""
for candidate in /usr/bin/python3 "/usr/bin/python$min_python"; do
    if [ -x "$candidate" ] && python_new_enough "$candidate"; then
        python=$candidate
        break
    fi
done
[ -n "$python" ] || die "no system Python >= $min_python in /usr/bin on $os_pretty"
python_home=$(dirname "$(readlink -f "$python")")

# venv_problem: why the existing .venv is not the one we want (empty when it is).
venv_problem() {
    local cfg="$venv/pyvenv.cfg"
    [ -f "$cfg" ] || { echo "no $cfg"; return; }
    grep -qx 'include-system-site-packages = true' "$cfg" || { echo "no system site packages"; return; }
    grep -qx "home = $python_home" "$cfg" || { echo "not made from $python_home ($(grep '^home' "$cfg"))"; return; }
    python_new_enough "$venv/bin/python" || echo "$venv/bin/python does not run or is older than $min_python"
}

if [ ! -e "$venv" ]; then
    say "venv: creating $venv with $python"
    "$python" -m venv --system-site-packages "$venv"
    changed+=(venv)
else
    problem=$(venv_problem)
    if [ -z "$problem" ]; then
        say "venv: $venv ... ok (already present)"
    else
        say "venv: recreating $venv ($problem)"
        rm -rf -- "$venv"
        "$python" -m venv --system-site-packages "$venv"
        changed+=(venv)
    fi
fi

# --- editable install --------------------------------------------------------------------

digest=$(cat "$project_dir/setup.cfg" "$project_dir/pyproject.toml" "$packages_file" \
    | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] && [ -x "$venv/bin/wirelab" ]; then
    say "pip: wirelab[test,controllers] ... ok (already present)"
else
    say "pip: installing wirelab[test,controllers] (editable) into $venv"
    (cd "$project_dir" && "$venv/bin/pip" install --no-input --progress-bar off -e '.[test,controllers]')
    printf '%s\n' "$digest" >"$stamp"
    changed+=(pip)
fi

# A check, not a change: the venv sees Debian's mininet and the installed dependencies.
"$venv/bin/python" -c 'import mininet.net, pyroute2' \
    || die "$venv/bin/python cannot import mininet and pyroute2"
say "check: venv imports mininet, pyroute2 ... ok"

# A second UML kernel: Debian 13's 6.12 (and the C library it needs), fetched as Debian
# packages and unpacked under build/kernels, never installed over the system's own.
# WIRELAB_SECOND_KERNEL=0 skips it (the 6.12 tests then fail and say so).
if [ "${WIRELAB_SECOND_KERNEL:-1}" = 1 ]; then
    if "$venv/bin/wirelab" kernels --json | grep -q '"6.12"'; then
        say "kernels: uml:6.12 ... ok (already present)"
    else
        say "kernels: fetching Debian 13's UML kernel into $project_dir/build/kernels"
        "$venv/bin/wirelab" kernels fetch || die "could not fetch Debian 13's UML kernel"
        changed+=(kernels)
    fi
fi

if [ "${#changed[@]}" -eq 0 ]; then
    say "nothing to change ($(elapsed))"
else
    summary=$(printf '%s, ' "${changed[@]}")
    say "changed: ${summary%, } ($(elapsed))"
fi
