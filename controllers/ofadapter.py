"""The only module that touches os-ken: a base app that feeds switch events to pure
logic and turns the plain-data decisions it returns (wirelab.controllers.flows) into
OpenFlow 1.3 messages.

An app subclasses :class:`LogicApp` and says what its logic does on a switch's
connection, on a packet-in and on a control request.  Control requests arrive as one
JSON object per line on a unix socket (``control_socket`` in the app's config, a file
in the lab's workdir: no network address at all); the reply, one JSON line, is sent
once every switch touched has answered a barrier, so the flows are in force when the
caller reads it.

Written against the Ryu API, imported from os-ken: stock Ryu 4.34 does not install
with current setuptools and, installed with an old one, ``ryu.base.app_manager``
fails to import on Python 3.11 (eventlet >= 0.30.3 no longer has ALREADY_HANDLED).
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3

from wirelab.controllers.flows import Decision, FlowMod, Packet, PacketOut, parse

#: the app's configuration (a JSON object), set by wirelab.controllers.run before the
#: apps are made
CONFIG: dict[str, Any] = {}
BARRIER_TIMEOUT_S = 5.0
log = logging.getLogger(__name__)


def _port(ofp, port: int | str) -> int:
    named = {"flood": ofp.OFPP_FLOOD, "controller": ofp.OFPP_CONTROLLER, "normal": ofp.OFPP_NORMAL,
             "in_port": ofp.OFPP_IN_PORT, "all": ofp.OFPP_ALL}
    return named[port] if isinstance(port, str) else int(port)


def ofp_actions(dp, actions) -> list:
    ofp, parser = dp.ofproto, dp.ofproto_parser
    out = []
    for a in actions:
        if a[0] == "output":
            out.append(parser.OFPActionOutput(_port(ofp, a[1]), ofp.OFPCML_NO_BUFFER))
        elif a[0] == "set_field":
            out.append(parser.OFPActionSetField(**{a[1]: a[2]}))
        else:
            raise ValueError(f"unknown action {a!r}")
    return out


def ofp_flow_mod(dp, mod: FlowMod):
    ofp, parser = dp.ofproto, dp.ofproto_parser
    match = parser.OFPMatch(**mod.fields)
    if mod.command == "add":
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, ofp_actions(dp, mod.actions))]
        return parser.OFPFlowMod(dp, cookie=mod.cookie, command=ofp.OFPFC_ADD,
                                 idle_timeout=mod.idle_timeout_s, hard_timeout=mod.hard_timeout_s,
                                 priority=mod.priority, match=match, instructions=inst)
    return parser.OFPFlowMod(dp, cookie=mod.cookie, cookie_mask=0xFFFF_FFFF_FFFF_FFFF,
                             table_id=ofp.OFPTT_ALL, command=ofp.OFPFC_DELETE,
                             out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, match=match)


def ofp_packet_out(dp, out: PacketOut, packet_in=None):
    ofp, parser = dp.ofproto, dp.ofproto_parser
    if out.data or packet_in is None:
        buffer_id, data = ofp.OFP_NO_BUFFER, out.data
    else:
        buffer_id = packet_in.buffer_id
        data = packet_in.data if buffer_id == ofp.OFP_NO_BUFFER else None
    return parser.OFPPacketOut(dp, buffer_id=buffer_id, in_port=_port(ofp, out.in_port),
                               actions=ofp_actions(dp, out.actions), data=data)


class LogicApp(app_manager.OSKenApp):
    """Base of the apps: override :meth:`on_connect`, :meth:`on_packet_in` and, for
    apps that take commands, :meth:`on_request`."""
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = dict(CONFIG)
        self.datapaths: dict[int, Any] = {}
        self.lock = threading.Lock()           # logic is called from the event and control threads
        self._barriers: dict[int, threading.Event] = {}
        self.greeted: set[int] = set()          # switches this process has sent their first flows
        path = self.config.get("control_socket")
        if path:
            server = hub.StreamServer((path,), self._serve_client)
            self.threads.append(hub.spawn(server.serve_forever))

    # -- what subclasses decide ---------------------------------------------------------
    def on_connect(self, dpid: int) -> Decision:
        raise NotImplementedError

    def on_disconnect(self, dpid: int) -> None:
        pass

    def on_packet_in(self, pkt: Packet) -> Decision:
        return Decision()

    def on_request(self, req: dict) -> tuple[Decision, dict]:
        raise ValueError("this app takes no requests")

    # -- switch events ----------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _switch_features(self, ev):
        dp = ev.msg.datapath
        self.datapaths[dp.id] = dp
        with self.lock:
            decision = self.on_connect(dp.id)
        self.apply(decision)
        self.greeted.add(dp.id)
        log.info("switch %016x connected", dp.id)

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _switch_gone(self, ev):
        dpid = ev.datapath.id
        if dpid is not None and self.datapaths.get(dpid) is ev.datapath:
            del self.datapaths[dpid]
            with self.lock:
                self.on_disconnect(dpid)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg = ev.msg
        try:
            pkt = parse(msg.data, msg.datapath.id, msg.match["in_port"])
        except ValueError:
            return
        with self.lock:
            decision = self.on_packet_in(pkt)
        self.apply(decision, packet_in=msg)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier_reply(self, ev):
        done = self._barriers.pop(ev.msg.xid, None)
        if done is not None:
            done.set()

    # -- decisions -> messages ----------------------------------------------------------------
    def apply(self, decision: Decision, packet_in=None) -> None:
        """Send DECISION's flow changes, then its packet-outs (the flows first, so the
        packets that follow a packet-out meet them)."""
        for dpid, mods in decision.flows.items():
            dp = self.datapaths.get(dpid)
            if dp is not None:
                for mod in mods:
                    dp.send_msg(ofp_flow_mod(dp, mod))
        for dpid, outs in decision.packet_outs.items():
            dp = self.datapaths.get(dpid)
            if dp is not None:
                for out in outs:
                    dp.send_msg(ofp_packet_out(dp, out, packet_in))

    def barrier(self, dpids) -> None:
        """Wait until every switch of DPIDS has handled all we sent it."""
        waits = []
        for dpid in dpids:
            dp = self.datapaths.get(dpid)
            if dp is None:
                continue
            req = dp.ofproto_parser.OFPBarrierRequest(dp)
            xid = dp.set_xid(req)
            done = self._barriers[xid] = threading.Event()
            dp.send_msg(req)
            waits.append((dpid, done))
        for dpid, done in waits:
            if not done.wait(BARRIER_TIMEOUT_S):
                raise TimeoutError(f"switch {dpid:016x} did not answer a barrier in {BARRIER_TIMEOUT_S} s")

    # -- control socket ----------------------------------------------------------------------
    def _serve_client(self, sock, _addr) -> None:
        with sock, sock.makefile("rwb") as f:
            for line in f:
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict):
                        raise ValueError("a request is a JSON object")
                    if req.get("op") == "switches":     # every app: the switches it has greeted
                        decision, reply = Decision(), {"switches": sorted(self.greeted & set(self.datapaths))}
                    elif req.get("op") == "barrier":    # every app: a word to every switch, answered
                        self.barrier(list(self.datapaths))
                        decision, reply = Decision(), {"switches": sorted(self.datapaths)}
                    else:
                        with self.lock:
                            decision, reply = self.on_request(req)
                    self.apply(decision)
                    self.barrier(set(decision.flows) | set(decision.packet_outs))
                    answer = {"ok": True, **reply}
                except (ValueError, TypeError, TimeoutError) as e:
                    answer = {"ok": False, "error": str(e)}
                f.write(json.dumps(answer).encode() + b"\n")
                f.flush()
