"""glibc's stub resolver (res_send in resolv/res_send.c): how long a lookup waits, and
what it gets, given what each configured nameserver does.

Each server (in resolv.conf order) is one of "ok" or "wrong" (it answers, correctly or
not: glibc takes the first answer), "icmp" (an error comes back, ICMP unreachable: the
next server is tried at once) or "silent" (nothing comes back: send_dg waits the
timeout, ``timeout << i`` divided by the number of servers for attempt i > 0, at least
1 s).  ATTEMPTS rounds over the list (``options attempts:N``), then the lookup fails.
"""
from __future__ import annotations

KINDS = ("ok", "wrong", "icmp", "silent")


def glibc_lookup(servers: list[str], timeout_s: int, attempts: int) -> tuple[float, str]:
    """(seconds waited before the answer or the failure, "ok" / "wrong" / "failed") for a
    lookup over SERVERS with ``options timeout:TIMEOUT_S attempts:ATTEMPTS``."""
    unknown = [k for k in servers if k not in KINDS]
    if unknown or not servers:
        raise ValueError(f"servers {servers!r}: each one of {', '.join(KINDS)}, at least one")
    waited, n = 0.0, len(servers)
    for _ in range(attempts):
        for i, kind in enumerate(servers):
            if kind in ("ok", "wrong"):
                return waited, kind
            waited += max(1, (timeout_s << i) // n if i else timeout_s) if kind == "silent" else 0
    return waited, "failed"
