#!/usr/bin/env python3
"""Frames that port security must stop, sent by a guest's real stack.

Run inside a guest's network namespace (tests/common/mod.rs, `PortSecFrames`):

  portsec.py send KIND   send one frame of KIND out of eth0
  portsec.py watch       print the KIND of every marked frame eth0 receives
                         (one line each, as they come), until killed

Every frame carries the marker `XNPS:<KIND>;` (in a UDP payload, an ND
option of type 253, RFC 4727's experimental type, which receivers ignore
(RFC 4861 4.6), or after an ARP packet), so the watcher tells them apart
from the stacks' own traffic. Kernel sockets build what they can: UDP
sockets bound to the DHCP server ports, raw ICMPv6 sockets (the kernel
fills in the source, the checksum and hop limit 255); only the ARP frame
is written whole, through a packet socket.

KINDs (the addresses are the ones tests/xenbus.rs gives its guests):
  dhcp4      a DHCPv4 server message: UDP 67 -> 68, to 255.255.255.255
  dhcp6      a DHCPv6 server message: UDP 547 -> 546, to ff02::1
  ra         a router advertisement (lifetime 0: no default route)
  redirect   an ICMPv6 redirect
  na-target  a neighbour advertisement for 2001:db8::99 (not the guest's)
  na-tll     a neighbour advertisement for 2001:db8::1 with another target
             link-layer address
  ns-sll     a neighbour solicitation with another source link-layer address
  rs-sll     a router solicitation with another source link-layer address
  arp-sha    an ARP request with another sender MAC
  ns-ok      a neighbour solicitation with the guest's own MAC (passes)
"""

import re
import socket
import sys

DEV = "eth0"
OTHER_MAC = bytes.fromhex("02deadbeef01")
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def marker(kind):
    return b"XNPS:" + kind.encode() + b";"


def nd_marker_option(kind):
    """An ND option of type 253 carrying the marker, padded to 8 bytes."""
    body = marker(kind)
    n = (2 + len(body) + 7) // 8
    return bytes([253, n]) + body + bytes(n * 8 - 2 - len(body))


def lla_option(typ, mac):
    return bytes([typ, 1]) + mac


def own_mac():
    with open(f"/sys/class/net/{DEV}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def send_icmp6(msg):
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    ifindex = socket.if_nametoindex(DEV)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    s.sendto(msg, ("ff02::1", 0, 0, ifindex))


def send(kind):
    a6 = lambda a: socket.inet_pton(socket.AF_INET6, a)
    if kind == "dhcp4":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, DEV.encode())
        s.bind(("0.0.0.0", 67))
        s.sendto(marker(kind), ("255.255.255.255", 68))
    elif kind == "dhcp6":
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ifindex = socket.if_nametoindex(DEV)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        s.bind(("::", 547))
        s.sendto(marker(kind), ("ff02::1", 546, 0, ifindex))
    elif kind == "ra":
        # Hop limit 64, no flags, router lifetime 0, reachable and
        # retransmission timers 0 (RFC 4861 4.2).
        send_icmp6(bytes([134, 0, 0, 0, 64, 0, 0, 0]) + bytes(8) + nd_marker_option(kind))
    elif kind == "redirect":
        body = bytes(4) + a6("fe80::1") + a6("2001:db8::2")
        send_icmp6(bytes([137, 0, 0, 0]) + body + nd_marker_option(kind))
    elif kind in ("na-target", "na-tll"):
        target, mac = ("2001:db8::99", own_mac()) if kind == "na-target" else ("2001:db8::1", OTHER_MAC)
        body = bytes([0x20, 0, 0, 0]) + a6(target) + lla_option(2, mac)
        send_icmp6(bytes([136, 0, 0, 0]) + body + nd_marker_option(kind))
    elif kind in ("ns-sll", "ns-ok"):
        mac = OTHER_MAC if kind == "ns-sll" else own_mac()
        body = bytes(4) + a6("2001:db8::2") + lla_option(1, mac)
        send_icmp6(bytes([135, 0, 0, 0]) + body + nd_marker_option(kind))
    elif kind == "rs-sll":
        send_icmp6(bytes([133, 0, 0, 0]) + bytes(4) + lla_option(1, OTHER_MAC) + nd_marker_option(kind))
    elif kind == "arp-sha":
        mac = own_mac()
        arp = bytes([0, 1, 8, 0, 6, 4, 0, 1]) + OTHER_MAC + socket.inet_aton("10.251.0.1")
        arp += bytes(6) + socket.inet_aton("10.251.0.2")
        frame = b"\xff" * 6 + mac + b"\x08\x06" + arp + marker(kind)
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((DEV, 0))
        s.send(frame)
    else:
        sys.exit(f"unknown kind {kind!r}")


def watch():
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((DEV, 0))
    print("ready", flush=True)
    pat = re.compile(rb"XNPS:([a-z0-9-]+);")
    while True:
        frame, addr = s.recvfrom(65535)
        if addr[2] == PACKET_OUTGOING:
            continue
        m = pat.search(frame)
        if m:
            print(m.group(1).decode(), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["send"] and len(sys.argv) == 3:
        send(sys.argv[2])
    elif sys.argv[1:] == ["watch"]:
        watch()
    else:
        sys.exit(__doc__)
