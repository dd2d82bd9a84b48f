"""Topologies: small Mininet ``Topo`` classes, one per module, no run logic.

Link shaping uses units in the names: ``delay_ms`` (one-way, per direction),
``jitter_ms``, ``loss_pct``, ``bw_mbps``, ``queue_pkts``.  Given on a link they
apply to both ends (Mininet's TCLink meaning); in ``params1``/``params2`` they
apply to one end's egress only.  ``ip`` in ``params1``/``params2`` addresses
that end; host option ``routes`` is a list of ``(destination, via)``;
``router=True`` turns on forwarding in that host's namespace.

Installed as ``wirelab.topologies``; ``wirelab up NAME`` and experiments find a
topology by its module (``TOPOLOGY`` names the class).
"""
