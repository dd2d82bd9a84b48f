"""curl as a measuring tool: its ``-w`` (write-out) timings and its
``--trace-time`` verbose log, parsed by pure functions (tested on captured
output without root).

curl's ``time_*`` write-out values are *cumulative*, in seconds, from the
start of each transfer: ``time_connect`` includes ``time_namelookup``,
``time_appconnect`` includes ``time_connect``, and so on.  They are
converted to milliseconds here and never differenced silently.
"""
from __future__ import annotations

import re

#: The phases of one transfer, in the order curl reaches them (curl's names).
PHASES = ("time_namelookup", "time_connect", "time_appconnect", "time_starttransfer",
          "time_total")

#: Write-out fields of one transfer: the phases and what proves the transfer
#: is the one we meant (a new connection, the HTTP and TLS versions, a 200).
FIELDS = (*PHASES, "num_connects", "http_version", "response_code", "size_download",
          "local_port", "header:x-tls", "url_effective")


#: TLS version -> (the name OpenSSL and nginx's $ssl_protocol give it, the
#: curl options that make curl offer that version and no other).
TLS_VERSIONS = {"1.2": ("TLSv1.2", ["--tlsv1.2", "--tls-max", "1.2"]),
                "1.3": ("TLSv1.3", ["--tlsv1.3"])}


class CurlOutputError(ValueError):
    """curl's output is not what the format we gave it produces."""


def write_out_format(fields=FIELDS) -> str:
    """The ``-w`` argument: FIELDS separated by tabs, one line per transfer."""
    parts = [f"%header{{{f.split(':', 1)[1]}}}" if f.startswith("header:") else f"%{{{f}}}"
             for f in fields]
    return "\\t".join(parts) + "\\n"


def parse_write_out(text: str, fields=FIELDS) -> list[dict]:
    """One dict per transfer from curl's -w output made by
    :func:`write_out_format`.  ``time_*`` become ``*_ms`` floats in ms;
    counts become ints; other fields stay strings."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(fields):
            raise CurlOutputError(f"expected {len(fields)} tab-separated fields, got "
                                  f"{len(cells)}: {line!r}")
        row: dict = {}
        for name, cell in zip(fields, cells):
            try:
                if name.startswith("time_"):
                    row[name[len("time_"):] + "_ms"] = float(cell) * 1e3
                elif name in ("num_connects", "response_code", "size_download", "local_port"):
                    row[name] = int(cell)
                else:
                    row[name.split(":", 1)[-1]] = cell
            except ValueError as e:
                raise CurlOutputError(f"field {name}: {cell!r} is not a number") from e
        rows.append(row)
    return rows


_TRACE_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{6}) (.*)$")


def trace_events(text: str) -> list[tuple[float, str]]:
    """(seconds since midnight, message) for each line of a ``-v
    --trace-time`` log; lines without a timestamp (continuations, the
    progress meter) are skipped.  A run that crosses midnight is unwrapped."""
    out: list[tuple[float, str]] = []
    offset = 0.0
    for line in text.splitlines():
        m = _TRACE_LINE.match(line)
        if not m:
            continue
        h, mi, s, us, msg = m.groups()
        t = int(h) * 3600 + int(mi) * 60 + int(s) + int(us) / 1e6 + offset
        if out and t < out[-1][0] - 43200:      # wrapped past midnight
            offset += 86400.0
            t += 86400.0
        out.append((t, msg))
    return out


def batch_span_ms(text: str) -> dict:
    """The span of a batch of transfers from curl's own ``--trace-time`` log:
    from its first event (the first transfer starting) to the last time a
    connection was released ("Connection #N to host H left intact", or
    "Closing connection N"), which curl logs when a transfer is done and
    nothing else uses the connection, in ms; with the number of connections
    opened ("Connected to H (IP) port P (#N)")."""
    events = trace_events(text)
    if not events:
        raise CurlOutputError("no timestamped line in the curl trace")
    done = [t for t, msg in events
            if re.search(r"Connection #\d+ to host .* left intact|Closing connection \d+", msg)]
    if not done:
        raise CurlOutputError("the curl trace shows no finished transfer")
    connects = {int(m.group(1)) for _, msg in events
                if (m := re.search(r"Connected to .* \(#(\d+)\)", msg))}
    return {"span_ms": (max(done) - events[0][0]) * 1e3, "released": len(done),
            "connections": len(connects)}
