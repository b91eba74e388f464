#!/usr/bin/env python3
"""Record what plain `ovs-ofctl` (OpenFlow 1.0 + Nicira extensions) sends.

Runs a minimal fake OpenFlow 1.0 switch on 127.0.0.1, points a list of
ovs-ofctl commands at it and writes every message ovs-ofctl sent, as
`<command>\t<hex>` lines, to ofctl-of10-commands.txt (read by
tests/of10_capture.rs). The fake switch answers HELLO, ECHO, BARRIER,
FEATURES_REQUEST (one port, 1 "p1") and GET_CONFIG_REQUEST, and
anything else that wants an answer with an empty stats reply or an error:
only the requests matter.

Usage: python3 ofctl-of10-commands.py   (needs ovs-ofctl in PATH)
"""

import os
import socket
import struct
import subprocess
import threading

HERE = os.path.dirname(os.path.abspath(__file__))

COMMANDS = [
    "add-flow {t} priority=5,in_port=1,actions=output:2",
    "add-flow {t} in_port=1,dl_src=00:11:22:33:44:55,dl_dst=ff:ff:ff:ff:ff:ff,dl_vlan=10,dl_vlan_pcp=3,ip,nw_src=10.0.0.0/8,nw_dst=192.168.1.1,nw_tos=184,tcp,tp_src=1000,tp_dst=80,actions=mod_vlan_vid:20,mod_vlan_pcp:1,strip_vlan,mod_dl_src:02:00:00:00:00:01,mod_dl_dst:02:00:00:00:00:02,mod_nw_src:1.2.3.4,mod_nw_dst:5.6.7.8,mod_nw_tos:32,mod_tp_src:11,mod_tp_dst:22,enqueue:3:7,output:controller,NORMAL",
    "add-flow {t} priority=7,dl_vlan=0xffff,arp,arp_op=1,arp_tpa=10.0.0.1,actions=flood",
    "add-flow {t} priority=8,icmp,icmp_type=8,icmp_code=0,actions=in_port,local,all",
    "add-flow {t} priority=9,udp,tp_dst=53,actions=mod_tp_dst:5353,output:3",
    "add-flow {t} table=3,priority=10,ip,actions=resubmit(,4),resubmit(2),resubmit(3,5),dec_ttl,set_queue:4,output:1",
    "add-flow {t} priority=11,ipv6,ipv6_src=2001:db8::/32,actions=set_field:2001:db8::1->ipv6_dst,mod_nw_ttl:9,output:1",
    "add-flow {t} priority=12,ip,nw_ttl=5,actions=drop",
    "add-flow {t} priority=13,tcp,tcp_flags=+syn,actions=output:1",
    "add-flow {t} priority=14,ip,ip_ecn=1,actions=output:1",
    "add-flow {t} priority=15,arp,arp_spa=10.0.0.0/24,actions=set_field:10.0.0.9->arp_tpa,output:1",
    "add-flow {t} cookie=0x12,idle_timeout=30,hard_timeout=60,send_flow_rem,check_overlap,priority=16,in_port=LOCAL,actions=output:1",
    "add-flow {t} priority=17,ip,actions=set_field:1->ip_ecn,set_field:64->nw_ttl,output:1",
    "add-flow {t} priority=18,arp,actions=set_field:2->arp_op,set_field:00:11:22:33:44:55->eth_src,output:1",
    "add-flow {t} priority=19,icmp,actions=set_field:8->icmp_type,set_field:1->icmp_code,output:1",
    "add-flow {t} priority=20,icmp6,actions=set_field:128->icmpv6_type,output:1",
    "mod-flows {t} in_port=1,actions=output:3",
    "mod-flows {t} cookie=0x12/-1,actions=output:2",
    "mod-flows {t} cookie=0x12,actions=output:2",
    "mod-flows --strict {t} priority=5,in_port=1,actions=output:3",
    "del-flows {t}",
    "del-flows {t} in_port=1",
    "del-flows --strict {t} priority=5,in_port=1",
    "del-flows {t} table=3",
    "del-flows {t} cookie=0x12/-1",
    "del-flows {t} out_port=2",
    "dump-flows {t}",
    "dump-flows {t} ip,nw_dst=10.0.0.0/8",
    "dump-flows {t} table=3",
    "dump-flows {t} cookie=0x10/0xf0",
    "dump-aggregate {t}",
    "dump-aggregate {t} in_port=1",
    "dump-tables {t}",
    "dump-ports {t}",
    "dump-ports {t} 1",
    "dump-ports-desc {t}",
    "dump-desc {t}",
    "queue-stats {t}",
    "queue-stats {t} 1 2",
    "get-frags {t}",
    "set-frags {t} drop",
    "mod-port {t} 1 down",
    "mod-port {t} 1 no-flood",
    "packet-out {t} in_port=controller,packet=ffffffffffff000000000001080600010800060400010000000000010a0000010000000000000a000002,actions=output:1",
    "packet-out {t} in_port=1,packet=ffffffffffff0000000000010800450000140000000040000000000000000000000000,actions=mod_vlan_vid:5,output:2",
    "show {t}",
    "probe {t}",
]


def header(typ, length, xid):
    return struct.pack("!BBHI", 1, typ, length, xid)


def phy_port(no, name):
    return struct.pack(
        "!H6s16sIIIIII",
        no,
        bytes([2, 0, 0, 0, 0, no]),
        name.encode(),
        0,
        0,
        (1 << 5) | (1 << 7),
        0,
        (1 << 5) | (1 << 7),
        0,
    )


def reply_to(typ, body, xid):
    """The fake switch's answer to one message, or None."""
    if typ == 2:  # ECHO_REQUEST
        return header(3, 8 + len(body), xid) + body
    if typ == 18:  # BARRIER_REQUEST
        return header(19, 8, xid)
    if typ == 5:  # FEATURES_REQUEST
        b = struct.pack("!QIB3xII", 0x1122334455, 0, 254, 0xc7, 0xfff)
        b += phy_port(1, "p1") + phy_port(2, "p2")
        return header(6, 8 + len(b), xid) + b
    if typ == 7:  # GET_CONFIG_REQUEST
        return header(8, 12, xid) + struct.pack("!HH", 0, 128)
    if typ == 16:  # STATS_REQUEST: empty reply of the same type
        st = struct.unpack("!H", body[:2])[0]
        if st == 0xFFFF:
            b = body[:4] + body[4:12] + b"\0" * 4
            if struct.unpack("!I", body[8:12])[0] == 1:  # NXST_AGGREGATE
                b += b"\0" * 24
        elif st == 0:  # DESC
            b = body[:4] + b"\0" * 1056
        elif st == 2:  # AGGREGATE
            b = body[:4] + b"\0" * 24
        else:
            b = body[:4]
        b = b[:2] + b"\0\0" + b[4:]
        return header(17, 8 + len(b), xid) + b
    return None


def serve_conn(conn, log, label):
    conn.settimeout(10)
    conn.sendall(header(0, 8, 1))
    buf = b""
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            buf += data
            while len(buf) >= 8:
                length = struct.unpack("!H", buf[2:4])[0]
                if len(buf) < length:
                    break
                msg, buf = buf[:length], buf[length:]
                log.append((label, msg))
                typ, xid = msg[1], struct.unpack("!I", msg[4:8])[0]
                r = reply_to(typ, msg[8:], xid)
                if r is not None:
                    conn.sendall(r)
    except (socket.timeout, ConnectionResetError):
        pass
    conn.close()


def serve(sock, log, label, stop):
    """Accept connections (ovs-ofctl may open several) until `stop`."""
    sock.settimeout(0.2)
    threads = []
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except socket.timeout:
            continue
        t = threading.Thread(target=serve_conn, args=(conn, log, label))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


def main():
    log = []
    for cmd in COMMANDS:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        target = "tcp:127.0.0.1:%d" % sock.getsockname()[1]
        stop = threading.Event()
        label = cmd.format(t="br0")
        t = threading.Thread(target=serve, args=(sock, log, label, stop))
        t.start()
        args = ["ovs-ofctl", "--timeout=5"] + cmd.format(t=target).split(" ")
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            print("%s: exit %d: %s" % (label, r.returncode, r.stderr.strip()))
        stop.set()
        t.join()
        sock.close()
    with open(os.path.join(HERE, "ofctl-of10-commands.txt"), "w") as f:
        for label, msg in log:
            f.write("%s\t%s\n" % (label, msg.hex()))


if __name__ == "__main__":
    main()
