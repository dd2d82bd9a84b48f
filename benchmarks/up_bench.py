"""Time from `wirelab up TOPOLOGY` to its prompt, as a person at a terminal sees it.

Each run starts the command on a pseudo-terminal (so it takes the interactive path,
UML boot included where the host lacks netem), reads the screen until ``wirelab> ``
appears, types ``exit`` and waits for the lab to be torn down.  One run at a time (two
labs would share the CPUs).  Prints min / median / max per topology and writes them as
JSON to results/bench/up.json.

    sudo .venv/bin/python benchmarks/up_bench.py [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import pty
import select
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = [("router_chain", []), ("router_chain", ["--set", "n=50"]), ("home_nat", []),
         ("vpc", []), ("dns_hierarchy", []), ("bgp_pops", [])]
PROMPT = b"wirelab> "


def time_to_prompt(topology: str, extra: list[str], timeout_s: float = 120.0) -> tuple[float, float]:
    """(seconds to the prompt, seconds from `exit` to the process's end)."""
    argv = [str(ROOT / ".venv/bin/wirelab"), "up", topology, *extra]
    t0 = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    seen, prompt_s = b"", None
    try:
        while prompt_s is None:
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"no prompt from {' '.join(argv)} within {timeout_s:g} s: "
                                   f"{seen[-300:]!r}")
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise RuntimeError(f"{' '.join(argv)} ended before its prompt: {seen[-300:]!r}")
                seen += chunk
                if PROMPT in seen:
                    prompt_s = time.monotonic() - t0
        t1 = time.monotonic()
        os.write(fd, b"exit\r")
        while True:
            try:
                if not os.read(fd, 4096):
                    break
            except OSError:
                break
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {os.waitstatus_to_exitcode(status)}")
        return prompt_s, time.monotonic() - t1
    finally:
        os.close(fd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rows = []
    print(f"{'topology':32s} {'to prompt s (min/med/max)':>28s} {'teardown s (med)':>18s}")
    for topology, extra in CASES:
        runs = [time_to_prompt(topology, extra) for _ in range(args.runs)]
        up = [r[0] for r in runs]
        down = [r[1] for r in runs]
        name = " ".join([topology, *extra])
        print(f"{name:32s} {min(up):8.2f} {statistics.median(up):8.2f} {max(up):8.2f}"
              f" {statistics.median(down):18.2f}", flush=True)
        rows.append({"topology": name, "to_prompt_s": up, "teardown_s": down})
    out = ROOT / "results" / "bench" / "up.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"kernel": os.uname().release, "runs": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
