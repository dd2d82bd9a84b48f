"""A service of fixed capacity behind a FIFO without deadlines, over UDP: the server of a
retry storm (wirelab.models.metastable).

``python -m wirelab.peers.queue_service PORT MU_PER_S QUEUE_MAX`` in the service's node.
A reader thread takes every datagram: a health probe (first byte ``H``) is answered at
once (the out-of-band view of a live server); a request (``R`` + 8-byte id + padding) joins
the FIFO unless QUEUE_MAX are waiting (then it is dropped).  The worker answers the
oldest request every 1 / MU_PER_S seconds, whether or not its client still waits.  Every
0.25 s it prints a JSON line: the monotonic time, the queue's length, requests served and
dropped so far.  SIGTERM ends it.
"""
from __future__ import annotations

import collections
import contextlib
import json
import socket
import sys
import threading
import time

STATS_S = 0.25


def main(port: int, mu: float, queue_max: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.bind(("0.0.0.0", port))
    fifo: collections.deque = collections.deque()
    ready = threading.Condition()
    counts = {"served": 0, "dropped": 0}

    def read() -> None:
        while True:
            data, addr = sock.recvfrom(4096)
            if data[:1] == b"H":
                with contextlib.suppress(OSError):
                    sock.sendto(data[:16], addr)
                continue
            with ready:
                if len(fifo) >= queue_max:
                    counts["dropped"] += 1
                    continue
                fifo.append((data[1:9], addr))
                ready.notify()

    threading.Thread(target=read, daemon=True).start()
    gap, nxt, last_stats = 1.0 / mu, time.monotonic(), 0.0
    print(json.dumps({"ready": True}), flush=True)
    while True:
        with ready:
            while not fifo:
                ready.wait(STATS_S)
                now = time.monotonic()
                if now - last_stats >= STATS_S:
                    last_stats = now
                    print(json.dumps({"t": now, "queue": 0, **counts}), flush=True)
                nxt = max(nxt, now)
            rid, addr = fifo.popleft()
            depth = len(fifo)
        time.sleep(max(0.0, nxt - time.monotonic()))        # one request per 1/mu
        nxt += gap
        with contextlib.suppress(OSError):
            sock.sendto(b"A" + rid, addr)
        counts["served"] += 1
        now = time.monotonic()
        if now - last_stats >= STATS_S:
            last_stats = now
            print(json.dumps({"t": now, "queue": depth, **counts}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))
