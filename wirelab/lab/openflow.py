"""A lab whose switches an OpenFlow controller runs: Open vSwitch bridges (OpenFlow
1.3, fail-mode secure by default) and one os-ken app, both in the lab's switch
namespace, both owned by the lab.

::

    with OpenFlowLab(Dumbbell(pairs=1), "wirelab.controllers.partition_app") as lab:
        lab.controller.request({"op": "isolate", "groups": [["10.0.0.1"], ["10.0.0.2"]]})

The controller (``python -m wirelab.controllers.run APP``, os-ken) listens on
127.0.0.1 of the switch namespace: that namespace's own loopback, which neither the
hosts nor the machine's network can reach.  It takes control requests on a unix
socket in the lab's workdir.  It is started before the bridges exist, so they connect
at once, and it is stopped (TERM, KILL, reap) with the lab, before ovs-vswitchd;
Ctrl-C unwinds the same way.

Datapath: ``auto`` takes the kernel's where it works (a kernel with the openvswitch
module, outside UML) and OVS's userspace datapath otherwise, which is every machine
this project runs on today: the host kernel has no openvswitch module, and in UML the
kernel datapath loses every upcall, the one thing a controller lives on (see
wirelab.lab.ovs).  The userspace datapath is slow; an OpenFlow lab is for behaviour
(what is forwarded, dropped, rewritten), not for timings.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from wirelab.errors import BadInput, LabError
from wirelab.lab import ovs
from wirelab.lab.net import Lab
from wirelab.lab.wait import poll

DATAPATHS = ("auto", *ovs.DATAPATHS)
OFP_PORT = 6653


class Controller:
    """The running controller of an OpenFlow lab."""

    def __init__(self, lab: OpenFlowLab, proc: subprocess.Popen, workdir: Path):
        self.lab, self.proc, self.workdir = lab, proc, workdir
        self.control_socket = workdir / "control.sock"
        self.log_path = workdir / "controller.log"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> float:
        """SIGKILL the app (a controller that dies, as a crash would: no goodbye to the
        switches) and reap it; the monotonic time of the kill."""
        t = time.monotonic()
        self.proc.kill()
        self.proc.wait(10)
        return t

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def request(self, req: dict, timeout_s: float = 15.0) -> dict:
        """Send one control request to the app; its reply (the app has applied the
        request's flow changes on every switch, barrier answered, when this returns).
        LabError if the app refuses it."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            try:
                s.connect(str(self.control_socket))
                s.sendall(json.dumps(req).encode() + b"\n")
                with s.makefile("rb") as f:
                    line = f.readline()
            except OSError as e:
                raise LabError(f"controller request {req!r} failed: {e}; log: {self.log_tail(500)}") from e
        if not line:
            raise LabError(f"controller closed the control socket on {req!r}; log: {self.log_tail(500)}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise LabError(f"controller refused {req!r}: {reply.get('error')}")
        return reply

    def flows(self, bridge: str) -> list[str]:
        """The flows of BRIDGE as ovs-ofctl prints them, one a line (OpenFlow 1.3)."""
        sw = self.lab.nodes[bridge]
        out = ovs.ofctl(self.lab, sw, bridge, "dump-flows").stdout
        return [ln.strip() for ln in out.splitlines() if "actions=" in ln]


class OpenFlowLab(Lab):
    """A :class:`~wirelab.lab.net.Lab` whose switches run controller app APP (a module
    name, e.g. ``wirelab.controllers.learning_switch_app``) with CONFIG (a JSON object
    the app reads).  Ready when every bridge is connected and holds the app's first
    flows."""

    def __init__(self, topo, app: str, *, config: dict | None = None, datapath: str = "auto",
                 fail_mode: str = "secure", inactivity_probe_s: int | None = None,
                 ready_timeout_s: float = 30.0, **kwargs):
        if datapath not in DATAPATHS:
            raise BadInput(f"datapath={datapath!r}: allowed {', '.join(DATAPATHS)}")
        if fail_mode not in ovs.FAIL_MODES:
            raise BadInput(f"fail_mode={fail_mode!r}: allowed {', '.join(ovs.FAIL_MODES)}")
        if inactivity_probe_s is not None and not 5 <= inactivity_probe_s <= 3600:
            raise BadInput(f"inactivity_probe_s={inactivity_probe_s!r}: allowed 5 to 3600 "
                           "(Open vSwitch raises anything under 5 s to 5 s)")
        if not app.replace(".", "").replace("_", "").isalnum():
            raise BadInput(f"app={app!r}: a Python module name")
        if kwargs.pop("switch", "ovs") != "ovs":
            raise BadInput("an OpenFlow lab's switches are Open vSwitch bridges: switch='ovs' only")
        super().__init__(topo, switch="ovs", **kwargs)
        self.app, self.app_config = app, dict(config or {})
        self.datapath, self.fail_mode = datapath, fail_mode
        self.inactivity_probe_s = inactivity_probe_s
        self.ready_timeout_s = ready_timeout_s
        self.controller: Controller | None = None
        self.ovs_options: ovs.OvsOptions | None = None
        self.bridges: list[str] = []

    def _switch_kind(self) -> str:
        ok, why = ovs.tools()
        if not ok:
            raise LabError(f"an OpenFlow lab needs Open vSwitch: {why}")
        datapath = self.datapath
        if datapath == "auto":
            kernel_ok = ovs.kernel_datapath()[0] and ovs.usable_in_auto()[0]
            datapath = "system" if kernel_ok else "netdev"
        elif datapath == "system" and not ovs.kernel_datapath()[0]:
            raise LabError(f"datapath=system: {ovs.kernel_datapath()[1]}")
        self.datapath = datapath
        self.ovs_options = ovs.OvsOptions(datapath=datapath, fail_mode=self.fail_mode,
                                          controller=f"tcp:127.0.0.1:{OFP_PORT}", protocols="OpenFlow13",
                                          before_bridges=self._start_controller,
                                          inactivity_probe_ms=None if self.inactivity_probe_s is None
                                          else 1000 * self.inactivity_probe_s)
        return "ovs"

    def _start_controller(self, sw_node) -> None:
        d = self.workdir / "controller"
        d.mkdir(exist_ok=True)
        (d / "control.sock").unlink(missing_ok=True)
        conf = d / "app.json"
        conf.write_text(json.dumps({**self.app_config, "control_socket": str(d / "control.sock")}))
        with open(d / "controller.log", "ab") as logf:
            proc = sw_node.popen([sys.executable, "-m", "wirelab.controllers.run", self.app,
                                  "--listen", f"127.0.0.1:{OFP_PORT}", "--config", str(conf)],
                                 stdout=logf, stderr=subprocess.STDOUT)
        ctl = self.controller = Controller(self, proc, d)

        def up() -> bool:
            if not ctl.alive():
                raise LabError(f"controller {self.app} exited {proc.returncode}: {ctl.log_tail()}")
            return sw_node.listening(OFP_PORT) and ctl.control_socket.exists()
        poll(up, self.ready_timeout_s, f"controller {self.app} to listen")

    def _build(self) -> None:
        topo = self.topo
        self.bridges = [n for n in topo.nodes() if topo.isSwitch(n)]
        if not self.bridges:
            raise BadInput("an OpenFlow lab needs a topology with at least one switch")
        super()._build()
        self._wait_ready()

    def restart_controller(self) -> None:
        """Start the app again (after :meth:`Controller.kill`, say) and wait until every
        bridge has reconnected and holds the app's first flows again."""
        ctl = self.controller
        if ctl is not None and ctl.alive():
            raise LabError(f"controller {self.app} is still running")
        self._start_controller(self.nodes[self.bridges[0]])
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Every bridge connected to this app process, which has sent it its first flows
        (asked of the app itself: after a restart in fail-mode secure the bridges still
        hold the dead process's flows), and holding flows."""
        ctl = self.controller
        assert ctl is not None

        def greeted() -> bool:
            if not ctl.alive():
                raise LabError(f"controller {self.app} exited: {ctl.log_tail()}")
            return len(ctl.request({"op": "switches"})["switches"]) == len(self.bridges)
        poll(greeted, self.ready_timeout_s, f"every switch to connect to {self.app}")
        for b in self.bridges:
            def ready(b=b) -> bool:
                connected = ovs.vsctl(self, self.nodes[b], "get", "controller", b, "is_connected")
                return connected.stdout.strip() == "true" and bool(ctl.flows(b))
            poll(ready, self.ready_timeout_s, f"switch {b} to connect to {self.app} and get its flows")
