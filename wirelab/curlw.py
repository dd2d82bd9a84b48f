"""curl as a measuring tool: its ``-w`` (write-out) timings, parsed by pure
functions (tested on captured output without root).

curl's ``time_*`` write-out values are *cumulative*, in seconds, from the
start of each transfer: ``time_connect`` includes ``time_namelookup``,
``time_appconnect`` includes ``time_connect``, and so on.  They are
converted to milliseconds here and never differenced silently.
"""
from __future__ import annotations


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
