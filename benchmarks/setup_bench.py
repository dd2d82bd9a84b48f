"""Lab setup and teardown time: wirelab's Lab against stock Mininet.

For N hosts on one switch (Mininet's SingleSwitchTopo), times building the
lab until every host can be used and tearing it down, on the kernel this
runs on.  Run it on both backends (``make bench`` does):

    python benchmarks/setup_bench.py                       # host kernel
    wirelab exec --kernel uml -- python benchmarks/setup_bench.py

Stock Mininet is ``Mininet(topo, switch=LinuxBridge, controller=None)`` with
``build()``/``stop()``; its ``fixLimits()`` (which raises host sysctls) is
disabled so the benchmark does not change the host, which costs it nothing
measurable.  Prints a table and writes it as JSON to results/bench/.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bench_wirelab(n: int) -> tuple[float, float]:
    from mininet.topo import SingleSwitchTopo

    from wirelab.lab.net import Lab
    lab = Lab(SingleSwitchTopo(k=n))
    t0 = time.perf_counter()
    lab.__enter__()
    t1 = time.perf_counter()
    lab.close()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def bench_mininet(n: int) -> tuple[float, float]:
    import mininet.net
    from mininet.log import setLogLevel
    from mininet.nodelib import LinuxBridge
    from mininet.topo import SingleSwitchTopo
    setLogLevel("error")
    mininet.net.fixLimits = lambda: None      # never touch the host's limits
    net = mininet.net.Mininet(topo=SingleSwitchTopo(k=n), switch=LinuxBridge, controller=None,
                              build=False)
    t0 = time.perf_counter()
    try:
        net.build()
        net.start()
        t1 = time.perf_counter()
    finally:
        net.stop()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", default="2,10,50", help="comma-separated host counts")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-mininet", action="store_true", help="skip stock Mininet")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("setup_bench: needs root (it builds namespaces)", file=sys.stderr)
        return 2
    counts = [int(x) for x in args.hosts.split(",")]
    kernel = os.uname().release + (" (UML)" if os.environ.get("WIRELAB_IN_UML") == "1" else "")
    rows = []
    # One untimed 2-host lab of each kind first: imports and first-use costs
    # are paid once per process, not per lab.
    bench_wirelab(2)
    if not args.no_mininet:
        bench_mininet(2)
    for n in counts:
        for name, fn in (("wirelab", bench_wirelab), ("mininet", bench_mininet)):
            if name == "mininet" and args.no_mininet:
                continue
            reps = args.repeats if not (name == "mininet" and n >= 50 and "UML" in kernel) else 1
            setups, downs = [], []
            for _ in range(reps):
                s, d = fn(n)
                setups.append(s)
                downs.append(d)
                print(f"  {name:8s} {n:3d} hosts: setup {s:7.3f} s  teardown {d:7.3f} s",
                      file=sys.stderr, flush=True)
            rows.append({"tool": name, "hosts": n, "repeats": reps,
                         "setup_s": statistics.median(setups),
                         "teardown_s": statistics.median(downs)})
    print(f"\nLab setup/teardown on kernel {kernel} (median of repeats)")
    print(f"{'tool':10s}{'hosts':>6s}{'setup s':>10s}{'per host s':>12s}{'teardown s':>12s}")
    for r in rows:
        print(f"{r['tool']:10s}{r['hosts']:6d}{r['setup_s']:10.3f}"
              f"{r['setup_s'] / r['hosts']:12.4f}{r['teardown_s']:12.3f}")
    out = ROOT / "results" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    tag = "uml" if "UML" in kernel else "host"
    (out / f"setup_bench_{tag}.json").write_text(json.dumps({"kernel": kernel, "rows": rows},
                                                            indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
