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


#: TLS version -> the curl options that make curl offer that version and no other.
TLS_FLAGS = {"1.2": ["--tlsv1.2", "--tls-max", "1.2"], "1.3": ["--tlsv1.3"]}


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
        for name, cell in zip(fields, cells, strict=True):
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


def check_fresh(rows: list[dict], names: list[str], page_bytes: int, tls_name: str,
                http_version: str = "1.1") -> None:
    """Each transfer to NAMES is what was meant: its own new connection, HTTP_VERSION,
    the TLS version TLS_NAME (from the server's X-TLS header), a 200 with the whole
    page.  Raise LabError naming the first that is not."""
    from wirelab.errors import LabError
    if len(rows) != len(names):
        raise LabError(f"curl reported {len(rows)} transfers for {len(names)} URLs")
    for row, name in zip(rows, names, strict=True):
        problems = []
        if row["response_code"] != 200 or row["size_download"] != page_bytes:
            problems.append(f"HTTP {row['response_code']}, {row['size_download']} B")
        if row["num_connects"] != 1:
            problems.append(f"{row['num_connects']} new connections")
        if row["http_version"] != http_version or row["x-tls"] != tls_name:
            problems.append(f"HTTP/{row['http_version']} over {row['x-tls'] or '?'}")
        if name not in row["url_effective"]:
            problems.append(f"URL {row['url_effective']}")
        if problems:
            raise LabError(f"transfer to {name} is not a fresh {tls_name} fetch: "
                           + "; ".join(problems))


def check_batch(rows: list[dict], count: int, size_bytes: int, http_version: str,
                connections: int, label: str) -> None:
    """A batch of COUNT transfers of SIZE_BYTES each, over HTTP_VERSION, that used
    CONNECTIONS new connections in all; LabError naming LABEL otherwise."""
    from wirelab.errors import LabError
    bad = [r for r in rows if r["response_code"] != 200 or r["size_download"] != size_bytes
           or r["http_version"] != http_version]
    conns = sum(r["num_connects"] for r in rows)
    if len(rows) != count or bad or conns != connections:
        raise LabError(f"curl ({label}): {len(rows)} transfers, {len(bad)} not a whole "
                       f"HTTP/{http_version} object, {conns} connections (want {connections})")


def fetch_argv(urls: list[str], tls: str, ca: str, per_minute: int | None = None,
               resolve: dict[str, str] | None = None, http: str = "--http1.1",
               extra: tuple[str, ...] = ()) -> list[str]:
    """One curl process fetching every URL in turn (each on a new connection when the
    host names differ), TLS pinned to one version, verifying against CA, at most
    PER_MINUTE transfers a minute, writing the -w fields of write_out_format()."""
    argv = ["curl", "--silent", "--show-error", http, "--cacert", ca, *TLS_FLAGS[tls],
            *extra, "--write-out", write_out_format()]
    if per_minute:
        argv += ["--rate", f"{per_minute}/m"]
    for host, address in (resolve or {}).items():
        argv += ["--resolve", f"{host}:443:{address}"]
    for url in urls:
        argv += ["--output", "/dev/null", url]
    return argv
