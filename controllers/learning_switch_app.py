"""The learning switch (wirelab.controllers.learning_switch) as an os-ken app."""
from __future__ import annotations

from wirelab.controllers.flows import Decision, Packet
from wirelab.controllers.learning_switch import LearningSwitch
from wirelab.controllers.ofadapter import LogicApp


class LearningSwitchApp(LogicApp):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.logic = LearningSwitch(**{k: v for k, v in self.config.items() if k == "idle_timeout_s"})

    def on_connect(self, dpid: int) -> Decision:
        return self.logic.connected(dpid)

    def on_packet_in(self, pkt: Packet) -> Decision:
        return self.logic.packet_in(pkt)

    def on_request(self, req: dict) -> tuple[Decision, dict]:
        return self.logic.request(req)
