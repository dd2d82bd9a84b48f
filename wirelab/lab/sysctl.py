"""Sysctls in a lab: where they live, and the baseline every lab namespace starts from.

A new network namespace copies some ``net.*`` values from the host's root namespace
(tcp_rmem, tcp_wmem, tcp_tw_reuse ... on the development machines the host's are tuned)
and takes others from the kernel's defaults.  So a lab sets :data:`BASELINE`, Linux's own
documented defaults (Documentation/networking/ip-sysctl.rst), in every host and router
before anything else: a measurement never depends on how the machine it ran on was tuned.
A sysctl this kernel does not have is left out (and the lab records what it set).
"""
from __future__ import annotations

import os
from pathlib import Path

#: Linux's defaults for the knobs the course's claims depend on.
BASELINE = {
    "net.ipv4.tcp_rmem": "4096 131072 6291456",
    "net.ipv4.tcp_wmem": "4096 16384 4194304",
    "net.ipv4.tcp_timestamps": "1",
    "net.ipv4.tcp_sack": "1",
    "net.ipv4.tcp_window_scaling": "1",
    "net.ipv4.tcp_syncookies": "1",
    "net.ipv4.tcp_fastopen": "1",
    "net.ipv4.tcp_no_metrics_save": "0",
    "net.ipv4.tcp_slow_start_after_idle": "1",
    "net.ipv4.tcp_moderate_rcvbuf": "1",
    "net.ipv4.tcp_adv_win_scale": "1",
    "net.ipv4.tcp_app_win": "31",
    "net.ipv4.tcp_autocorking": "1",
    "net.ipv4.tcp_mtu_probing": "0",
    "net.ipv4.tcp_notsent_lowat": "4294967295",
    "net.ipv4.tcp_workaround_signed_windows": "0",
    "net.ipv4.tcp_syn_retries": "6",
    "net.ipv4.tcp_synack_retries": "5",
    "net.ipv4.tcp_retries2": "15",
    "net.ipv4.tcp_fin_timeout": "60",
    "net.ipv4.tcp_tw_reuse": "2",
    "net.ipv4.tcp_keepalive_time": "7200",
    "net.ipv4.tcp_keepalive_intvl": "75",
    "net.ipv4.tcp_keepalive_probes": "9",
    "net.ipv4.ip_local_port_range": "32768 60999",
}

#: Set in every lab namespace: no IPv6 autoconfiguration chatter in captures.
QUIET_IPV6 = {
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
}


def sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_global(name: str) -> str:
    """A kernel-wide sysctl (not per namespace, e.g. net.core.rmem_max), read from
    /proc/sys of the namespace this thread is in."""
    return sysctl_path(name).read_text().strip()


def read_root(name: str) -> str | None:
    """A sysctl's value in the namespace the lab process itself runs in (the host's
    root namespace); call it outside ``netns.entered``."""
    try:
        return sysctl_path(name).read_text().strip()
    except OSError:
        return None


def write_root(name: str, value: str) -> None:
    sysctl_path(name).write_text(value)


def fresh_value(name: str, kernel_wide: bool = False) -> str | None:
    """What this kernel gives NAME by default: its value in a brand-new namespace (a lab
    host's starting point before the baseline), or for a kernel-wide sysctl its current
    value; None when the kernel has no such sysctl."""
    from wirelab.lab import netns
    try:
        if kernel_wide:
            return read_global(name)
        with netns.throwaway():
            return sysctl_path(name).read_text().strip()
    except OSError:
        return None


def overlay(base: dict[str, dict[str, str]], extra: dict[str, dict[str, str]]
            ) -> dict[str, dict[str, str]]:
    """BASE (an experiment's {node or "*" or "kernel": {sysctl: value}}) with EXTRA on top:
    a value for "*" also replaces what the experiment set for a named host, so what the
    user asked for is what every host gets.  The value "default" means the kernel's own
    default (Linux's baseline, else a fresh namespace's value); a sysctl this kernel
    lacks is an EnvironmentProblem naming it."""
    from wirelab.errors import EnvironmentProblem
    out = {node: dict(values) for node, values in base.items()}
    for node, values in extra.items():
        for name, value in values.items():
            have = fresh_value(name, kernel_wide=node == "kernel")
            if have is None:
                raise EnvironmentProblem(f"this kernel ({os.uname().release}) has no sysctl {name}")
            if value == "default":
                value = (BASELINE.get(name) if node != "kernel" else None) or have
            targets = [n for n in out if n not in ("*", "kernel") and name in out[n]] if node == "*" else []
            for target in [node, *targets]:
                out.setdefault(target, {})[name] = str(value)
    return out
