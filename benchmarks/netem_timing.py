"""How late does netem deliver in this kernel?  ICMP echoes (one ping process, kernel
receive timestamps) across RoutedPath's router at each RTT; prints the excess of the
measured round trip over the configured one (median, p90, max), in ms.

    wirelab exec --kernel uml -- .venv/bin/python benchmarks/netem_timing.py [RTT ...]
"""
from __future__ import annotations

import re
import statistics
import sys

from wirelab.lab.net import Lab
from wirelab.run.catalog import load_topology


def excess(rtt_ms: float, count: int = 100) -> list[float]:
    with Lab(load_topology("routed_path")(rtt_ms=rtt_ms)) as lab:
        lab["h1"].run(["ping", "-c", "2", "-i", "0.05", lab["h2"].ip()], check=False)
        out = lab["h1"].run(["ping", "-n", "-c", str(count), "-i", "0.02", lab["h2"].ip()],
                            timeout_s=60 + count * (0.02 + rtt_ms / 1e3)).stdout
    return [float(t) - rtt_ms for t in re.findall(r"time=([\d.]+) ms", out)]


def main() -> None:
    for rtt in [float(a) for a in sys.argv[1:]] or [0.0, 10.0, 50.0]:
        ex = sorted(excess(rtt))
        print(f"rtt {rtt:6.1f} ms  n {len(ex):3d}  excess median {statistics.median(ex):.3f}"
              f"  p90 {ex[int(0.9 * (len(ex) - 1))]:.3f}  max {ex[-1]:.3f} ms", flush=True)


if __name__ == "__main__":
    main()
