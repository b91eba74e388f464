#!/usr/bin/env python3
"""VLAN-tagged frames through a guest's eth0, for tests/qinq.rs.

Run inside a guest's network namespace:

  vlanframes.py send MARK TPID:TCI...   send one broadcast frame out of eth0
                                        with these tags (outer first, hex)
                                        and the payload XNVL:<MARK>;
  vlanframes.py watch                   print "MARK TAGS" for every such frame
                                        eth0 receives (TAGS: the tag stack,
                                        outer first, as TPID:TCI in hex, or
                                        "-" for none), until killed

The kernel takes the outer tag off received frames into the packet
socket's auxdata (PACKET_AUXDATA); the watcher puts it back in front of
the tags still in the frame.
"""

import socket
import struct
import sys

DEV = "eth0"
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40


def own_mac():
    with open(f"/sys/class/net/{DEV}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def send(mark, tags):
    frame = b"\xff" * 6 + own_mac()
    for t in tags:
        tpid, tci = t.split(":")
        frame += struct.pack("!HH", int(tpid, 16), int(tci, 16))
    # An experimental EtherType (IEEE 802 local experimental 1).
    frame += struct.pack("!H", 0x88B5) + b"XNVL:" + mark.encode() + b";"
    frame += bytes(max(0, 60 - len(frame)))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((DEV, 0))
    s.send(frame)


def watch():
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((DEV, 0))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    print("ready", flush=True)
    while True:
        data, anc, _, addr = s.recvmsg(65536, socket.CMSG_SPACE(32))
        if addr[2] == PACKET_OUTGOING:
            continue
        i = data.find(b"XNVL:")
        if i < 0:
            continue
        mark = data[i + 5:data.index(b";", i)].decode()
        tags = []
        for level, typ, cdata in anc:
            if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cdata) >= 20:
                status, _, _, _, _, tci, tpid = struct.unpack("=IIIHHHH", cdata[:20])
                if status & TP_STATUS_VLAN_VALID:
                    if not status & TP_STATUS_VLAN_TPID_VALID:
                        tpid = 0x8100
                    tags.append(f"{tpid:04x}:{tci:04x}")
        off = 12
        while struct.unpack("!H", data[off:off + 2])[0] in (0x8100, 0x88A8):
            tpid, tci = struct.unpack("!HH", data[off:off + 4])
            tags.append(f"{tpid:04x}:{tci:04x}")
            off += 4
        print(mark, ",".join(tags) or "-", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3:])
    else:
        watch()
