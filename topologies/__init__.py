"""Topologies: small Mininet ``Topo`` classes, one per module, no run logic.

Link shaping uses units in the names: ``delay_ms`` (one-way, per direction),
``jitter_ms``, ``loss_pct``, ``bw_mbps``, ``queue_pkts``.  Given on a link they
apply to both ends (Mininet's TCLink meaning); in ``params1``/``params2`` they
apply to one end's egress only.  ``ip`` in ``params1``/``params2`` addresses
that end; host option ``routes`` is a list of ``(destination, via)``;
``router=True`` turns on forwarding in that host's namespace.
"""
import pkgutil
from importlib import import_module


def names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get(name: str):
    """The Topo class of topology NAME (the module's ``TOPOLOGY``)."""
    NAMES = names()
    if name not in NAMES:
        from wirelab.errors import BadInput
        raise BadInput(f"unknown topology {name!r}; known: {', '.join(NAMES)}")
    module = import_module(f"topologies.{name}")
    return module.TOPOLOGY
