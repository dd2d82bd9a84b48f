"""The partition injector (wirelab.controllers.partition) as an os-ken app: the
learning switch forwards, the injector's drops sit above it, and control requests
isolate and heal."""
from __future__ import annotations

from wirelab.controllers.flows import Decision, Packet
from wirelab.controllers.learning_switch import LearningSwitch
from wirelab.controllers.ofadapter import LogicApp
from wirelab.controllers.partition import Partition


class PartitionApp(LogicApp):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.switching = LearningSwitch()
        self.partition = Partition()

    def on_connect(self, dpid: int) -> Decision:
        d = self.switching.connected(dpid)
        d.extend(self.partition.connected(dpid))
        return d

    def on_disconnect(self, dpid: int) -> None:
        self.partition.disconnected(dpid)

    def on_packet_in(self, pkt: Packet) -> Decision:
        return self.switching.packet_in(pkt)

    def on_request(self, req: dict) -> tuple[Decision, dict]:
        return self.partition.request(req)
