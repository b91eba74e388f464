#!/usr/bin/env python3
"""An os-ken (OpenStack's Ryu) L2 learning controller for xennet's tests.

os-ken 4.x ships neither `osken-manager` nor the sample applications, so
this file is both: it registers the app below and runs it with os-ken's
AppManager. The app behaves like Ryu's classic simple_switch_13:

* on FEATURES_REPLY: install the table-miss flow (priority 0, output to the
  controller, whole packet);
* on PACKET_IN: learn (datapath, source MAC) -> in_port; when the
  destination is known, install a priority-1 flow on (in_port, eth_src,
  eth_dst) to it; send the packet out (flooding when unknown).

usage: osken_l2switch.py --ofp-listen-host 127.0.0.1 --ofp-tcp-listen-port P
   or: osken_l2switch.py --ofp-switch-address-list 127.0.0.1:P  (connect out)
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
from os_ken.lib.packet import ethernet, ether_types, packet
from os_ken.ofproto import ofproto_v1_3

LOG = logging.getLogger("l2switch")


class L2Switch(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.macs = {}

    @staticmethod
    def flow(dp, priority, match, actions):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
        dp.send_msg(parser.OFPFlowMod(datapath=dp, priority=priority,
                                      match=match, instructions=inst))

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def on_features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        LOG.info("switch connected dpid=%016x", dp.id)
        self.flow(dp, 0, parser.OFPMatch(),
                  [parser.OFPActionOutput(ofp.OFPP_CONTROLLER,
                                          ofp.OFPCML_NO_BUFFER)])

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def on_packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        in_port = msg.match['in_port']
        eth = packet.Packet(msg.data).get_protocols(ethernet.ethernet)[0]
        if eth.ethertype == ether_types.ETH_TYPE_LLDP:
            return
        table = self.macs.setdefault(dp.id, {})
        table[eth.src] = in_port
        out = table.get(eth.dst, ofp.OFPP_FLOOD)
        LOG.info("packet-in in_port=%s %s -> %s: out %s", in_port, eth.src,
                 eth.dst, out)
        actions = [parser.OFPActionOutput(out)]
        if out != ofp.OFPP_FLOOD:
            self.flow(dp, 1, parser.OFPMatch(in_port=in_port, eth_src=eth.src,
                                             eth_dst=eth.dst), actions)
        dp.send_msg(parser.OFPPacketOut(datapath=dp, buffer_id=msg.buffer_id,
                                        in_port=in_port, actions=actions,
                                        data=msg.data))


def main(argv):
    cfg.CONF(args=argv, project='os_ken')
    logging.basicConfig(level=logging.INFO,
                        format='%(asctime)s %(name)s %(levelname)s %(message)s')
    # Load this file as a module by name, as os-ken's loader expects.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    app_manager.AppManager.run_apps(['osken_l2switch'])


if __name__ == '__main__':
    main(sys.argv[1:])
