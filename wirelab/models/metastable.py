"""A retry storm from first principles: when retries keep an overloaded service failing
after the overload is gone (a metastable failure), and how long a load that fits takes to
drain the backlog.

The service serves mu requests a second from a FIFO of at most Q requests, without
deadlines: it also serves requests whose clients already gave up (wasted work).  Clients
are open-loop: new requests arrive at lambda a second whatever happens to earlier ones,
and each attempt times out after T.  Once the queue is full its wait Q / mu exceeds T, so
every attempt fails; the load offered in that state decides what follows:

* immediate retries, R of them:                lambda (1 + R)
* exponential backoff with full jitter, n tries: lambda n (the backoff spaces the tries of
  one request out; it does not make fewer of them: an open system still sends them all)
* a retry budget (retries <= b x new requests): lambda (1 + b)

If that load exceeds mu the queue stays full and goodput stays at zero after the trigger
has ended: metastable.  If it fits, the backlog drains at mu - load and requests succeed
again once the wait is under T: (Q - mu T) / (mu - load) seconds after the trigger.

On the way the requests cross a device of capacity C (tbf, Ethernet frames): while the
storm offers more bytes than C, every packet through it, a monitor's probe too, is lost
with probability 1 - C / offered.
"""
from __future__ import annotations

from dataclasses import dataclass

ETH_IP_UDP_BYTES = 14 + 20 + 8


@dataclass(frozen=True)
class Service:
    mu_per_s: float
    queue_max: int
    timeout_s: float

    @property
    def wait_full_s(self) -> float:
        return self.queue_max / self.mu_per_s


def failed_load(policy: str, lam: float, retries: int, tries: int, budget_ratio: float) -> float:
    """Attempts a second while every attempt fails, under POLICY."""
    if policy == "immediate":
        return lam * (1 + retries)
    if policy == "backoff":
        return lam * tries
    if policy == "budget":
        return lam * (1 + budget_ratio)
    raise ValueError(f"policy {policy!r}: allowed immediate, backoff, budget")


def metastable(load: float, svc: Service) -> bool:
    """Whether a full queue stays full under LOAD (and so every attempt keeps failing)."""
    return svc.wait_full_s > svc.timeout_s and load > svc.mu_per_s


def recovery_s(load: float, svc: Service) -> float | None:
    """Seconds from the trigger's end (queue full) until the wait is under the timeout
    again; None when it never is."""
    if metastable(load, svc):
        return None
    return max(0.0, svc.queue_max - svc.mu_per_s * svc.timeout_s) / (svc.mu_per_s - load)


def device_loss(load: float, request_bytes: int, capacity_mbps: float) -> float:
    """Share of packets a device of CAPACITY_MBPS (counting Ethernet frames) drops when
    LOAD requests a second of REQUEST_BYTES cross it."""
    offered_bps = load * (request_bytes + ETH_IP_UDP_BYTES) * 8
    return max(0.0, 1.0 - capacity_mbps * 1e6 / offered_bps) if offered_bps else 0.0
