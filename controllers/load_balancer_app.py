"""The L4 load balancer (wirelab.controllers.load_balancer) as an os-ken app; its
config holds vip, port and backends (see LoadBalancer.from_config)."""
from __future__ import annotations

from wirelab.controllers.flows import Decision, Packet
from wirelab.controllers.load_balancer import LoadBalancer
from wirelab.controllers.ofadapter import LogicApp


class LoadBalancerApp(LogicApp):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.logic = LoadBalancer.from_config(self.config)

    def on_connect(self, dpid: int) -> Decision:
        return self.logic.connected(dpid)

    def on_packet_in(self, pkt: Packet) -> Decision:
        return self.logic.packet_in(pkt)

    def on_request(self, req: dict) -> tuple[Decision, dict]:
        return self.logic.request(req)
