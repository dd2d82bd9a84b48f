"""``wirelab doctor``: what this machine can run, probed for real.

The host column comes from probes in this process; the UML column from the
same probes run inside a booted guest (``wirelab doctor --json --kernel host``
there), so both columns are measurements, not guesses.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time

from wirelab import settings
from wirelab.errors import EnvironmentProblem
from wirelab.kernel import probe, uml

LAB_MINIMUM = ("netns", "netem")
FEATURE_LABELS = {
    "netns": "network namespaces", "netem": "qdisc netem (delay, loss)", "htb": "qdisc htb",
    "tbf": "qdisc tbf", "fq": "qdisc fq", "fq_codel": "qdisc fq_codel",
    "openvswitch": "Open vSwitch kernel datapath", "cc_reno": "congestion control reno",
    "cc_cubic": "congestion control cubic", "cc_bbr": "congestion control bbr",
}


def local_report(with_tools: bool = True) -> dict:
    report = {"kernel": probe.kernel_info(), "features": probe.kernel_features()}
    if with_tools:
        report["tools"] = probe.tools()
        ok, why = uml.available()
        report["uml"] = {"available": ok, "detail": why}
    return report


def uml_report() -> dict:
    """Boot a guest and run the probes there."""
    with tempfile.TemporaryFile() as out:
        t0 = time.monotonic()
        res = uml.run([sys.executable, "-m", "wirelab", "doctor", "--json", "--kernel", "host",
                       "--no-tools"], stdout_fd=out.fileno(), timeout_s=120)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if res.returncode not in (0, 3):
        raise EnvironmentProblem(f"doctor inside UML exited {res.returncode}: {text[-500:]}")
    try:
        report = json.loads(text)
    except ValueError as e:
        raise EnvironmentProblem(f"doctor inside UML printed no report: {text[-500:]!r}") from e
    report["boot_s"] = round(res.boot_s, 2)
    report["total_s"] = round(time.monotonic() - t0, 2)
    return report


def can_run_labs(report: dict | None) -> bool:
    return report is not None and all(report["features"].get(f, {}).get("ok")
                                      for f in LAB_MINIMUM)


def render(host: dict | None, guest: dict | None, more: list[dict] | None = None) -> str:
    cols = []
    if host:
        cols.append(("host " + host["kernel"]["release"], host))
    for g in [guest, *(more or [])]:
        if g:
            cols.append(("uml " + g["kernel"]["release"], g))
    width = 34
    lines = ["Kernel features (each probed in a throw-away namespace)"]
    lines.append("  " + "feature".ljust(width) + "".join(c[0][:22].ljust(24) for c in cols))
    for key, label in FEATURE_LABELS.items():
        cells = []
        for _, rep in cols:
            f = rep["features"].get(key)
            cells.append(("yes" if f and f["ok"] else "NO" if f else "?").ljust(24))
        lines.append("  " + label.ljust(width) + "".join(cells))
    for _, rep in cols:
        k = rep["kernel"]
        lines.append(f"  default congestion control ({k['release']}): {k['default_cc']}")
    src = host or guest or {}
    if src.get("tools"):
        lines.append("")
        lines.append("Tools")
        for name, version in src["tools"].items():
            lines.append(f"  {name.ljust(16)}{version or 'MISSING'}")
    if host and "uml" in host:
        u = host["uml"]
        lines.append("")
        lines.append(f"User-Mode Linux: {'available' if u['available'] else 'UNAVAILABLE'} ({u['detail']})")
        for g in [guest, *(more or [])]:
            if g:
                lines.append(f"  {g['kernel']['release']}: boot to command {g['boot_s']:.2f} s; "
                             f"whole probe run {g['total_s']:.2f} s")
    lines.append("")
    lines.append("Kernel backend a lab would use (--kernel auto):")
    lines.extend("  " + line for line in backend_story(host, guest))
    return "\n".join(lines)


def backend_story(host: dict | None, guest: dict | None) -> list[str]:
    if settings.inside_guest():
        return ["this is the UML guest: labs run on this kernel"]
    if host is None:
        return ["(host not probed)"]
    missing = [k for k, f in host["features"].items() if not f["ok"]]
    if not missing:
        return ["the host kernel has every probed feature: labs run on the host"]
    out = [f"the host kernel lacks {', '.join(missing)}"]
    if guest and can_run_labs(guest):
        out.append("labs that need any of these run inside User-Mode Linux; labs that need only "
                   "namespaces" + (", htb, tbf" if host['features'].get('htb', {}).get('ok') else "")
                   + " run on the host")
    elif host["uml"]["available"]:
        out.append("User-Mode Linux is installed but was not probed (--kernel host)")
    else:
        out.append("and User-Mode Linux is unavailable: " + host["uml"]["detail"])
    return out


def guest_reports(kernel: str) -> list[dict]:
    """A probe run in every UML kernel here (the one --kernel uml:X names, if any): the
    system's first."""
    from wirelab.kernel import kernels
    conf = settings.current()
    names = [conf.uml_kernel] if conf.uml_kernel else list(kernels.available_kernels()) or [""]
    out = []
    try:
        for name in names:
            settings.override(uml_kernel=name)
            ok, why = uml.available()
            if ok:
                try:
                    out.append(uml_report())
                except EnvironmentProblem as e:
                    if kernel == "uml":
                        raise
                    print(f"wirelab: UML kernel {name or 'of the system'} did not boot: {e}",
                          file=sys.stderr)
            elif kernel == "uml":
                raise EnvironmentProblem(f"cannot use the UML kernel backend: {why}")
    finally:
        settings.override(uml_kernel=conf.uml_kernel)
    return out


def main(kernel: str, as_json: bool, with_tools: bool = True) -> int:
    host = None
    guests: list[dict] = []
    if kernel in ("auto", "host") or settings.inside_guest():
        host = local_report(with_tools)
    if not settings.inside_guest() and kernel in ("auto", "uml"):
        guests = guest_reports(kernel)
    guest = guests[0] if guests else None
    if as_json:
        doc = host if (host and not guest) else {"host": host, "uml": guest, "uml_kernels": {
            g["kernel"]["release"]: g for g in guests}}
        print(json.dumps(doc, indent=1))
    else:
        print(render(host, guest, guests[1:]))
    if can_run_labs(host) or any(can_run_labs(g) for g in guests):
        return 0
    if as_json:
        return 3
    print("\nwirelab: neither the host kernel nor User-Mode Linux can run labs "
          f"(need {', '.join(LAB_MINIMUM)}); run `sudo make setup` to install user-mode-linux",
          file=sys.stderr)
    return 3

