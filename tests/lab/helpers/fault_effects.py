"""Play every fault kind once on a two-host lab while h1 probes h2's UDP echo server every
5 ms, and print, per phase, what the probes saw (JSON on stdout).  Run inside a kernel with
netem: ``wirelab exec --kernel uml -- .venv/bin/python tests/lab/helpers/fault_effects.py``
(tests/lab/test_faults.py does, and judges the numbers)."""
from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time

from wirelab.lab import faults, netns
from wirelab.lab.net import Lab
from wirelab.run.catalog import load_topology

PHASE_S, GAP_S, PORT = 2.0, 0.005, 9000
SO_RCVBUFFORCE = 33                     # <asm-generic/socket.h>; the socket module lacks it
ECHO = ("import contextlib, socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"s.bind(('0.0.0.0', {PORT}))\nwhile True:\n    m, a = s.recvfrom(2048)\n"
        "    with contextlib.suppress(OSError):\n        s.sendto(m[:16], a)\n")
PHASES = [  # (name, fault or None, for_s)
    ("base", None),
    ("delay", faults.Impair("h1", "h2", {"delay_ms": 30.0})),
    ("loss", faults.Impair("h1", "h2", {"loss_pct": 20.0}, direction="a>b")),
    ("burst_loss", faults.Impair("h1", "h2", {"burst_loss_pct": 20.0, "burst_len_pkts": 5.0},
                                 direction="a>b")),
    ("corrupt", faults.Impair("h1", "h2", {"corrupt_pct": 20.0}, direction="a>b")),
    ("duplicate", faults.Impair("h1", "h2", {"duplicate_pct": 20.0}, direction="a>b")),
    ("reorder", faults.Impair("h1", "h2", {"delay_ms": 20.0, "reorder_pct": 50.0}, direction="a>b")),
    ("rate", faults.Impair("h1", "h2", {"bw_mbps": 1.0, "queue_pkts": 20}, direction="a>b")),
    ("down", faults.Down("h1", "h2")),
    ("partition_h1_to_h2", faults.Partition(("h1",), ("h2",))),
    ("partition_h2_to_h1", faults.Partition(("h2",), ("h1",))),
    ("pause", faults.Signal("echo", "pause")),
    ("after_pause", None),
    ("kill", faults.Signal("echo", "kill")),
]


def udp_counters(ns: str) -> dict[str, int]:
    """h2's UDP counters (/proc/net/snmp), and when they were read (t)."""
    with netns.entered(ns), open("/proc/thread-self/net/snmp") as f:
        lines = [ln.split() for ln in f if ln.startswith("Udp:")]
    return {**dict(zip(lines[0][1:], map(int, lines[1][1:]), strict=True)), "t": time.monotonic()}


def main() -> None:
    sent: dict[int, float] = {}            # seq -> send time
    got: list[tuple[int, float]] = []      # (seq, receive time), duplicates included
    errors: dict[int, str] = {}
    with Lab(load_topology("single_link")()) as lab:
        echo = lab["h2"].popen([sys.executable, "-c", ECHO])
        lab.undo.push("stop the echo server", lambda: (echo.kill(), echo.wait()))
        while not lab["h2"].listening(PORT, "udp"):
            time.sleep(0.02)
        sock = lab["h1"].socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(0.2)
        # Room for every answer: when the paused server resumes it answers its whole backlog at
        # once, and on the guest's one CPU the reader may not run until it is done.  A probe
        # the instrument itself dropped would read as one the fault lost (h1's counters: 0).
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        h1_before = udp_counters(lab["h1"].ns)
        blast = lab["h1"].socket(socket.AF_INET, socket.SOCK_DGRAM)
        stop = threading.Event()

        def receive():
            while not stop.is_set():
                try:
                    data = sock.recv(64)
                except (TimeoutError, OSError):
                    continue
                got.append((struct.unpack("!Q", data[:8])[0], time.monotonic()))
        rx = threading.Thread(target=receive, daemon=True)
        rx.start()
        events = [faults.Event(i * PHASE_S, f, PHASE_S) for i, (_, f) in enumerate(PHASES) if f is not None]
        events[-1] = faults.Event(events[-1].at_s, events[-1].fault)          # kill: to the end
        counters, settle = [], []
        with faults.Player(lab, faults.Timeline(events), registry={"echo": echo}) as player:
            t0, seq = player.t0, 0
            for i, (name, _) in enumerate(PHASES):
                begin, end = t0 + i * PHASE_S, t0 + (i + 1) * PHASE_S
                due = sum((e.at_s <= i * PHASE_S) + (e.for_s is not None and e.at_s + e.for_s <= i * PHASE_S)
                          for e in events)
                while len(player.marks) < due and time.monotonic() < end:    # in force first
                    time.sleep(0.002)
                start = time.monotonic()
                settle.append(start - begin)
                counters.append(udp_counters(lab["h2"].ns))
                k = 0
                while (at := start + k * GAP_S) < end - 0.15:     # none in flight at the change
                    time.sleep(max(0.0, at - time.monotonic()))
                    now = time.monotonic()
                    sent[seq] = now
                    try:
                        sock.sendto(struct.pack("!Qd", seq, now), (lab["h2"].ip(), PORT))
                        if name == "rate":          # 3.2 Mbit/s offered to a 1 Mbit/s link
                            for _ in range(2):
                                blast.sendto(b"x" * 1000, (lab["h2"].ip(), PORT + 1))
                    except OSError as e:
                        errors[seq] = e.strerror or str(e)
                    seq, k = seq + 1, k + 1
                time.sleep(max(0.0, end - 0.02 - time.monotonic()))      # the last probe arrived
                counters.append(udp_counters(lab["h2"].ns))
            time.sleep(0.3)
            marks = [[m.t_s, m.apply, m.text] for m in player.marks]
        stop.set()
        rx.join()
        h1_after = udp_counters(lab["h1"].ns)
    h1 = {k: h1_after[k] - h1_before[k] for k in ("RcvbufErrors", "InErrors")}
    print(json.dumps({"h1": h1, "phases": [name for name, _ in PHASES], "phase_s": PHASE_S, "t0": t0,
                      "settle_s": settle, "sent": sent, "got": got, "errors": errors,
                      "counters": counters, "marks": marks}))


if __name__ == "__main__":
    main()
