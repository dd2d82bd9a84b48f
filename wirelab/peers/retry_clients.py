"""Open-loop clients of a request/response service over UDP, with a retry policy, and
health monitors beside them: the workload of a retry storm.

One thread drives everything (a selector and a heap of timers): new requests arrive as a
Poisson process of rate lambda x surge, spread over the clients' sockets; an attempt not answered
within the timeout counts as a timeout and the policy decides what follows:

* ``immediate``: send again at once, up to RETRIES more times;
* ``backoff``:   send again after a uniform random wait in [0, min(cap, base 2^(k-1))]
  (exponential backoff with full jitter), up to TRIES attempts in all;
* ``budget``:    as ``backoff``, but a retry spends a token; each new request adds
  BUDGET_RATIO of one (at most BUDGET_CAP held): retries stay under that share of the load.

An answer to an attempt that already timed out is late, not goodput.  Monitors send a
health probe at Poisson times, PROBE_HZ a second on average (evenly spaced probes
phase-lock with the storm's own regular pattern and see a biased share of its drops;
Poisson probes see the time average), as large as a request (a synthetic request: a
byte-limited queue such as tbf's would let a small probe in where a request finds no
room), and count the ones answered within 1 s.
Everything is counted in a :class:`~wirelab.measure.series.Series`.
"""
from __future__ import annotations

import heapq
import itertools
import random
import selectors
import socket
import struct
import time
from dataclasses import dataclass

POLICIES = ("immediate", "backoff", "budget")
PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Policy:
    name: str
    retries: int = 3                # immediate
    tries: int = 5                  # backoff, budget
    base_s: float = 0.1
    cap_s: float = 10.0
    budget_ratio: float = 0.1
    budget_cap: float = 10.0

    def __post_init__(self):
        if self.name not in POLICIES:
            raise ValueError(f"policy {self.name!r}: allowed {', '.join(POLICIES)}")

    def retry_after(self, attempts: int, rng: random.Random) -> float | None:
        """Seconds to wait before the next attempt of a request that has failed ATTEMPTS
        times, or None: give up."""
        if self.name == "immediate":
            return 0.0 if attempts < 1 + self.retries else None
        if attempts >= self.tries:
            return None
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2 ** (attempts - 1)))


class Budget:
    """Retry tokens: RATIO per new request, at most CAP held."""

    def __init__(self, ratio: float, cap: float):
        self.ratio, self.cap, self.tokens = ratio, cap, 0.0

    def earn(self) -> None:
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def spend(self) -> bool:
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Clients:
    def __init__(self, socks: list[socket.socket], server: tuple[str, int], policy: Policy, *,
                 lam_per_s: float, timeout_s: float, request_bytes: int, series,
                 monitors: dict[str, tuple[socket.socket, tuple[str, int]]], probe_hz: float = 20.0,
                 seed: int = 0):
        self.socks, self.server, self.policy, self.series = socks, server, policy, series
        self.lam, self.timeout, self.surge = lam_per_s, timeout_s, 1.0
        self.pad = b"\0" * max(0, request_bytes - 9)
        self.monitors, self.probe_gap = monitors, 1.0 / probe_hz
        self.rng = random.Random(seed)
        self.budget = Budget(policy.budget_ratio, policy.budget_cap)
        self.ids = itertools.count(1)
        self.pending: dict[int, tuple[int, float]] = {}      # attempt id -> (request, sent)
        self.tries: dict[int, int] = {}                       # request -> attempts so far
        self.probes: dict[int, tuple[str, float]] = {}
        self.timers: list[tuple[float, int, str, int]] = []
        self.sent = 0

    def _at(self, t: float, kind: str, arg: int = 0) -> None:
        heapq.heappush(self.timers, (t, next(self.ids), kind, arg))

    def _attempt(self, req: int, now: float) -> None:
        aid = next(self.ids)
        self.tries[req] = self.tries.get(req, 0) + 1
        sock = self.socks[self.sent % len(self.socks)]
        self.sent += 1
        try:
            sock.sendto(b"R" + struct.pack("!Q", aid) + self.pad, self.server)
        except OSError:
            self.series.count("send_error", now)
        self.pending[aid] = (req, now)
        self.series.count("attempts", now)
        self._at(now + self.timeout, "timeout", aid)

    def _answer(self, data: bytes, now: float) -> None:
        aid = struct.unpack("!Q", data[1:9])[0]
        if data[:1] == b"H":
            name, t = self.probes.pop(aid, ("", 0.0))
            if name and now - t <= PROBE_TIMEOUT_S:
                self.series.count(f"{name}_ok", now)
            return
        got = self.pending.pop(aid, None)
        if got is None:
            self.series.count("late", now)
            return
        req, t = got
        self.tries.pop(req, None)
        self.series.count("goodput", now)
        self.series.value("latency_ms", (now - t) * 1000.0, now)

    def _timeout(self, aid: int, now: float) -> None:
        got = self.pending.pop(aid, None)
        if got is None:
            return
        req = got[0]
        wait = self.policy.retry_after(self.tries[req], self.rng)
        if wait is not None and self.policy.name == "budget" and not self.budget.spend():
            wait = None
        if wait is None:
            self.tries.pop(req, None)
            self.series.count("failed", now)
        else:
            self._at(now + wait, "retry", req)

    def run(self, duration_s: float) -> None:
        sel = selectors.DefaultSelector()
        for s in [*self.socks, *(m[0] for m in self.monitors.values())]:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        t0 = time.monotonic()
        end = t0 + duration_s
        self._at(t0, "new")
        for k in range(len(self.monitors)):
            self._at(t0 + k * self.probe_gap / max(1, len(self.monitors)), "probe", k)
        names = list(self.monitors)
        while (now := time.monotonic()) < end:
            wait = min(0.05, max(0.0, self.timers[0][0] - now)) if self.timers else 0.05
            for key, _ in sel.select(wait):
                while True:
                    try:
                        data = key.fileobj.recv(64)     # type: ignore[union-attr]
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    self._answer(data, time.monotonic())
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                t, _, kind, arg = heapq.heappop(self.timers)
                if kind == "new":
                    req = next(self.ids)
                    self.budget.earn()
                    self._attempt(req, now)
                    self._at(t + self.rng.expovariate(self.lam * self.surge), "new")
                elif kind == "timeout":
                    self._timeout(arg, now)
                elif kind == "retry":
                    self._attempt(arg, now)
                else:
                    name = names[arg]
                    sock, addr = self.monitors[name]
                    pid = next(self.ids)
                    self.probes[pid] = (name, now)
                    try:
                        sock.sendto(b"H" + struct.pack("!Q", pid) + self.pad, addr)
                    except OSError:
                        pass
                    self.series.count(f"{name}_sent", now)
                    self._at(t + self.rng.expovariate(1.0 / self.probe_gap), "probe", arg)
        sel.close()
