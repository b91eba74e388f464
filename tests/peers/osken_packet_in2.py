#!/usr/bin/env python3
"""An os-ken app for xennet's NXT_PACKET_IN2 test (OpenFlow 1.5).

On FEATURES_REPLY it asks for NXT_PACKET_IN2 (NXT_SET_PACKET_IN_FORMAT 2)
and installs, in table 0, a flow that loads reg1=0x2a and sends the packet
to the controller with userdata 01:02:03 (NXAST_CONTROLLER2). Each
NXT_PACKET_IN2 it receives is logged on one line:

    PACKET_IN2 table_id=T reason=R userdata=HEX metadata=HEX len=N

usage: osken_packet_in2.py --ofp-listen-host 127.0.0.1 --ofp-tcp-listen-port P
"""
import logging
import os
import sys

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import controller  # noqa: F401 (registers ofp options)
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER
from os_ken.controller.handler import set_ev_cls
from os_ken.ofproto import ofproto_v1_5

LOG = logging.getLogger("packet_in2")


class PacketIn2(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_5.OFP_VERSION]

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        dp.send_msg(parser.NXTSetPacketInFormatMsg(dp, 2))
        actions = [
            parser.OFPActionSetField(reg1=0x2a),
            parser.NXActionController2(userdata=b"\x01\x02\x03"),
        ]
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
        dp.send_msg(parser.OFPFlowMod(datapath=dp, priority=10,
                                      match=parser.OFPMatch(),
                                      instructions=inst))
        LOG.info("switch connected, flow installed")

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def error(self, ev):
        LOG.info("ERROR type=%d code=%d", ev.msg.type, ev.msg.code)

    @set_ev_cls(ofp_event.EventNXTPacketIn2, MAIN_DISPATCHER)
    def packet_in2(self, ev):
        m = ev.msg
        LOG.info("PACKET_IN2 table_id=%s reason=%s userdata=%s metadata=%s "
                 "len=%d", m.table_id, m.reason,
                 bytes(m.userdata or b"").hex(),
                 bytes(m.metadata or b"").hex(), len(m.data or b""))


def main(argv):
    cfg.CONF(args=argv, project='os_ken')
    logging.basicConfig(level=logging.INFO,
                        format='%(asctime)s %(name)s %(levelname)s %(message)s')
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    app_manager.AppManager.run_apps(['osken_packet_in2'])


if __name__ == '__main__':
    main(sys.argv[1:])
