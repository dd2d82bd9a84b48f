"""tcpdump as an instrument: a capture started in a lab node, written packet by packet,
read back (wirelab.measure.packets) while it grows."""
from __future__ import annotations

import subprocess
from pathlib import Path

from wirelab.errors import LabError
from wirelab.lab.wait import poll


def start(lab, node: str, intf: str, path: Path, bpf: list[str],
          timeout_s: float = 30.0) -> subprocess.Popen:
    """tcpdump on INTF in NODE writing every packet matching BPF (e.g. ["tcp", "port",
    "443"]) to PATH as it arrives (-U, --immediate-mode), as root (-Z root: the lab
    workdir is private); returns once it listens.  Stopped with the lab."""
    err = path.with_suffix(".err")
    with open(err, "w") as errf:
        proc = lab[node].popen(["tcpdump", "-Z", "root", "-U", "--immediate-mode", "-n",
                                "-i", intf, "-w", str(path), *bpf],
                               stdout=subprocess.DEVNULL, stderr=errf)

    def listening() -> bool:
        if proc.poll() is not None:
            raise LabError(f"tcpdump in {node} exited {proc.returncode}: {err.read_text()[-300:]}")
        return "listening on" in err.read_text()
    poll(listening, timeout_s, f"tcpdump to listen on {intf} in {node}")
    return proc
