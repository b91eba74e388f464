#![allow(dead_code)]

use std::time::Duration;

use xennet_datapath::flow::extract_frame;
use xennet_datapath::{FlowKey, OfPort, Packet};
use xennet_openflow::model::*;

/// [`FlowMod::add`], short for the many tables the tests build.
pub fn fm(table_id: u8, priority: u16, matcher: Match, ins: Instructions) -> FlowMod {
    FlowMod::add(table_id, priority, matcher, ins)
}

pub fn out(port: u32) -> Action {
    Action::Output { port, max_len: 0 }
}

pub fn apply(a: Vec<Action>) -> Instructions {
    Instructions::apply(a)
}

/// Build a match from `(field, value, mask)` triples.
/// A group bucket with `actions`, no weight and no watch port or group.
pub fn bucket(actions: Vec<Action>) -> Bucket {
    Bucket {
        weight: 0,
        watch_port: OFPP_ANY,
        watch_group: OFPG_ANY,
        actions,
    }
}

pub fn m(fields: &[(OxmField, u128, u128)]) -> Match {
    let mut x = Match::CATCHALL;
    for (f, v, mk) in fields {
        x.set_field(*f, *v, *mk).unwrap();
    }
    x
}

pub fn exact(f: OxmField, v: u128) -> (OxmField, u128, u128) {
    let bits = f.bits();
    let mk = if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    (f, v, mk)
}

pub const MAC1: [u8; 6] = [0x50, 0x54, 0, 0, 0, 1];
pub const MAC2: [u8; 6] = [0x50, 0x54, 0, 0, 0, 2];

pub fn tcp_frame(src_ip: [u8; 4], dst_ip: [u8; 4], sport: u16, dport: u16, ttl: u8) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2(MAC1, MAC2)
        .ipv4(src_ip, dst_ip, ttl)
        .tcp(sport, dport, 1000, 4000)
        .write(&mut v, b"payload bytes")
        .unwrap();
    v
}

pub fn udp_frame(src_ip: [u8; 4], dst_ip: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2(MAC1, MAC2)
        .ipv4(src_ip, dst_ip, 64)
        .udp(sport, dport)
        .write(&mut v, b"udp payload")
        .unwrap();
    v
}

pub fn vlan_udp_frame(vid: u16) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2(MAC1, MAC2)
        .single_vlan(etherparse::VlanId::try_new(vid).unwrap())
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1, 2)
        .write(&mut v, b"x")
        .unwrap();
    v
}

/// `frame` with source MAC `src` and destination MAC `dst`.
pub fn with_macs(frame: &[u8], src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f
}

/// `frame` with a VLAN tag (`tpid`, `tci`) inserted after its MACs, as
/// the outermost tag.
pub fn with_tag(frame: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend(tpid.to_be_bytes());
    f.extend(tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// Untagged `frame`'s payload under one MPLS label stack entry (RFC
/// 3032: `label`, traffic class 0, bottom of stack, `ttl`), Ethernet type
/// 0x8847.
pub fn mpls_over(frame: &[u8], label: u32, ttl: u8) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x88, 0x47]);
    f.extend_from_slice(&((label << 12) | (1 << 8) | u32::from(ttl)).to_be_bytes());
    f.extend_from_slice(&frame[14..]);
    f
}

/// An SCTP common header from `sport` to `dport` (verification tag 1,
/// CRC left zero: nothing here checks it) and one DATA chunk carrying
/// the byte `x` (RFC 9260).
pub fn sctp_payload(sport: u16, dport: u16) -> Vec<u8> {
    let mut sctp = sport.to_be_bytes().to_vec();
    sctp.extend(dport.to_be_bytes());
    sctp.extend([0, 0, 0, 1, 0, 0, 0, 0, 0, 3, 0, 5, b'x', 0, 0, 0]);
    sctp
}

/// An SCTP frame from `MAC1` to `MAC2`: IPv6 `::0101..` to `::0202..`
/// when `v6`, else IPv4 10.0.0.1 to 10.0.0.2 (TTL or hop limit 64).
pub fn sctp_frame(v6: bool, sport: u16, dport: u16) -> Vec<u8> {
    let sctp = sctp_payload(sport, dport);
    let b = etherparse::PacketBuilder::ethernet2(MAC1, MAC2);
    let mut v = Vec::new();
    if v6 {
        b.ipv6([1; 16], [2; 16], 64)
            .write(&mut v, etherparse::IpNumber::SCTP, &sctp)
            .unwrap();
    } else {
        b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .write(&mut v, etherparse::IpNumber::SCTP, &sctp)
            .unwrap();
    }
    v
}

pub fn key_of(frame: &[u8], in_port: OfPort) -> FlowKey {
    extract_frame(frame, in_port)
}

pub fn packet(frame: &[u8], in_port: OfPort) -> Packet {
    let mut p = Packet::from_slice(frame);
    p.in_port = in_port;
    p
}

pub fn wait_sent(peer: &xennet_datapath::memport::MemPortPeer, n: usize) -> Vec<Packet> {
    peer.wait_sent(n, Duration::from_secs(60))
}

/// `dump_flows` text without the `duration=` fields, for comparing two
/// dumps taken at different times.
pub fn without_durations(dump: &str) -> Vec<String> {
    dump.lines()
        .map(|l| {
            l.split(", ")
                .filter(|p| !p.starts_with("duration="))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect()
}
