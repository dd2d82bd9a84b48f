"""Link shaping: validated parameters with units in their names, applied as
qdiscs over netlink (pyroute2), never by spawning ``tc``.

Layout on one interface's egress:

* delay / jitter / loss only: ``netem`` at the root, its ``limit`` = queue_pkts;
* bw_mbps only: ``tbf`` at the root (rate, a queue of queue_pkts full frames);
* both: ``netem`` at the root with a ``tbf`` child.  netem releases a packet
  once its delay has passed and hands it to tbf, which queues and paces it:
  propagation delay, then a bottleneck queue.  (Mininet puts netem *under*
  htb, so its netem limit counts packets still "on the wire" as queue.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from wirelab.errors import BadInput

FRAME_BYTES = 1514          # Ethernet frame of a 1500 B MTU packet, no FCS
NETEM_DEFAULT_LIMIT = 1000  # packets; the kernel's default

#: name -> (minimum, maximum, what it is)
LIMITS = {
    "delay_ms": (0.0, 60_000.0, "one-way delay added on this egress, ms"),
    "jitter_ms": (0.0, 10_000.0, "delay variation (netem jitter), ms"),
    "loss_pct": (0.0, 100.0, "random loss, percent of packets"),
    # tbf's rate is a 32-bit count of bytes/s in pyroute2's message: 34.3 Gbit/s.
    "bw_mbps": (0.001, 34_000.0, "rate limit, Mbit/s"),
    "queue_pkts": (1, 1_000_000, "queue length, packets"),
}


@dataclass(frozen=True)
class Shaping:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    bw_mbps: float | None = None
    queue_pkts: int | None = None

    @classmethod
    def from_params(cls, params: dict, where: str = "link") -> Shaping:
        """Pick and validate the shaping keys of PARAMS (others are ignored)."""
        values = {}
        for key, (lo, hi, what) in LIMITS.items():
            raw = params.get(key)
            if raw is None:
                continue
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise BadInput(f"{where}: {key}={raw!r} is not a number ({what}, {lo:g}-{hi:g})") from None
            if not (lo <= value <= hi) or math.isnan(value):
                raise BadInput(f"{where}: {key}={raw!r} is outside the allowed range "
                               f"{lo:g}-{hi:g} ({what})")
            if key == "queue_pkts" and not value.is_integer():
                raise BadInput(f"{where}: {key}={raw!r} is not a whole number of packets")
            values[key] = int(value) if key == "queue_pkts" else value
        if values.get("jitter_ms") and not values.get("delay_ms"):
            raise BadInput(f"{where}: jitter_ms needs delay_ms > 0")
        return cls(**values)  # type: ignore[arg-type]  # keys checked against LIMITS above

    @property
    def needs_netem(self) -> bool:
        return bool(self.delay_ms or self.jitter_ms or self.loss_pct)

    @property
    def active(self) -> bool:
        return self.needs_netem or self.bw_mbps is not None

    def qdiscs(self) -> list[tuple[str, dict]]:
        """The (kind, pyroute2 tc keyword arguments) to add, root first."""
        out: list[tuple[str, dict]] = []
        tbf = None
        if self.bw_mbps is not None:
            rate_bps = self.bw_mbps * 1e6 / 8
            queue = self.queue_pkts or 100
            # Bucket: at least two frames, or one jiffy (4 ms) of traffic.
            burst = max(2 * FRAME_BYTES, int(rate_bps * 0.004))
            tbf = {"rate": f"{round(self.bw_mbps * 1e6)}bit", "burst": burst,
                   "limit": queue * FRAME_BYTES + burst}
        if self.needs_netem:
            netem = {"delay": int(round(self.delay_ms * 1000)),
                     "jitter": int(round(self.jitter_ms * 1000)),
                     "loss": self.loss_pct}
            if tbf is None:
                netem["limit"] = self.queue_pkts or NETEM_DEFAULT_LIMIT
            else:
                # The queue is tbf's; netem only holds packets in flight.
                netem["limit"] = 1_000_000
            out.append(("netem", {"handle": 0x10000, **netem}))
            if tbf is not None:
                out.append(("tbf", {"parent": 0x10001, "handle": 0x20000, **tbf}))
        elif tbf is not None:
            out.append(("tbf", {"handle": 0x10000, **tbf}))
        return out

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in LIMITS}


def apply(ipr, index: int, shaping: Shaping, replace: bool = False) -> None:
    """Install SHAPING on interface INDEX through the netlink socket IPR."""
    if replace:
        try:
            ipr.tc("del", index=index, root=True)
        except Exception:  # no root qdisc yet is fine  # noqa: BLE001
            pass
    for kind, kwargs in shaping.qdiscs():
        ipr.tc("add", kind, index, **kwargs)
