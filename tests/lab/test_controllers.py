"""The three controllers (controllers/, os-ken) running real Open vSwitch bridges in a
lab: the userspace datapath on this machine's host kernel (wirelab.lab.openflow)."""
from __future__ import annotations

import socket
import threading
import time
from collections import Counter

import pytest

from support import lab_namespaces
from wirelab.controllers.load_balancer import pick_hash
from wirelab.errors import LabError
from wirelab.kernel.backend import HostLock
from wirelab.lab.openflow import OpenFlowLab
from wirelab.topologies.dumbbell import Dumbbell

pytestmark = pytest.mark.lab


@pytest.fixture
def host_lock():
    """One lab at a time on this machine (the same lock `wirelab run` takes)."""
    with HostLock():
        yield


def mac_of(node) -> str:
    intf = node.intf()
    return node.ipr.get_links(intf.index)[0].get_attr("IFLA_ADDRESS")


def serve(node, port: int, reply: bytes, stop: threading.Event) -> threading.Thread:
    """Accept connections on PORT in NODE until STOP; each gets REPLY and is closed."""
    srv = node.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)
    srv.settimeout(0.2)

    def loop() -> None:
        with srv:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.sendall(reply)
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def fetch(node, addr: str, port: int, timeout_s: float = 3.0) -> tuple[int, bytes]:
    """Connect from NODE to ADDR:PORT, read to EOF: (our source port, what came)."""
    with node.socket() as s:
        s.settimeout(timeout_s)
        s.connect((addr, port))
        src_port = s.getsockname()[1]
        data = b""
        while chunk := s.recv(100):
            data += chunk
    return src_port, data


def test_learning_switch_forwards_and_installs_flows(host_lock, no_leftovers):
    t0 = time.monotonic()
    with OpenFlowLab(Dumbbell(pairs=2), "wirelab.controllers.learning_switch_app") as lab:
        built_s = time.monotonic() - t0
        assert lab.datapath in ("netdev", "system")
        h4 = mac_of(lab["h4"])
        assert not any(h4 in f for b in ("s1", "s2") for f in lab.controller.flows(b))
        assert all(any("priority=0 actions=CONTROLLER" in f for f in lab.controller.flows(b))
                   for b in ("s1", "s2")), "the table-miss flow sends to the controller"
        for src, dst in (("h1", "10.0.0.4"), ("h2", "10.0.0.3")):
            res = lab[src].run(["ping", "-c", "3", "-i", "0.2", "-W", "2", dst], check=False)
            assert " 0% packet loss" in res.stdout, res.stdout
        hosts = {mac_of(lab[h]) for h in ("h1", "h2", "h3", "h4")}
        for b in ("s1", "s2"):
            learned = [f for f in lab.controller.flows(b) if "cookie=0x15" in f and "priority=10" in f]
            assert any(f"dl_dst={h4}" in f for f in learned), (b, learned)
            # Two pairs pinged both ways across both switches: a flow per direction and
            # pair on each (the bridges' own ports may add flows of their own chatter).
            between_hosts = [f for f in learned if sum(m in f for m in hosts) == 2]
            assert len(between_hosts) == 4, (b, learned)
        print(f"learning switch lab: built in {built_s:.1f} s on datapath {lab.datapath}")
    assert not any(n.startswith(lab.tag) for n in lab_namespaces())


def test_partition_isolates_and_heals(host_lock, no_leftovers):
    with OpenFlowLab(Dumbbell(pairs=1), "wirelab.controllers.partition_app") as lab:
        h1, h2 = lab["h1"], lab["h2"]
        stop = threading.Event()
        server = serve(h2, 5001, b"h2", stop)
        try:
            assert fetch(h1, h2.ip(), 5001)[1] == b"h2"
            reply = lab.controller.request({"op": "isolate", "groups": [[h1.ip()], [h2.ip()]]})
            assert reply["groups"] == [[h1.ip()], [h2.ip()]]
            drops = [f for f in lab.controller.flows("s1") if "cookie=0x5a" in f]
            assert len(drops) == 4 and all("actions=drop" in f for f in drops), drops
            with pytest.raises(TimeoutError):
                fetch(h1, h2.ip(), 5001, timeout_s=1.5)
            ping = h2.run(["ping", "-c", "2", "-i", "0.2", "-W", "1", h1.ip()], check=False)
            assert "100% packet loss" in ping.stdout, ping.stdout
            lab.controller.request({"op": "heal"})
            assert not [f for f in lab.controller.flows("s2") if "cookie=0x5a" in f]
            assert fetch(h1, h2.ip(), 5001)[1] == b"h2"
            with pytest.raises(LabError, match="more than one group"):
                lab.controller.request({"op": "isolate", "groups": [[h1.ip()], [h1.ip()]]})
        finally:
            stop.set()
            server.join(5)


def test_load_balancer_spreads_connections_as_the_logic_predicts(host_lock, no_leftovers):
    vip, vport, bport, n = "10.0.0.100", 80, 8080, 30
    backends = ["h2", "h3", "h4"]   # h2 shares s1 with the client h1; h3 and h4 sit behind s2
    macs = {h: f"02:00:00:00:01:0{h[1:]}" for h in backends}
    config = {"vip": vip, "port": vport, "policy": "hash",
              "backends": [{"ip": f"10.0.0.{h[1:]}", "mac": macs[h], "port": bport} for h in backends]}
    with OpenFlowLab(Dumbbell(pairs=2), "wirelab.controllers.load_balancer_app", config=config) as lab:
        # The app knows its backends by MAC: give them the configured ones before any traffic.
        for h in backends:
            lab[h].ipr.link("set", index=lab[h].intf().index, address=macs[h])
            assert mac_of(lab[h]) == macs[h]
        stop = threading.Event()
        servers = [serve(lab[h], bport, h.encode(), stop) for h in backends]
        try:
            answers = [fetch(lab["h1"], vip, vport) for _ in range(n)]
        finally:
            stop.set()
            for t in servers:
                t.join(5)
        client = lab["h1"].ip()
        predicted = [backends[pick_hash(client, port, len(backends))] for port, _ in answers]
        measured = [data.decode() for _, data in answers]
        assert measured == predicted          # every connection on the backend the logic names
        counts = Counter(measured)
        status = lab.controller.request({"op": "status"})
        assert status["spread"] == [counts[h] for h in backends]
        assert sum(status["spread"]) == n
        assert all(counts[h] > 0 for h in backends), counts
        # The client only ever saw the VIP; the rewrite flows sit on the client's switch.
        rewrites = [f for f in lab.controller.flows("s1") if "priority=200" in f]
        assert len(rewrites) == 2 * n, len(rewrites)
        assert any(f"set_field:{vip}->ip_src" in f for f in rewrites), rewrites[:2]
        print(f"load balancer: {dict(counts)} over {n} connections (predicted exactly)")
