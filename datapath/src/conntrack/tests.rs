//! Tracker tests on real frames built by etherparse.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use etherparse::{icmpv4, icmpv6, Icmpv4Type, Icmpv6Type, PacketBuilder};

use super::*;
use crate::csum;

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const A6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

#[derive(Clone, Copy, Default)]
struct Seg {
    syn: bool,
    ack: Option<u32>,
    fin: bool,
    rst: bool,
    seq: u32,
    win: u16,
}

fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, s: Seg, payload: &[u8]) -> Packet {
    let mut b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, s.seq, if s.win == 0 { 64000 } else { s.win });
    if s.syn {
        b = b.syn();
    }
    if let Some(a) = s.ack {
        b = b.ack(a);
    }
    if s.fin {
        b = b.fin();
    }
    if s.rst {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    Packet::from_slice(&v)
}

fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Packet {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut v, b"hello")
        .unwrap();
    Packet::from_slice(&v)
}

fn udp6(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16) -> Packet {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(src, dst, 64)
        .udp(sport, dport)
        .write(&mut v, b"hello6")
        .unwrap();
    Packet::from_slice(&v)
}

fn echo4(src: [u8; 4], dst: [u8; 4], id: u16, reply: bool) -> Packet {
    let mut v = Vec::new();
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(src, dst, 64);
    if reply {
        b.icmpv4(Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader {
            id,
            seq: 1,
        }))
        .write(&mut v, b"ping")
        .unwrap();
    } else {
        b.icmpv4_echo_request(id, 1).write(&mut v, b"ping").unwrap();
    }
    Packet::from_slice(&v)
}

fn echo6(src: [u8; 16], dst: [u8; 16], id: u16, reply: bool) -> Packet {
    let mut v = Vec::new();
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B).ipv6(src, dst, 64);
    if reply {
        b.icmpv6(Icmpv6Type::EchoReply(etherparse::IcmpEchoHeader {
            id,
            seq: 1,
        }))
        .write(&mut v, b"ping")
        .unwrap();
    } else {
        b.icmpv6_echo_request(id, 1).write(&mut v, b"ping").unwrap();
    }
    Packet::from_slice(&v)
}

/// An ICMPv4 port-unreachable from `from` to `to` quoting `quoted`'s IP
/// packet (header + first 8 L4 bytes).
fn unreach4(from: [u8; 4], to: [u8; 4], quoted: &Packet) -> Packet {
    let q = &quoted.data()[14..];
    let ihl = usize::from(q[0] & 0xf) * 4;
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_B, MAC_A)
        .ipv4(from, to, 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut v, &q[..ihl + 8])
        .unwrap();
    Packet::from_slice(&v)
}

fn unreach6(from: [u8; 16], to: [u8; 16], quoted: &Packet) -> Packet {
    let q = &quoted.data()[14..];
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_B, MAC_A)
        .ipv6(from, to, 64)
        .icmpv6(Icmpv6Type::DestinationUnreachable(
            icmpv6::DestUnreachableCode::Port,
        ))
        .write(&mut v, &q[..48])
        .unwrap();
    Packet::from_slice(&v)
}

fn commit(zone: u16) -> CtArgs {
    CtArgs {
        zone,
        commit: true,
        ..CtArgs::default()
    }
}

fn run(ct: &Conntrack, pkt: &mut Packet, args: &CtArgs, now: Instant) -> u32 {
    pkt.md = Default::default();
    ct.execute(pkt, args, now);
    pkt.md.ct.state
}

/// Headers and checksums (IPv4 header, TCP/UDP/ICMP) verify.
fn sums_ok(p: &Packet) -> bool {
    key::parse(p.data(), Csum::None).is_ok()
}

const NEW: u32 = cs::TRK | cs::NEW;
const EST: u32 = cs::TRK | cs::EST;
const RPL: u32 = cs::TRK | cs::EST | cs::RPL;
const INV: u32 = cs::TRK | cs::INV;

/// A three-way handshake A:1000 -> B:80 in zone 5; returns the tracker
/// and the next sequence numbers (client, server).
fn handshake(now: Instant) -> (Conntrack, u32, u32) {
    let ct = Conntrack::new();
    let c = 1000u32;
    let s = 5000u32;
    let mut p = tcp4(
        A,
        B,
        1000,
        80,
        Seg {
            syn: true,
            seq: c,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &commit(5), now), NEW);
    let mut p = tcp4(
        B,
        A,
        80,
        1000,
        Seg {
            syn: true,
            ack: Some(c + 1),
            seq: s,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &commit(5), now), RPL);
    let mut p = tcp4(
        A,
        B,
        1000,
        80,
        Seg {
            ack: Some(s + 1),
            seq: c + 1,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &commit(5), now), EST);
    (ct, c + 1, s + 1)
}

#[test]
fn tcp_handshake_is_new_then_established_with_reply_bit() {
    let now = Instant::now();
    let (ct, c, s) = handshake(now);
    let mut p = tcp4(
        A,
        B,
        1000,
        80,
        Seg {
            ack: Some(s),
            seq: c,
            ..Seg::default()
        },
        b"GET /",
    );
    assert_eq!(run(&ct, &mut p, &commit(5), now), EST);
    let md = p.md.ct;
    assert_eq!(
        (md.zone, md.nw_proto, md.tp_src, md.tp_dst),
        (5, 6, 1000, 80)
    );
    assert_eq!(md.nw_src, u128::from(u32::from_be_bytes(A)));
    let mut p = tcp4(
        B,
        A,
        80,
        1000,
        Seg {
            ack: Some(c + 5),
            seq: s,
            ..Seg::default()
        },
        b"200",
    );
    assert_eq!(
        run(
            &ct,
            &mut p,
            &CtArgs {
                zone: 5,
                ..CtArgs::default()
            },
            now
        ),
        RPL
    );
    // The reply's original tuple is still the client's.
    assert_eq!(p.md.ct.tp_src, 1000);
    assert_eq!(
        ct.dump(None),
        ["tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1000,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=1000),zone=5,protoinfo=(state=ESTABLISHED)"]
    );
    assert!(ct.dump(Some(4)).is_empty());
    assert_eq!(
        ct.stats_show(None, true),
        [
            "Connections Stats:",
            "    Total: 1",
            "  TCP: 1",
            "    Conn per TCP states:",
            "\t[ESTABLISHED]=1"
        ]
    );
    // The same packets in another zone are a different connection.
    let mut p = tcp4(
        A,
        B,
        1000,
        80,
        Seg {
            ack: Some(s),
            seq: c,
            ..Seg::default()
        },
        b"x",
    );
    assert_eq!(
        run(
            &ct,
            &mut p,
            &CtArgs {
                zone: 6,
                ..CtArgs::default()
            },
            now
        ),
        NEW
    );
}

#[test]
fn tcp_out_of_window_segments_are_invalid_and_change_nothing() {
    let now = Instant::now();
    let (ct, c, s) = handshake(now);
    let before = ct.dump(None);
    // Far beyond what the server's window allows.
    let mut p = tcp4(
        A,
        B,
        1000,
        80,
        Seg {
            ack: Some(s),
            seq: c.wrapping_add(10_000_000),
            ..Seg::default()
        },
        b"x",
    );
    assert_eq!(run(&ct, &mut p, &commit(5), now), INV);
    // Acknowledging data the server never sent.
    let mut p = tcp4(
        A,
        B,
        1000,
        80,
        Seg {
            ack: Some(s + 5_000_000),
            seq: c,
            ..Seg::default()
        },
        b"x",
    );
    assert_eq!(run(&ct, &mut p, &commit(5), now), INV);
    // Invalid flag combinations (SYN+RST; no flags at all).
    let mut p = tcp4(
        A,
        B,
        1000,
        80,
        Seg {
            syn: true,
            rst: true,
            seq: c,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &commit(5), now), INV);
    assert_eq!(ct.dump(None), before);
    // In-window traffic still flows.
    let mut p = tcp4(
        A,
        B,
        1000,
        80,
        Seg {
            ack: Some(s),
            seq: c,
            ..Seg::default()
        },
        b"ok",
    );
    assert_eq!(run(&ct, &mut p, &commit(5), now), EST);
    assert!(ct.stats().invalid >= 3);
}

#[test]
fn forged_rst_outside_the_window_does_not_kill_the_connection() {
    let now = Instant::now();
    let (ct, c, s) = handshake(now);
    for seq in [s.wrapping_add(100_000), s.wrapping_sub(200_000), s + 70_000] {
        let mut p = tcp4(
            B,
            A,
            80,
            1000,
            Seg {
                rst: true,
                ack: Some(c),
                seq,
                ..Seg::default()
            },
            &[],
        );
        assert_eq!(run(&ct, &mut p, &commit(5), now), INV, "rst seq {seq}");
    }
    // An in-window RST that is not at the expected sequence is refused too.
    let mut p = tcp4(
        B,
        A,
        80,
        1000,
        Seg {
            rst: true,
            ack: Some(c),
            seq: s + 10,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &commit(5), now), INV);
    assert!(ct.dump(None)[0].contains("state=ESTABLISHED"));
    // The exact one closes it.
    let mut p = tcp4(
        B,
        A,
        80,
        1000,
        Seg {
            rst: true,
            ack: Some(c),
            seq: s,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &commit(5), now), RPL);
    assert!(
        ct.dump(None)[0].contains("state=TIME_WAIT"),
        "{:?}",
        ct.dump(None)
    );
    // A new SYN on the closed connection starts a new one.
    let mut p = tcp4(
        A,
        B,
        1000,
        80,
        Seg {
            syn: true,
            seq: 77,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &commit(5), now), NEW);
    assert!(
        ct.dump(None)[0].contains("state=SYN_SENT"),
        "{:?}",
        ct.dump(None)
    );
}

#[test]
fn tcp_fin_handshake_closes() {
    let now = Instant::now();
    let (ct, c, s) = handshake(now);
    let mut p = tcp4(
        A,
        B,
        1000,
        80,
        Seg {
            fin: true,
            ack: Some(s),
            seq: c,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &commit(5), now), EST);
    let mut p = tcp4(
        B,
        A,
        80,
        1000,
        Seg {
            fin: true,
            ack: Some(c + 1),
            seq: s,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &commit(5), now), RPL);
    let mut p = tcp4(
        A,
        B,
        1000,
        80,
        Seg {
            ack: Some(s + 1),
            seq: c + 1,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &commit(5), now), EST);
    assert!(
        ct.dump(None)[0].contains("state=TIME_WAIT"),
        "{:?}",
        ct.dump(None)
    );
    // tcp_close (30 s) later it is gone.
    assert_eq!(ct.sweep(now + Duration::from_secs(31)), 1);
    assert!(ct.dump(None).is_empty());
}

#[test]
fn tcp_new_without_commit_leaves_nothing_and_synack_cannot_start() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let mut p = tcp4(
        A,
        B,
        1,
        2,
        Seg {
            syn: true,
            seq: 1,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &CtArgs::default(), now), NEW);
    assert_eq!(p.md.ct.tp_dst, 2, "the packet's own tuple");
    assert_eq!(ct.nconns(), 0);
    let mut p = tcp4(
        A,
        B,
        1,
        2,
        Seg {
            syn: true,
            ack: Some(9),
            seq: 1,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &commit(0), now), INV);
    assert_eq!(ct.nconns(), 0);
    // A mid-stream ACK may start a connection (picked up after a flush).
    let mut p = tcp4(
        A,
        B,
        1,
        2,
        Seg {
            ack: Some(9),
            seq: 1,
            ..Seg::default()
        },
        b"x",
    );
    assert_eq!(run(&ct, &mut p, &commit(0), now), NEW);
    let mut p = tcp4(
        B,
        A,
        2,
        1,
        Seg {
            ack: Some(2),
            seq: 9,
            ..Seg::default()
        },
        b"y",
    );
    assert_eq!(run(&ct, &mut p, &commit(0), now), RPL);
}

#[test]
fn udp_v4_and_v6_first_multiple_bidir() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let mut p = udp4(A, B, 5353, 53);
    assert_eq!(run(&ct, &mut p, &commit(0), now), NEW);
    let mut p = udp4(A, B, 5353, 53);
    assert_eq!(
        run(&ct, &mut p, &commit(0), now),
        NEW,
        "second packet before a reply"
    );
    let mut p = udp4(B, A, 53, 5353);
    assert_eq!(run(&ct, &mut p, &commit(0), now), RPL);
    let mut p = udp4(A, B, 5353, 53);
    assert_eq!(run(&ct, &mut p, &commit(0), now), EST);
    let mut p = udp6(A6, B6, 7, 9);
    assert_eq!(run(&ct, &mut p, &commit(1), now), NEW);
    let mut p = udp6(B6, A6, 9, 7);
    assert_eq!(run(&ct, &mut p, &commit(1), now), RPL);
    let d = ct.dump(None);
    assert_eq!(
        d,
        [
            "udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=5353,dport=53),reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=5353)",
            "udp,orig=(src=fd00::1,dst=fd00::2,sport=7,dport=9),reply=(src=fd00::2,dst=fd00::1,sport=9,dport=7),zone=1",
        ]
    );
    // udp_multiple (30 s) after their last packets both bidirectional
    // ones are gone (the sweep runs on this packet, before its lookup).
    let later = now + Duration::from_secs(31);
    let mut p = udp4(A, B, 5353, 53);
    assert_eq!(run(&ct, &mut p, &CtArgs::default(), later), NEW);
    assert_eq!(ct.nconns(), 0);
    assert_eq!(ct.stats().expired, 2);
}

#[test]
fn icmp_echo_v4_and_v6() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let mut p = echo4(A, B, 42, false);
    assert_eq!(run(&ct, &mut p, &commit(0), now), NEW);
    assert_eq!(
        (p.md.ct.nw_proto, p.md.ct.tp_src, p.md.ct.tp_dst),
        (1, 8, 0)
    );
    let mut p = echo4(B, A, 42, true);
    assert_eq!(run(&ct, &mut p, &commit(0), now), RPL);
    let mut p = echo4(B, A, 43, true);
    assert_eq!(
        run(&ct, &mut p, &commit(0), now),
        INV,
        "a reply cannot start one"
    );
    let mut p = echo6(A6, B6, 7, false);
    assert_eq!(run(&ct, &mut p, &commit(0), now), NEW);
    let mut p = echo6(B6, A6, 7, true);
    assert_eq!(run(&ct, &mut p, &commit(0), now), RPL);
    assert_eq!(
        ct.dump(None),
        [
            "icmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=42,type=8,code=0),reply=(src=10.0.0.2,dst=10.0.0.1,id=42,type=0,code=0)",
            "icmpv6,orig=(src=fd00::1,dst=fd00::2,id=7,type=128,code=0),reply=(src=fd00::2,dst=fd00::1,id=7,type=129,code=0)",
        ]
    );
}

#[test]
fn icmp_errors_are_related_or_invalid() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let mut out = udp4(A, B, 4000, 53);
    assert_eq!(run(&ct, &mut out, &commit(0), now), NEW);
    // B answers port unreachable: related, in the reply direction.
    let mut e = unreach4(B, A, &udp4(A, B, 4000, 53));
    assert_eq!(
        run(&ct, &mut e, &commit(0), now),
        cs::TRK | cs::REL | cs::RPL
    );
    assert_eq!(p_orig(&e), (4000, 53));
    // A router on the way (not B) may send it too.
    let mut e = unreach4([192, 0, 2, 1], A, &udp4(A, B, 4000, 53));
    assert_eq!(
        run(&ct, &mut e, &commit(0), now),
        cs::TRK | cs::REL | cs::RPL
    );
    // Quoting a connection that does not exist.
    let mut e = unreach4(B, A, &udp4(A, B, 4001, 53));
    assert_eq!(run(&ct, &mut e, &commit(0), now), INV);
    // Quoting a packet that was not sent to the error's destination.
    let mut e = unreach4(B, [10, 9, 9, 9], &udp4(A, B, 4000, 53));
    assert_eq!(run(&ct, &mut e, &commit(0), now), INV);
    // IPv6.
    let mut out = udp6(A6, B6, 4000, 53);
    assert_eq!(run(&ct, &mut out, &commit(0), now), NEW);
    let mut e = unreach6(B6, A6, &udp6(A6, B6, 4000, 53));
    assert_eq!(
        run(&ct, &mut e, &commit(0), now),
        cs::TRK | cs::REL | cs::RPL
    );
    let mut e = unreach6(B6, A6, &udp6(A6, B6, 4000, 54));
    assert_eq!(run(&ct, &mut e, &commit(0), now), INV);
    // An error never creates a connection.
    assert_eq!(ct.nconns(), 2);
}

fn p_orig(p: &Packet) -> (u16, u16) {
    (p.md.ct.tp_src, p.md.ct.tp_dst)
}

fn ip4(p: &Packet, off: usize) -> [u8; 4] {
    p.data()[14 + off..18 + off].try_into().unwrap()
}
fn ports(p: &Packet) -> (u16, u16) {
    let d = &p.data()[34..];
    (
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
    )
}

fn snat(addr: [u8; 4], pmin: u16, pmax: u16) -> CtArgs {
    CtArgs {
        nat: Some(NatArgs {
            kind: Some(NatKind::Src),
            addr_min: Some(IpAddr::V4(Ipv4Addr::from(addr))),
            addr_max: None,
            port_min: pmin,
            port_max: pmax,
            persistent: false,
            random: false,
        }),
        ..commit(0)
    }
}

fn bare_nat() -> CtArgs {
    CtArgs {
        nat: Some(NatArgs {
            kind: None,
            addr_min: None,
            addr_max: None,
            port_min: 0,
            port_max: 0,
            persistent: false,
            random: false,
        }),
        ..CtArgs::default()
    }
}

#[test]
fn snat_rewrites_both_directions_with_valid_checksums() {
    let now = Instant::now();
    let ct = Conntrack::new();
    const EXT: [u8; 4] = [192, 0, 2, 7];
    const SRV: [u8; 4] = [198, 51, 100, 1];
    let mut p = tcp4(
        A,
        SRV,
        40000,
        443,
        Seg {
            syn: true,
            seq: 1,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &snat(EXT, 0, 0), now), NEW | cs::SNAT);
    assert_eq!(ip4(&p, 12), EXT);
    assert_eq!(ports(&p), (40000, 443), "the port is kept when free");
    assert!(sums_ok(&p) && csum::verify_l4(p.data()));
    // The reply comes to the external address: bare `nat` reverses it.
    let mut r = tcp4(
        SRV,
        EXT,
        443,
        40000,
        Seg {
            syn: true,
            ack: Some(2),
            seq: 100,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut r, &bare_nat(), now), RPL | cs::DNAT);
    assert_eq!(ip4(&r, 16), A);
    assert!(sums_ok(&r) && csum::verify_l4(r.data()));
    // A second client with the same port gets another port.
    let mut p = tcp4(
        [10, 0, 0, 9],
        SRV,
        40000,
        443,
        Seg {
            syn: true,
            seq: 1,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &snat(EXT, 0, 0), now), NEW | cs::SNAT);
    assert_eq!(ip4(&p, 12), EXT);
    let (sp, _) = ports(&p);
    assert!(sp != 40000 && sp >= 1024, "{sp}");
    assert!(sums_ok(&p));
    let mut r = tcp4(
        SRV,
        EXT,
        443,
        sp,
        Seg {
            syn: true,
            ack: Some(2),
            seq: 100,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut r, &bare_nat(), now), RPL | cs::DNAT);
    assert_eq!((ip4(&r, 16), ports(&r)), ([10, 0, 0, 9], (443, 40000)));
    assert!(sums_ok(&r));
    // An explicit port range.
    let mut p = udp4(A, SRV, 5000, 53);
    assert_eq!(
        run(&ct, &mut p, &snat(EXT, 2000, 2001), now),
        NEW | cs::SNAT
    );
    let (sp, _) = ports(&p);
    assert!((2000..=2001).contains(&sp));
    assert!(sums_ok(&p));
    let mut p = udp4([10, 0, 0, 3], SRV, 5000, 53);
    assert_eq!(
        run(&ct, &mut p, &snat(EXT, 2000, 2001), now),
        NEW | cs::SNAT
    );
    assert_eq!(ports(&p).0, if sp == 2000 { 2001 } else { 2000 });
    // The range is exhausted now: the commit is refused, nothing rewritten.
    let mut p = udp4([10, 0, 0, 4], SRV, 5000, 53);
    assert_eq!(run(&ct, &mut p, &snat(EXT, 2000, 2001), now), NEW);
    assert_eq!(ip4(&p, 12), [10, 0, 0, 4]);
    assert_eq!(ct.stats().nat_exhausted, 1);
    assert!(ct
        .dump(None)
        .iter()
        .any(|l| l.contains("reply=(src=198.51.100.1,dst=192.0.2.7,sport=53,dport=200")));
}

#[test]
fn dnat_v6_and_icmp_id_and_related_errors() {
    let now = Instant::now();
    let ct = Conntrack::new();
    const VIP: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99];
    let dnat = CtArgs {
        nat: Some(NatArgs {
            kind: Some(NatKind::Dst),
            addr_min: Some(IpAddr::V6(Ipv6Addr::from(B6))),
            addr_max: None,
            port_min: 8080,
            port_max: 8080,
            persistent: false,
            random: false,
        }),
        ..commit(3)
    };
    let mut p = udp6(A6, VIP, 1234, 80);
    assert_eq!(run(&ct, &mut p, &dnat, now), NEW | cs::DNAT);
    assert_eq!(&p.data()[38..54], &B6);
    assert_eq!(&p.data()[56..58], &8080u16.to_be_bytes());
    assert!(sums_ok(&p) && csum::verify_l4(p.data()));
    let mut r = udp6(B6, A6, 8080, 1234);
    let mut a = bare_nat();
    a.zone = 3;
    assert_eq!(run(&ct, &mut r, &a, now), RPL | cs::SNAT);
    assert_eq!(&r.data()[22..38], &VIP);
    assert_eq!(&r.data()[54..56], &80u16.to_be_bytes());
    assert!(sums_ok(&r));
    // The backend's port-unreachable quoting the translated request,
    // translated back (outer source and quoted destination).
    let q = udp6(A6, B6, 1234, 8080);
    let mut e = unreach6(B6, A6, &q);
    assert_eq!(
        run(&ct, &mut e, &a, now),
        cs::TRK | cs::REL | cs::RPL | cs::SNAT
    );
    assert_eq!(&e.data()[22..38], &VIP, "outer source translated");
    assert_eq!(
        &e.data()[62 + 24..62 + 40],
        &VIP,
        "quoted destination translated"
    );
    assert!(sums_ok(&e));

    // ICMP echo SNAT: the identifier is the port.
    let ext = [192, 0, 2, 7];
    let mut p = echo4(A, B, 5, false);
    assert_eq!(run(&ct, &mut p, &snat(ext, 0, 0), now), NEW | cs::SNAT);
    assert_eq!(ip4(&p, 12), ext);
    assert!(sums_ok(&p));
    let mut p2 = echo4([10, 0, 0, 8], B, 5, false);
    assert_eq!(run(&ct, &mut p2, &snat(ext, 0, 0), now), NEW | cs::SNAT);
    let id2 = u16::from_be_bytes([p2.data()[38], p2.data()[39]]);
    assert_ne!(id2, 5);
    assert!(sums_ok(&p2));
    let mut r = echo4(B, ext, id2, true);
    assert_eq!(run(&ct, &mut r, &bare_nat(), now), RPL | cs::DNAT);
    assert_eq!(ip4(&r, 16), [10, 0, 0, 8]);
    assert_eq!(u16::from_be_bytes([r.data()[38], r.data()[39]]), 5);
    assert!(sums_ok(&r));
    // A TTL-exceeded from a router quoting the translated request.
    let q = echo4(ext, B, id2, false);
    let mut e = unreach4([203, 0, 113, 1], ext, &q);
    assert_eq!(
        run(&ct, &mut e, &bare_nat(), now),
        cs::TRK | cs::REL | cs::RPL | cs::DNAT
    );
    assert_eq!(ip4(&e, 16), [10, 0, 0, 8]);
    let inner = &e.data()[42..];
    assert_eq!(
        &inner[12..16],
        &[10, 0, 0, 8],
        "quoted source translated back"
    );
    assert_eq!(u16::from_be_bytes([inner[24], inner[25]]), 5, "quoted id");
    assert!(sums_ok(&e));
    assert_eq!(
        csum::checksum(&inner[..20]),
        0,
        "quoted IPv4 header checksum"
    );
}

#[test]
fn nat_applies_once_per_zone_and_state_resets_in_a_new_zone() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let ext = [192, 0, 2, 7];
    let mut p = udp4(A, B, 5000, 53);
    ct.execute(&mut p, &snat(ext, 0, 0), now);
    assert_eq!(p.md.ct.state, NEW | cs::SNAT);
    // Recirculated and tracked again in the same zone with nat: found by
    // its translated tuple, not translated twice.
    ct.execute(&mut p, &snat(ext, 0, 0), now);
    assert_eq!(p.md.ct.state & (cs::SNAT | cs::TRK), cs::SNAT | cs::TRK);
    assert_eq!(ip4(&p, 12), ext);
    assert_eq!(ct.nconns(), 1);
    // Another zone: a fresh lookup of the translated packet.
    ct.execute(
        &mut p,
        &CtArgs {
            zone: 9,
            ..CtArgs::default()
        },
        now,
    );
    assert_eq!(p.md.ct.state, NEW);
    assert_eq!(p.md.ct.zone, 9);
}

#[test]
fn zone_limits_and_a_syn_flood_fills_only_its_zone() {
    let now = Instant::now();
    let ct = Conntrack::new();
    ct.set_zone_limit(Some(1), 100);
    ct.set_zone_limit(None, 1000);
    for i in 0..5000u32 {
        let src = (0x0a01_0000 + i).to_be_bytes();
        let mut p = tcp4(
            src,
            B,
            1024 + (i % 60000) as u16,
            80,
            Seg {
                syn: true,
                seq: i,
                ..Seg::default()
            },
            &[],
        );
        assert_eq!(run(&ct, &mut p, &commit(1), now), NEW);
    }
    assert_eq!(
        ct.zone_limit(1),
        ZoneLimit {
            zone: 1,
            limit: 100,
            count: 100
        }
    );
    assert_eq!(ct.stats().zone_full, 4900);
    // Another guest's zone still commits.
    let mut p = tcp4(
        A,
        B,
        1000,
        80,
        Seg {
            syn: true,
            seq: 1,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut p, &commit(2), now), NEW);
    let mut r = tcp4(
        B,
        A,
        80,
        1000,
        Seg {
            syn: true,
            ack: Some(2),
            seq: 9,
            ..Seg::default()
        },
        &[],
    );
    assert_eq!(run(&ct, &mut r, &commit(2), now), RPL);
    assert_eq!(
        ct.zone_limit(2),
        ZoneLimit {
            zone: 2,
            limit: 1000,
            count: 1
        }
    );
    assert_eq!(
        ct.format_limits(&[]),
        "default limit=1000\nzone=1,limit=100,count=100"
    );
    assert_eq!(ct.flush(Some(2)), 1);
    // The half-open ones go at tcp_syn_sent (30 s).
    let later = now + Duration::from_secs(31);
    while ct.sweep(later) > 0 {}
    assert_eq!(ct.zone_limit(1).count, 0);
    assert_eq!(ct.nconns(), 0);
}

#[test]
fn maxconns_bounds_the_table() {
    let now = Instant::now();
    let ct = Conntrack::new();
    assert_eq!(ct.maxconns(), 3_000_000);
    ct.set_maxconns(10);
    for i in 0..20u16 {
        let mut p = udp4(A, B, 1000 + i, 53);
        assert_eq!(run(&ct, &mut p, &commit(0), now), NEW);
    }
    assert_eq!(ct.nconns(), 10);
    assert_eq!(ct.stats().full, 10);
}

#[test]
fn mark_and_label_set_on_commit_under_mask() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let mut a = commit(0);
    a.mark = Some((0x1234, 0xffff));
    a.label = Some((1 << 100, u128::MAX));
    let mut p = udp4(A, B, 1, 2);
    run(&ct, &mut p, &a, now);
    assert_eq!((p.md.ct.mark, p.md.ct.label), (0x1234, 1 << 100));
    a.mark = Some((0xab_0000, 0xff_0000));
    a.label = None;
    let mut r = udp4(B, A, 2, 1);
    run(&ct, &mut r, &a, now);
    assert_eq!(r.md.ct.mark, 0xab_1234);
    let mut p = udp4(A, B, 1, 2);
    run(&ct, &mut p, &CtArgs::default(), now);
    assert_eq!((p.md.ct.mark, p.md.ct.label), (0xab_1234, 1 << 100));
    assert!(ct.dump(None)[0].ends_with(",mark=11211316,labels=0x10000000000000000000000000"));
}

#[test]
fn force_ends_a_connection_seen_in_the_reply_direction() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let mut p = udp4(A, B, 1, 2);
    run(&ct, &mut p, &commit(0), now);
    let mut r = udp4(B, A, 2, 1);
    let mut f = commit(0);
    f.force = true;
    assert_eq!(run(&ct, &mut r, &f, now), NEW);
    assert_eq!(ct.dump(None)[0], "udp,orig=(src=10.0.0.2,dst=10.0.0.1,sport=2,dport=1),reply=(src=10.0.0.1,dst=10.0.0.2,sport=1,dport=2)");
}

#[test]
fn zone_timeout_policy_changes_expiry() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let mut tp = TimeoutPolicy::default();
    assert!(tp.set("udp_first", 5));
    assert!(!tp.set("udp_bogus", 5));
    ct.set_zone_timeout_policy(7, Some(tp));
    let mut p = udp4(A, B, 1, 2);
    run(&ct, &mut p, &commit(7), now);
    let mut p = udp4(A, B, 1, 2);
    run(&ct, &mut p, &commit(8), now);
    assert_eq!(ct.sweep(now + Duration::from_secs(6)), 1);
    assert_eq!(ct.dump(None).len(), 1);
    assert_eq!(ct.zone_timeout_policy(7).udp_first, 5);
    ct.set_zone_timeout_policy(7, None);
    assert_eq!(ct.zone_timeout_policy(7), TimeoutPolicy::default());
}

#[test]
fn refreshed_connections_survive_the_sweep() {
    let t0 = Instant::now();
    let ct = Conntrack::new();
    let mut p = udp4(A, B, 1, 2);
    run(&ct, &mut p, &commit(0), t0);
    // Refreshed at 50 s (udp_single is 60 s): still there at 70 s.
    let mut p = udp4(A, B, 1, 2);
    run(&ct, &mut p, &commit(0), t0 + Duration::from_secs(50));
    assert_eq!(ct.sweep(t0 + Duration::from_secs(70)), 0);
    assert_eq!(ct.nconns(), 1);
    assert_eq!(ct.sweep(t0 + Duration::from_secs(111)), 1);
}

#[test]
fn malformed_and_non_ip_are_invalid() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let mut p = udp4(A, B, 1, 2);
    let n = p.len();
    p.data_mut()[n - 1] ^= 0xff; // payload byte: UDP checksum now wrong
    assert_eq!(run(&ct, &mut p, &commit(0), now), INV);
    let mut p = udp4(A, B, 1, 2);
    p.data_mut()[24] ^= 1; // IPv4 header checksum
    assert_eq!(run(&ct, &mut p, &commit(0), now), INV);
    let mut arp = Packet::from_slice(&[0xff; 42]);
    arp.data_mut()[12..14].copy_from_slice(&[8, 6]);
    assert_eq!(run(&ct, &mut arp, &commit(0), now), INV);
    let mut short = Packet::from_slice(&udp4(A, B, 1, 2).data()[..30]);
    assert_eq!(run(&ct, &mut short, &commit(0), now), INV);
    // A checksum the guest left to us (partial) is not verified.
    let mut p = udp4(A, B, 1, 2);
    let n = p.len();
    p.data_mut()[n - 1] ^= 0xff;
    p.csum = Csum::Partial {
        start: 34,
        offset: 6,
    };
    ct.execute(&mut p, &commit(0), now);
    assert_eq!(p.md.ct.state, NEW);
    assert_eq!(ct.stats().malformed, 4);
    assert_eq!(ct.nconns(), 1);
}

/// IPv4 fragments of a UDP datagram with `len` payload bytes, cut at
/// `cut` payload bytes (multiple of 8).
fn frags4(id: u16, len: usize, cut: usize) -> Vec<Vec<u8>> {
    let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(A, B, 64)
        .udp(7, 9)
        .write(&mut v, &payload)
        .unwrap();
    let ip = &v[14..];
    let body = &ip[20..];
    let mut out = Vec::new();
    let mut off = 0;
    while off < body.len() {
        let end = (off + cut).min(body.len());
        let more = end < body.len();
        let mut f = v[..34].to_vec();
        f.extend_from_slice(&body[off..end]);
        let tl = (20 + end - off) as u16;
        f[16..18].copy_from_slice(&tl.to_be_bytes());
        f[18..20].copy_from_slice(&id.to_be_bytes());
        let fo = (off / 8) as u16 | if more { 0x2000 } else { 0 };
        f[20..22].copy_from_slice(&fo.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = csum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        out.push(f);
        off = end;
    }
    out
}

#[test]
fn fragments_are_reassembled_then_tracked() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let fr = frags4(77, 3000, 1480);
    assert_eq!(fr.len(), 3);
    // Out of order: last, first, middle.
    for (i, idx) in [2usize, 0].iter().enumerate() {
        let mut p = Packet::from_slice(&fr[*idx]);
        assert_eq!(ct.track(&mut p, &commit(0), now), Verdict::Held, "{i}");
        assert_eq!(p.md.ct.state, INV);
    }
    let mut p = Packet::from_slice(&fr[1]);
    assert_eq!(ct.track(&mut p, &commit(0), now), Verdict::Tracked);
    assert_eq!(p.md.ct.state, NEW);
    assert_eq!(p.len(), 14 + 20 + 8 + 3000);
    assert!(sums_ok(&p));
    assert_eq!(ct.nconns(), 1);
    assert_eq!(ct.ipf_stats().completed, 1);
    assert_eq!(ct.ipf_stats().held, 0);
}

/// Fragments held for reassembly count in `memory_bytes`, and stop
/// counting once their datagram is complete.
#[test]
fn memory_counts_held_fragments() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let empty = ct.memory_bytes();
    let mut held = Vec::new();
    for id in 0..50u16 {
        let fr = frags4(id, 3000, 1480);
        let mut p = Packet::from_slice(&fr[0]);
        assert_eq!(ct.track(&mut p, &commit(0), now), Verdict::Held);
        held.push(fr);
    }
    let with = ct.memory_bytes();
    assert!(
        with >= empty + 50 * 1480,
        "{with} bytes with 50 fragments of 1480 held, {empty} without"
    );
    for fr in &held {
        for f in &fr[1..] {
            let mut p = Packet::from_slice(f);
            ct.track(&mut p, &commit(0), now);
        }
    }
    assert_eq!(ct.ipf_stats().held, 0);
    let after = ct.memory_bytes();
    assert!(
        after + 50 * 1480 <= with,
        "{after} bytes after reassembly, {with} before"
    );
}

#[test]
fn overlapping_small_and_excess_fragments_are_refused() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let fr = frags4(1, 3000, 1480);
    let mut p = Packet::from_slice(&fr[0]);
    assert_eq!(ct.track(&mut p, &commit(0), now), Verdict::Held);
    // The same bytes again: overlap, datagram dropped.
    let mut p = Packet::from_slice(&fr[0]);
    assert_eq!(ct.track(&mut p, &commit(0), now), Verdict::Tracked);
    assert_eq!(p.md.ct.state, INV);
    assert_eq!(ct.ipf_stats().overlap, 1);
    assert_eq!(ct.ipf_stats().held, 0);
    // Tiny non-last fragments (below 1200 bytes) are refused.
    let small = frags4(2, 300, 64);
    let mut p = Packet::from_slice(&small[0]);
    ct.track(&mut p, &commit(0), now);
    assert_eq!(p.md.ct.state, INV);
    // Bounded: at most max_frags held.
    ct.set_ipf_config(ipf::IpfConfig {
        max_frags: 4,
        ..Default::default()
    });
    for id in 100..110u16 {
        let f = frags4(id, 3000, 1480);
        let mut p = Packet::from_slice(&f[0]);
        ct.track(&mut p, &commit(0), now);
    }
    let st = ct.ipf_stats();
    assert_eq!((st.held, st.full), (4, 6));
    // Incomplete datagrams expire (15 s).
    ct.sweep(now + Duration::from_secs(16));
    assert_eq!(ct.ipf_stats().held, 0);
    assert_eq!(ct.ipf_stats().expired, 4);
}

#[test]
fn flush_all_and_memory_per_connection() {
    let now = Instant::now();
    let ct = Conntrack::new();
    for i in 0..1000u16 {
        let mut p = udp4(A, B, 1000 + i, 53);
        run(&ct, &mut p, &commit(i % 3), now);
    }
    let bytes = ct.memory_bytes();
    assert!(bytes / 1000 < 1024, "{} bytes per connection", bytes / 1000);
    assert_eq!(ct.flush(None), 1000);
    assert_eq!(ct.nconns(), 0);
    assert!(ct.dump(None).is_empty());
}

#[test]
fn the_table_works_on_after_a_flush() {
    // A flush that empties the tracker clears its hash table (keeping the
    // allocation); one of a zone leaves the other zones' entries alone.
    let now = Instant::now();
    let ct = Conntrack::new();
    for round in 0..3 {
        for i in 0..500u16 {
            let mut p = udp4(A, B, 1000 + i, 53);
            assert_eq!(run(&ct, &mut p, &commit(i % 2), now), NEW, "round {round}");
        }
        assert_eq!(ct.nconns(), 500);
        for i in 0..500u16 {
            let mut r = udp4(B, A, 53, 1000 + i);
            assert_eq!(run(&ct, &mut r, &commit(i % 2), now), RPL, "round {round}");
        }
        assert_eq!(ct.flush(Some(1)), 250);
        for i in (0..500u16).step_by(2) {
            let mut p = udp4(A, B, 1000 + i, 53);
            assert_eq!(run(&ct, &mut p, &commit(0), now), EST, "round {round}");
        }
        assert_eq!(ct.flush(None), 250);
        assert_eq!(ct.nconns(), 0);
        assert!(ct.dump(None).is_empty());
    }
    // Nothing is left to expire: the sweeper finds no stale entries.
    assert_eq!(ct.sweep(now + Duration::from_secs(3600)), 0);
}

#[test]
fn a_shortened_timeout_is_swept_at_the_shorter_time() {
    // udp_first is 60 s, udp_multiple 30 s: the reply shortens the
    // expiry below the connection's heap entry (found by the model test).
    let t0 = Instant::now();
    let ct = Conntrack::new();
    let mut p = udp4(A, B, 1, 2);
    run(&ct, &mut p, &commit(0), t0);
    let mut r = udp4(B, A, 2, 1);
    run(&ct, &mut r, &commit(0), t0);
    assert_eq!(ct.sweep(t0 + Duration::from_secs(29)), 0);
    assert_eq!(ct.sweep(t0 + Duration::from_secs(31)), 1);
    assert!(ct.dump(None).is_empty());
}

/// IPv6 fragments (fragment header after a destination-options header)
/// of a UDP datagram with `len` payload bytes, cut at `cut` bytes.
fn frags6(id: u32, len: usize, cut: usize) -> Vec<Vec<u8>> {
    let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(A6, B6, 64)
        .udp(7, 9)
        .write(&mut v, &payload)
        .unwrap();
    let body = v[54..].to_vec();
    let mut out = Vec::new();
    let mut off = 0;
    while off < body.len() {
        let end = (off + cut).min(body.len());
        let more = end < body.len();
        let mut f = v[..54].to_vec();
        f[20] = 60; // destination options
        f.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]);
        let fo = off as u16 | u16::from(more);
        f.extend_from_slice(&[17, 0]);
        f.extend_from_slice(&fo.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&body[off..end]);
        let pl = (f.len() - 54) as u16;
        f[18..20].copy_from_slice(&pl.to_be_bytes());
        out.push(f);
        off = end;
    }
    out
}

#[test]
fn ipv6_fragments_are_reassembled_then_tracked() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let fr = frags6(0xdead, 4000, 1400);
    assert_eq!(fr.len(), 3);
    for f in &fr[..2] {
        let mut p = Packet::from_slice(f);
        assert_eq!(ct.track(&mut p, &commit(2), now), Verdict::Held);
    }
    let mut p = Packet::from_slice(&fr[2]);
    assert_eq!(ct.track(&mut p, &commit(2), now), Verdict::Tracked);
    assert_eq!(p.md.ct.state, NEW);
    // Headers: destination options now lead straight to UDP.
    assert_eq!(p.data()[20], 60);
    assert_eq!(p.data()[54], 17);
    assert_eq!(p.len(), 54 + 8 + 8 + 4000);
    assert!(sums_ok(&p) && csum::verify_l4(p.data()));
    // The reply (unfragmented) is +est+rpl.
    let mut r = udp6(B6, A6, 9, 7);
    assert_eq!(run(&ct, &mut r, &commit(2), now), RPL);
    // A fragment in another zone does not complete this zone's datagram.
    let fr = frags6(5, 4000, 1400);
    let mut p = Packet::from_slice(&fr[0]);
    assert_eq!(ct.track(&mut p, &commit(2), now), Verdict::Held);
    let mut p = Packet::from_slice(&fr[1]);
    assert_eq!(ct.track(&mut p, &commit(3), now), Verdict::Held);
    let mut p = Packet::from_slice(&fr[2]);
    assert_eq!(ct.track(&mut p, &commit(3), now), Verdict::Held);
    assert_eq!(ct.ipf_stats().held, 3);
}

#[test]
fn a_flood_of_overlapping_fragments_stays_bounded() {
    let now = Instant::now();
    let ct = Conntrack::new();
    for id in 0..20_000u16 {
        let fr = frags4(id, 3000, 1480);
        for _ in 0..2 {
            let mut p = Packet::from_slice(&fr[0]);
            ct.track(&mut p, &commit(0), now);
        }
    }
    let st = ct.ipf_stats();
    assert_eq!((st.held, st.overlap), (0, 20_000));
    assert!(
        ct.lock().ipf.order_len() <= 2 * 1000 + 1,
        "{}",
        ct.lock().ipf.order_len()
    );
}

#[test]
fn nat_keeps_a_partial_checksum_right() {
    // A guest's TCP segment with its checksum left to us
    // (CHECKSUM_PARTIAL: the field holds the pseudo-header sum).
    let now = Instant::now();
    let ct = Conntrack::new();
    let mut p = tcp4(
        A,
        B,
        1000,
        80,
        Seg {
            syn: true,
            seq: 1,
            ..Seg::default()
        },
        b"abc",
    );
    let (start, off) = csum::prepare_partial(p.data_mut()).unwrap();
    p.csum = Csum::Partial { start, offset: off };
    ct.execute(&mut p, &snat([192, 0, 2, 7], 3000, 3000), now);
    assert_eq!(p.md.ct.state, NEW | cs::SNAT);
    assert_eq!((ip4(&p, 12), ports(&p).0), ([192, 0, 2, 7], 3000));
    let Csum::Partial { start, offset } = p.csum else {
        panic!("still partial")
    };
    assert!(csum::complete_partial(p.data_mut(), start, offset));
    assert!(csum::verify_l4(p.data()));
}

#[test]
fn threads_share_one_tracker() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let handles: Vec<_> = (0..4u16)
        .map(|t| {
            let ct = ct.clone();
            std::thread::spawn(move || {
                for i in 0..500u16 {
                    let mut p = udp4(A, B, 1000 + t * 1000 + i, 53);
                    ct.execute(&mut p, &commit(t), now);
                    let mut r = udp4(B, A, 53, 1000 + t * 1000 + i);
                    ct.execute(&mut r, &commit(t), now);
                    assert_eq!(r.md.ct.state, RPL);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(ct.nconns(), 2000);
    assert_eq!(ct.zone_limit(3).count, 500);
}

/// IPv4 `a` as a [`TupleMatch`] address.
fn v4(a: [u8; 4]) -> Option<u128> {
    Some(u128::from(u32::from_be_bytes(a)))
}

/// OVS tests/system-traffic.at "conntrack - ct flush": UDP 10.0.0.1:1 →
/// 10.0.0.2:2 in zone 0 and the other way round in zone 5.
fn two_udp(ct: &Conntrack, now: Instant) {
    run(ct, &mut udp4(A, B, 1, 2), &commit(0), now);
    run(ct, &mut udp4(B, A, 2, 1), &commit(5), now);
    assert_eq!(ct.nconns(), 2);
}

fn udp_match(orig: TupleMatch, reply: TupleMatch) -> FlushMatch {
    FlushMatch {
        ipv6: (orig.src.is_some() || orig.dst.is_some() || reply.src.is_some()).then_some(false),
        proto: Some(17),
        orig,
        reply,
    }
}

#[test]
fn flush_by_tuple_follows_ovs() {
    let now = Instant::now();
    let ct = Conntrack::new();
    let none = TupleMatch::default();
    // An exact five-tuple names either key, in zone 0 unless given: the
    // zone-0 connection's reply key here.
    two_udp(&ct, now);
    let rev = TupleMatch {
        src: v4(B),
        dst: v4(A),
        sport: Some(2),
        dport: Some(1),
        ..none
    };
    assert_eq!(ct.flush_match(None, &udp_match(rev, none)), Ok(1));
    assert_eq!(ct.dump(None), [
        "udp,orig=(src=10.0.0.2,dst=10.0.0.1,sport=2,dport=1),reply=(src=10.0.0.1,dst=10.0.0.2,sport=1,dport=2),zone=5"
    ]);
    // Gone, or in another zone: not found, nothing removed.
    assert_eq!(
        ct.flush_match(None, &udp_match(rev, none)),
        Err(FlushError::NotFound)
    );
    assert_eq!(ct.nconns(), 1);
    assert_eq!(ct.flush_match(Some(5), &udp_match(rev, none)), Ok(1));
    assert_eq!(ct.nconns(), 0);

    // Partial: by source port of the original direction, every zone.
    two_udp(&ct, now);
    let sport1 = TupleMatch {
        sport: Some(1),
        ..none
    };
    assert_eq!(ct.flush_match(None, &udp_match(sport1, none)), Ok(1));
    assert!(ct.dump(None)[0].ends_with("zone=5"));
    ct.flush(None);
    // By destination address.
    two_udp(&ct, now);
    let dst_b = TupleMatch { dst: v4(B), ..none };
    assert_eq!(ct.flush_match(None, &udp_match(dst_b, none)), Ok(1));
    assert!(ct.dump(None)[0].ends_with("zone=5"));
    ct.flush(None);
    // The reply tuple compares with the reply direction: zone 0's reply
    // source is B, zone 5's is A; a zone limits it.
    two_udp(&ct, now);
    let src_b = TupleMatch { src: v4(B), ..none };
    assert_eq!(ct.flush_match(Some(5), &udp_match(none, src_b)), Ok(0));
    assert_eq!(ct.flush_match(None, &udp_match(none, src_b)), Ok(1));
    assert!(ct.dump(None)[0].ends_with("zone=5"));
    let src_a = TupleMatch { src: v4(A), ..none };
    assert_eq!(ct.flush_match(Some(5), &udp_match(none, src_a)), Ok(1));
    assert_eq!(ct.nconns(), 0);
    // Another protocol or family matches nothing; an empty match is a
    // zone flush.
    two_udp(&ct, now);
    let tcp = FlushMatch {
        proto: Some(6),
        ..FlushMatch::default()
    };
    assert_eq!(ct.flush_match(None, &tcp), Ok(0));
    let v6 = FlushMatch {
        ipv6: Some(true),
        ..FlushMatch::default()
    };
    assert_eq!(ct.flush_match(None, &v6), Ok(0));
    assert_eq!(ct.flush_match(Some(5), &FlushMatch::default()), Ok(1));
    assert_eq!(ct.flush_match(None, &FlushMatch::default()), Ok(1));

    // ICMP: identifier, type and code compare exactly.
    run(&ct, &mut echo4(B, A, 7, false), &commit(5), now);
    let icmp = |id, typ| FlushMatch {
        ipv6: Some(false),
        proto: Some(1),
        orig: TupleMatch {
            src: v4(B),
            icmp_id: Some(id),
            icmp_type: Some(typ),
            icmp_code: Some(0),
            ..none
        },
        reply: none,
    };
    assert_eq!(ct.flush_match(Some(5), &icmp(8, 8)), Ok(0));
    assert_eq!(ct.flush_match(Some(5), &icmp(7, 0)), Ok(0));
    assert_eq!(ct.flush_match(Some(5), &icmp(7, 8)), Ok(1));
    // Exact (both addresses): by the reply key's type too.
    run(&ct, &mut echo4(B, A, 7, false), &commit(5), now);
    let mut m = icmp(7, 0);
    m.orig.src = v4(A);
    m.orig.dst = v4(B);
    assert_eq!(ct.flush_match(None, &m), Err(FlushError::NotFound));
    assert_eq!(ct.flush_match(Some(5), &m), Ok(1));
    assert_eq!(ct.nconns(), 0);

    // IPv6, next to IPv4 with the same ports: by family and address.
    run(&ct, &mut udp6(A6, B6, 1, 2), &commit(0), now);
    run(&ct, &mut udp6(B6, A6, 3, 4), &commit(0), now);
    run(&ct, &mut udp4(A, B, 1, 2), &commit(0), now);
    let v6src = FlushMatch {
        ipv6: Some(true),
        orig: TupleMatch {
            src: Some(u128::from_be_bytes(A6)),
            ..none
        },
        ..FlushMatch::default()
    };
    assert_eq!(ct.flush_match(None, &v6src), Ok(1));
    let port1 = FlushMatch {
        proto: Some(17),
        orig: TupleMatch {
            sport: Some(1),
            ..none
        },
        ..FlushMatch::default()
    };
    assert_eq!(ct.flush_match(None, &port1), Ok(1));
    assert!(ct.dump(None)[0].contains("sport=3"));
}
