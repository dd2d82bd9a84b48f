"""[31] connection_capacity_fd_and_4tuple: what bounds how many connections a server holds:
its file descriptors, and the 4-tuples its clients can make.

    fd_limit    a server process in h2 (soft RLIMIT_NOFILE = nofile_count; it closes every
                fd but stdin, stdout, stderr and its listening socket first) accepts until
                accept() fails with EMFILE; EXTRA more clients connect all the same and wait
                in its accept queue
    1_addr ...  h1 with 1, 2 or 3 addresses connects to ONE server port (bind(addr, 0) with
                IP_BIND_ADDRESS_NO_PORT, as load balancers do), keeping every connection
                open, until EADDRNOTAVAIL on each address; the server accepts and holds them

Prediction: accepted = nofile - 4 (the fds open when it starts accepting), queued = EXTRA;
concurrent connections to one server port = addresses x ports in ip_local_port_range.
The experiment raises its own process's soft fd limit to hold the connections (never the
hard one, never the host's), and refuses a grid point needing more fds than the hard limit
or more than a quarter of the free memory.
"""
from __future__ import annotations

import errno
import json
import resource
import socket
import subprocess
import sys

from wirelab.errors import LabError
from wirelab.peers.greeting import accept_queue
from wirelab.peers.listener import Listener
from wirelab.spec import Bars, Choice, Metric, Param, Tolerance
from wirelab.topologies.single_link import SingleLink

ID = "connection_capacity_fd_and_4tuple"
ALIASES = ("capacity",)
CLAIM = ("A server accepts until its fd limit (ulimit -n minus the fds already open), then "
         "clients wait in the accept queue; one server port takes addresses x port-range clients")
SECTION = "§7 connection limits: file descriptors, 4-tuple; §8 max connections per port"
TEXT_SAYS = "Linux default: 1024 file descriptors per process ... Theoretical max per server port ~2^48"
TOPOLOGY, TOPOLOGY_PARAMS = SingleLink, ()
NEEDS: set[str] = set()
CASES = ("fd_limit", "1_addr", "2_addrs", "3_addrs")
PARAMS = [
    Choice("case", CASES, default="fd_limit", grid=CASES, quick=CASES,
           help="the server's fd limit, or client addresses against one server port"),
    Param("nofile_count", default=1024, min=8, max=4096, type=int, grid=(1024,), quick=(64,),
          help="the server process's soft RLIMIT_NOFILE (ulimit -n)"),
    Param("ports_count", default=1000, min=10, max=28232, type=int, grid=(1000, 3000), quick=(300,),
          help="ports in the client's ip_local_port_range (from 32768 up)",
          sysctl="net.ipv4.ip_local_port_range", effect=("concurrent_count",),
          advice="widen it, or give the client more addresses, to hold more connections"),
]
REPEATS = 2
QUICK_REPEATS = 2
EXTRA, LOW, PORT = 5, 32768, 7500
_EXACT = Tolerance(abs=0.0, rel=0.0, symmetric=True)
METRICS = [
    Metric("accepted_count", "connections accepted before EMFILE", _EXACT),
    Metric("queued_count", "connections waiting in the accept queue after EMFILE", _EXACT, plot=False),
    Metric("concurrent_count", "connections open at once to one server port", _EXACT),
]
X = "case"
FIGURE = Bars("How many connections can one server hold?", (
    ("accepted before EMFILE", "accepted_count"), ("open at once to one port", "concurrent_count")),
    x="case", unit="count", ylabel="connections", labels={
        "fd_limit": "ulimit -n", "1_addr": "1 client address", "2_addrs": "2 client addresses",
        "3_addrs": "3 client addresses"})
SERVER = """
import json, os, resource, socket, sys
os.closerange(3, 1 << 16)
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1])))
ls.listen(4096)
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
print(json.dumps({"fds": sorted(int(f) for f in os.listdir("/proc/self/fd"))}), flush=True)
conns = []
while True:
    try:
        conns.append(ls.accept()[0])
    except OSError as e:
        print(json.dumps({"accepted": len(conns), "errno": e.errno}), flush=True)
        break
sys.stdin.read()
"""


def addrs_of(case: str) -> int:
    return 0 if case == "fd_limit" else int(case[0])


def lab_sysctls(params: dict) -> dict:
    return {"h1": {"net.ipv4.ip_local_port_range": f"{LOW} {LOW + int(params['ports_count']) - 1}"}}


def predict(params: dict, kernel: dict) -> dict:
    if params["case"] == "fd_limit":     # stdin, stdout, stderr and the listening socket
        return {"accepted_count": float(int(params["nofile_count"]) - 4), "queued_count": float(EXTRA)}
    lo, hi = (int(x) for x in kernel["sysctls"]["net.ipv4.ip_local_port_range"].split())
    return {"concurrent_count": float(addrs_of(params["case"]) * (hi - lo + 1))}


class _Holder(Listener):
    """Accepts and keeps every connection until the trial closes them."""

    def __init__(self, node, port: int):
        self.kept: list[socket.socket] = []
        super().__init__(node, port, backlog=4096, name=f"holder-{port}")

    def _loop(self) -> None:
        while True:
            try:
                self.kept.append(self.sock.accept()[0])
            except OSError:
                return


def prepare(lab, params: dict, ctx) -> None:
    dev = lab["h1"].intf().name
    for i in range(1, addrs_of(params["case"])):
        lab["h1"].run(["ip", "addr", "add", f"10.0.0.{10 + i}/24", "dev", dev])
    conns = addrs_of(params["case"]) * int(params["ports_count"])
    avail_kb = lab.available_memory_bytes() // 1024         # its cgroup's room, or MemAvailable
    if conns * 20 > avail_kb // 4:      # ~10 KB per connection (two ends), a quarter of what is free
        raise LabError(f"{conns} connections need ~{conns * 20 // 1024} MB; {avail_kb // 1024} MB available")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * conns + 256
    if need > hard:
        raise LabError(f"{conns} connections need {need} fds in this process; its hard limit "
                       f"(ulimit -Hn) is {hard}: use fewer ports_count or addresses")
    if need > soft:             # this process only; put back when the lab closes
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        lab.undo.push("restore the fd limit",
                      lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))


def _fd_limit(lab, params: dict, ctx) -> dict:
    port, nofile = PORT + ctx.repeat, int(params["nofile_count"])
    proc = lab["h2"].popen([sys.executable, "-c", SERVER, str(port), str(nofile)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    start = json.loads(proc.stdout.readline())
    lab["h2"].wait_listening(port)
    clients = []
    try:
        for _ in range(nofile - 4 + EXTRA):
            s = lab["h1"].socket()
            clients.append(s)
            s.connect((lab["h2"].ip(), port))
        end = json.loads(proc.stdout.readline())
        queued = accept_queue(lab["h2"], port)
    finally:
        for s in clients:
            s.close()
        proc.stdin.close()
        proc.wait(10)
    ctx.raw.write_text("fd_limit.jsonl", json.dumps({"repeat": ctx.repeat, **start, **end,
                                                      "queued": queued}) + "\n")
    if end["errno"] != errno.EMFILE:
        raise LabError(f"accept() failed with errno {end['errno']}, not EMFILE")
    return {"accepted_count": float(end["accepted"]), "queued_count": float(queued)}


def _four_tuple(lab, params: dict, ctx) -> dict:
    port, k = PORT + 10 + ctx.repeat, addrs_of(params["case"])
    holder, clients, per_addr = _Holder(lab["h2"], port), [], []
    try:
        for addr in ["10.0.0.1"] + [f"10.0.0.{10 + i}" for i in range(1, k)]:
            made = 0
            while made <= 2 * int(params["ports_count"]):
                s = lab["h1"].socket()
                s.setsockopt(socket.IPPROTO_IP, 24, 1)        # IP_BIND_ADDRESS_NO_PORT
                s.bind((addr, 0))
                try:
                    s.connect((lab["h2"].ip(), port))
                except OSError as e:
                    s.close()
                    if e.errno != errno.EADDRNOTAVAIL:
                        raise LabError(f"{addr}: connect {made + 1}: {e!r}") from e
                    break
                clients.append(s)
                made += 1
            per_addr.append(made)
    finally:
        for s in clients:
            s.close()
        holder.close()
        for c in holder.kept:
            c.close()
    ctx.raw.write_text("four_tuple.jsonl", json.dumps({"repeat": ctx.repeat, "per_addr": per_addr}) + "\n")
    return {"concurrent_count": float(sum(per_addr))}


def trial(lab, params: dict, ctx) -> dict:
    return _fd_limit(lab, params, ctx) if params["case"] == "fd_limit" else _four_tuple(lab, params, ctx)
