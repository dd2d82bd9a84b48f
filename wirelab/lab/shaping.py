"""Link shaping: validated parameters with units in their names, applied as
qdiscs over netlink (pyroute2), never by spawning ``tc``.

Layout on one interface's egress:

* delay / jitter / loss only: ``netem`` at the root, its ``limit`` = queue_pkts;
* bw_mbps only: ``tbf`` at the root (rate, a queue of queue_pkts full frames);
* both: ``netem`` at the root with a ``tbf`` child.
* corruption, duplication and reordering are netem's too; burst loss is netem's Gilbert
  model ("loss gemodel"), which pyroute2 cannot encode: that one qdisc is set with a
  ``tc qdisc change`` (a process start, fine for a fault, never in a timing path).  netem releases a packet
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
    "corrupt_pct": (0.0, 100.0, "packets with one bit flipped, percent"),
    "duplicate_pct": (0.0, 100.0, "packets sent twice, percent"),
    "reorder_pct": (0.0, 100.0, "packets sent at once, ahead of the delayed others, percent"),
    "burst_loss_pct": (0.0, 99.0, "loss in bursts (Gilbert model): mean loss, percent"),
    "burst_len_pkts": (0.0, 10_000.0, "loss in bursts: mean burst length (>= 1), packets"),
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
    corrupt_pct: float = 0.0
    duplicate_pct: float = 0.0
    reorder_pct: float = 0.0
    burst_loss_pct: float = 0.0
    burst_len_pkts: float = 0.0

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
        if values.get("reorder_pct") and not values.get("delay_ms"):
            raise BadInput(f"{where}: reorder_pct needs delay_ms > 0 (the others are delayed)")
        if bool(values.get("burst_loss_pct")) != bool(values.get("burst_len_pkts")):
            raise BadInput(f"{where}: burst_loss_pct and burst_len_pkts go together")
        if 0 < values.get("burst_len_pkts", 0) < 1:
            raise BadInput(f"{where}: burst_len_pkts={values['burst_len_pkts']:g}: a burst is >= 1 packet")
        if values.get("burst_loss_pct") and values.get("loss_pct"):
            raise BadInput(f"{where}: loss_pct and burst_loss_pct are two loss models: pick one")
        return cls(**values)  # type: ignore[arg-type]  # keys checked against LIMITS above

    @property
    def needs_netem(self) -> bool:
        return bool(self.delay_ms or self.jitter_ms or self.loss_pct or self.corrupt_pct
                    or self.duplicate_pct or self.reorder_pct or self.burst_loss_pct)

    def gemodel(self) -> tuple[float, float] | None:
        """Burst loss as netem's Gilbert model: (p, r) in percent, the chances of going
        from the good state (no loss) to the bad one (every packet lost) and back.  A
        mean burst of L packets is r = 1/L; a mean loss of q is p / (p + r), so
        p = q r / (1 - q)."""
        if not self.burst_loss_pct:
            return None
        q, r = self.burst_loss_pct / 100.0, 1.0 / self.burst_len_pkts
        return 100.0 * q * r / (1.0 - q), 100.0 * r

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
            netem |= {k: v for k, v in (("duplicate", self.duplicate_pct),
                                        ("prob_corrupt", self.corrupt_pct),
                                        ("prob_reorder", self.reorder_pct)) if v}
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


    def netem_args(self, limit: int) -> list[str]:
        """The root netem's options as ``tc qdisc change ... netem`` words (for burst loss)."""
        out = ["limit", str(limit)]
        if self.delay_ms:
            out += ["delay", f"{round(self.delay_ms * 1000)}us"]
            if self.jitter_ms:
                out.append(f"{round(self.jitter_ms * 1000)}us")
        ge = self.gemodel()
        if ge:
            out += ["loss", "gemodel", f"{ge[0]:.6f}%", f"{ge[1]:.6f}%", "100%", "0%"]
        for word, pct in (("duplicate", self.duplicate_pct), ("corrupt", self.corrupt_pct)):
            if pct:
                out += [word, f"{pct:g}%"]
        if self.reorder_pct:
            out += ["reorder", f"{self.reorder_pct:g}%", "gap", "1"]
        return out


def apply(ipr, index: int, shaping: Shaping, replace: bool = False, run=None) -> None:
    """Install SHAPING on interface INDEX through the netlink socket IPR.  Burst loss also
    needs RUN(argv), which runs a command in the interface's namespace (``node.run``)."""
    if replace:
        try:
            ipr.tc("del", index=index, root=True)
        except Exception:  # no root qdisc yet is fine  # noqa: BLE001
            pass
    qdiscs = shaping.qdiscs()
    for kind, kwargs in qdiscs:
        ipr.tc("add", kind, index, **kwargs)
    if shaping.gemodel():
        if run is None:
            raise BadInput("burst loss (netem's gemodel) needs a command runner in the node")
        ifname = ipr.get_links(index)[0].get_attr("IFLA_IFNAME")
        run(["tc", "qdisc", "change", "dev", ifname, "root", "handle", "1:", "netem",
             *shaping.netem_args(qdiscs[0][1]["limit"])])
