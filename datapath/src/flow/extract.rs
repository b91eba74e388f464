//! Flow key extraction (OVS `miniflow_extract`, `lib/flow.c`).
//!
//! Every frame gets a key: parsing stops at the first header that does not
//! fit and the fields found so far stand, as OVS does.

use super::{Field, FlowKey, DL_TYPE_NONE, NW_FRAG_ANY, NW_FRAG_LATER, N_PACKET_WORDS, VLAN_CFI};
use crate::buffer::{OfPort, Packet, PacketMeta};
use crate::packet::{arp, ethernet, icmp, ipv4, ipv6, sctp, tcp, udp, EtherType, IpProtocol};
use std::sync::atomic::{AtomicU8, Ordering};

/// Most VLAN tags a key holds (OVS `FLOW_MAX_VLAN_HEADERS`).
pub const MAX_VLAN_HEADERS: u8 = 2;

/// How many VLAN tags extraction parses ([`set_vlan_limit`]).
static VLAN_LIMIT: AtomicU8 = AtomicU8::new(MAX_VLAN_HEADERS);

/// Set how many VLAN tags extraction parses into the key, as OVS
/// `flow_limit_vlans` (the daemon's `Open_vSwitch:other_config:vlan-limit`,
/// process-wide as in OVS): 0 means as many as the key holds
/// ([`MAX_VLAN_HEADERS`]), larger values are cut to it. A tag beyond the
/// limit is payload (`dl_type` is its TPID). The library starts at
/// [`MAX_VLAN_HEADERS`] (OVS's `flow_vlan_limit`); xennetd sets OVS's
/// configured default, 1. Returns whether the limit changed (flow keys
/// differ from then on: the caller flushes cached megaflows).
pub fn set_vlan_limit(limit: u64) -> bool {
    let n = effective_vlan_limit(limit);
    VLAN_LIMIT.swap(n, Ordering::Relaxed) != n
}

/// The tags parsed for a configured `vlan-limit` (see [`set_vlan_limit`]).
pub fn effective_vlan_limit(limit: u64) -> u8 {
    match limit {
        0 => MAX_VLAN_HEADERS,
        n => n.min(u64::from(MAX_VLAN_HEADERS)) as u8,
    }
}

/// How many VLAN tags extraction parses (1 or [`MAX_VLAN_HEADERS`]).
pub fn vlan_limit() -> u8 {
    VLAN_LIMIT.load(Ordering::Relaxed)
}

/// Extract the flow key of `pkt` (its `in_port` and metadata included).
pub fn extract(pkt: &Packet) -> FlowKey {
    let mut k = extract_frame(pkt.data(), pkt.in_port);
    if !pkt.md.is_empty() {
        set_metadata(&mut k, &pkt.md);
    }
    k
}

/// Copy a packet's tunnel, conntrack and recirculation metadata into its
/// key (OVS `miniflow_extract` does this from `struct pkt_metadata`).
pub fn set_metadata(k: &mut FlowKey, md: &PacketMeta) {
    k.set(Field::RecircId, md.recirc_id.into());
    k.set(Field::DpHash, md.dp_hash.into());
    k.set(Field::PktMark, md.pkt_mark.into());
    let t = &md.tunnel;
    k.set(Field::TunId, t.id.into());
    k.set(Field::TunSrc, t.src);
    k.set(Field::TunDst, t.dst);
    k.set(Field::TunFlags, t.flags.into());
    k.set(Field::TunOpts(0), t.metadata[0]);
    k.set(Field::TunOpts(1), t.metadata[1]);
    k.set(Field::TunMdPresent, t.md_present.into());
    let c = &md.ct;
    k.set(Field::CtState, c.state.into());
    k.set(Field::CtZone, c.zone.into());
    k.set(Field::CtMark, c.mark.into());
    k.set(Field::CtLabel, c.label);
    k.set(Field::CtNwSrc, c.nw_src);
    k.set(Field::CtNwDst, c.nw_dst);
    k.set(Field::CtNwProto, c.nw_proto.into());
    k.set(Field::CtTpSrc, c.tp_src.into());
    k.set(Field::CtTpDst, c.tp_dst.into());
}

/// Most words past the packet-header words that one packet sets (IPv6
/// ND: flow label, ND reserved with the VLAN TPIDs, ND target (2),
/// options type with `nd_sll`, `nd_tll`).
const MAX_REST: usize = 8;

/// The key under construction, all in locals: the packet-header words,
/// and the few words past them that rarer headers set (ND, ARP hardware
/// addresses, MPLS, the IPv6 flow label). The key is written once at the
/// end, in the caller's slot; its other words (metadata, tunnel,
/// conntrack) are zero, as a packet enters.
struct Builder {
    hdr: [u64; N_PACKET_WORDS],
    /// `(word index, value)` of the words past `hdr` set so far.
    rest: [(usize, u64); MAX_REST],
    n_rest: usize,
}

impl Builder {
    /// Set a field of the packet-header words.
    #[inline(always)]
    fn set(&mut self, f: Field, v: u128) {
        let (i, shift, bits) = f.layout();
        debug_assert!(i + usize::from(bits == 128) < N_PACKET_WORDS, "{f:?}");
        if bits == 128 {
            self.hdr[i] = (v >> 64) as u64;
            self.hdr[i + 1] = v as u64;
        } else {
            let m = (u64::MAX >> (64 - bits)) << shift;
            self.hdr[i] = (self.hdr[i] & !m) | (((v as u64) << shift) & m);
        }
    }

    /// Word `i` (past the header words) for writing, zero if new; `None`
    /// only if more than [`MAX_REST`] words were set, which no parser
    /// below does.
    fn rest_word(&mut self, i: usize) -> Option<&mut u64> {
        let n = self.n_rest;
        match self.rest[..n].iter().position(|(j, _)| *j == i) {
            Some(p) => Some(&mut self.rest[p].1),
            None if n < MAX_REST => {
                self.rest[n] = (i, 0);
                self.n_rest += 1;
                Some(&mut self.rest[n].1)
            }
            None => None,
        }
    }

    /// Set a field past the packet-header words.
    fn set_rest(&mut self, f: Field, v: u128) {
        let (i, shift, bits) = f.layout();
        debug_assert!(i >= N_PACKET_WORDS, "{f:?}");
        let fits = if bits == 128 {
            self.rest_word(i).map(|w| *w = (v >> 64) as u64).is_some()
                && self.rest_word(i + 1).map(|w| *w = v as u64).is_some()
        } else {
            let m = (u64::MAX >> (64 - bits)) << shift;
            self.rest_word(i)
                .map(|w| *w = (*w & !m) | (((v as u64) << shift) & m))
                .is_some()
        };
        debug_assert!(fits, "more than MAX_REST words set");
    }

    /// Word `i` past the packet-header words (0 if not set).
    fn rest_value(&self, i: usize) -> u64 {
        self.rest[..self.n_rest]
            .iter()
            .find(|(j, _)| *j == i)
            .map_or(0, |(_, w)| *w)
    }

    /// A field past the packet-header words (0 if not set).
    fn get_rest(&self, f: Field) -> u128 {
        let (i, shift, bits) = f.layout();
        debug_assert!(bits < 128 && i >= N_PACKET_WORDS, "{f:?}");
        let w = self.rest_value(i);
        u128::from((w >> shift) & (u64::MAX >> (64 - bits)))
    }
}

/// Extract the flow key of an Ethernet frame received on `in_port`, with
/// as many VLAN tags as [`vlan_limit`] says.
pub fn extract_frame(frame: &[u8], in_port: OfPort) -> FlowKey {
    extract_frame_vlans(frame, in_port, vlan_limit())
}

/// [`extract_frame`] parsing at most `max_vlans` VLAN tags (at most
/// [`MAX_VLAN_HEADERS`]).
pub fn extract_frame_vlans(frame: &[u8], in_port: OfPort, max_vlans: u8) -> FlowKey {
    let mut b = Builder {
        hdr: [0; N_PACKET_WORDS],
        rest: [(0, 0); MAX_REST],
        n_rest: 0,
    };
    b.set(Field::InPort, u128::from(in_port));
    extract_eth(&mut b, frame, usize::from(max_vlans));
    // Built straight into the caller's slot, without a copy of the
    // whole key (hence no dynamic index into it here).
    FlowKey {
        words: std::array::from_fn(|i| {
            if i < N_PACKET_WORDS {
                b.hdr[i]
            } else if b.n_rest == 0 {
                0
            } else {
                b.rest_value(i)
            }
        }),
    }
}

#[inline(always)]
fn extract_eth(k: &mut Builder, frame: &[u8], max_vlans: usize) {
    let Ok(eth) = ethernet::Frame::new_checked(frame) else {
        return;
    };
    k.set(Field::DlSrc, u128::from(eth.src_addr().to_u64()));
    k.set(Field::DlDst, u128::from(eth.dst_addr().to_u64()));
    let mut ty = eth.ethertype();
    let mut off = ethernet::HEADER_LEN;
    // Up to `max_vlans` tags (TPID 0x8100 or 0x88a8 at either level), as
    // OVS `parse_vlan` with `flow_vlan_limit`: the outer in `vlan_tci`,
    // the inner in `vlan_tci1` (their TPIDs in `vlan_tpid`, `vlan_tpid1`);
    // a tag past them is payload (`dl_type` 0x8100/0x88a8). A truncated
    // tag ends parsing there.
    for (f, tf) in [
        (Field::VlanTci, Field::VlanTpid),
        (Field::Vlan2Tci, Field::Vlan2Tpid),
    ]
    .into_iter()
    .take(max_vlans)
    {
        if !ty.is_vlan() {
            break;
        }
        let Ok(tag) = ethernet::VlanTag::new_checked(&frame[off..]) else {
            k.set(Field::DlType, u128::from(u16::from(ty)));
            return;
        };
        k.set(f, u128::from(tag.tci() | VLAN_CFI));
        k.set_rest(tf, u128::from(u16::from(ty)));
        ty = tag.ethertype();
        off += ethernet::VLAN_TAG_LEN;
    }
    let raw: u16 = ty.into();
    if raw < 0x0600 {
        k.set(Field::DlType, u128::from(DL_TYPE_NONE));
        return;
    }
    k.set(Field::DlType, u128::from(raw));
    let l3 = &frame[off..];
    match ty {
        EtherType::Ipv4 => extract_ipv4(k, l3),
        EtherType::Ipv6 => extract_ipv6(k, l3),
        // OVS `flow_extract`: RARP (0x8035) has ARP's layout and fields.
        EtherType::Arp => extract_arp(k, l3),
        _ if raw == 0x8035 => extract_arp(k, l3),
        _ if matches!(raw, 0x8847 | 0x8848) => extract_mpls(k, l3),
        _ => {}
    }
}

#[inline(always)]
fn extract_ipv4(k: &mut Builder, l3: &[u8]) {
    let Ok(ip) = ipv4::Packet::new_checked(l3) else {
        return;
    };
    k.set(Field::NwSrc, u128::from(u32::from(ip.src_addr())));
    k.set(Field::NwDst, u128::from(u32::from(ip.dst_addr())));
    k.set(Field::NwProto, u128::from(u8::from(ip.protocol())));
    k.set(Field::NwTos, u128::from(ip.tos()));
    k.set(Field::NwTtl, u128::from(ip.ttl()));
    if ip.more_frags() || ip.frag_offset() != 0 {
        let mut frag = NW_FRAG_ANY;
        if ip.frag_offset() != 0 {
            frag |= NW_FRAG_LATER;
            k.set(Field::NwFrag, u128::from(frag));
            return;
        }
        k.set(Field::NwFrag, u128::from(frag));
    }
    extract_l4(k, ip.protocol(), ip.payload());
}

fn extract_ipv6(k: &mut Builder, l3: &[u8]) {
    let Ok(ip) = ipv6::Packet::new_checked(l3) else {
        return;
    };
    k.set(Field::NwSrc, u128::from(ip.src_addr()));
    k.set(Field::NwDst, u128::from(ip.dst_addr()));
    k.set(Field::NwTos, u128::from(ip.traffic_class()));
    k.set(Field::NwTtl, u128::from(ip.hop_limit()));
    k.set_rest(Field::Ipv6Label, u128::from(ip.flow_label()));
    let payload = ip.payload();
    let up = ipv6::skip_extensions(ip.next_header(), payload);
    k.set(Field::NwProto, u128::from(u8::from(up.proto)));
    if up.fragment {
        let frag = if up.later_fragment {
            NW_FRAG_ANY | NW_FRAG_LATER
        } else {
            NW_FRAG_ANY
        };
        k.set(Field::NwFrag, u128::from(frag));
        if up.later_fragment {
            return;
        }
    }
    if let Some(rest) = payload.get(up.ext_len..) {
        extract_l4(k, up.proto, rest);
    }
}

#[inline(always)]
fn extract_l4(k: &mut Builder, proto: IpProtocol, l4: &[u8]) {
    match proto {
        IpProtocol::Tcp => {
            if let Ok(t) = tcp::Packet::new_checked(l4) {
                k.set(Field::TpSrc, u128::from(t.src_port()));
                k.set(Field::TpDst, u128::from(t.dst_port()));
                k.set(Field::TcpFlags, u128::from(t.flags()));
            }
        }
        IpProtocol::Udp => {
            if let Ok(u) = udp::Packet::new_checked(l4) {
                k.set(Field::TpSrc, u128::from(u.src_port()));
                k.set(Field::TpDst, u128::from(u.dst_port()));
            }
        }
        IpProtocol::Sctp => {
            // OVS `miniflow_extract`: the ports once the 12-byte common
            // header fits (`SCTP_HEADER_LEN`).
            if let Ok(s) = sctp::Packet::new_checked(l4) {
                k.set(Field::TpSrc, u128::from(s.src_port()));
                k.set(Field::TpDst, u128::from(s.dst_port()));
            }
        }
        IpProtocol::Icmp | IpProtocol::Icmpv6 => {
            if let Ok(i) = icmp::Packet::new_checked(l4) {
                k.set(Field::TpSrc, u128::from(i.msg_type()));
                k.set(Field::TpDst, u128::from(i.msg_code()));
                if proto == IpProtocol::Icmpv6
                    && matches!(i.msg_type(), 135 | 136)
                    && i.msg_code() == 0
                {
                    extract_nd(k, l4);
                }
            }
        }
        _ => {}
    }
}

fn extract_arp(k: &mut Builder, l3: &[u8]) {
    let Ok(a) = arp::Packet::new_checked(l3) else {
        return;
    };
    // OVS: "We only match on the lower 8 bits of the opcode."
    let op = a.operation();
    if op <= 0xff {
        k.set(Field::NwProto, u128::from(op));
    }
    k.set(Field::NwSrc, u128::from(u32::from(a.spa())));
    k.set(Field::NwDst, u128::from(u32::from(a.tpa())));
    k.set_rest(Field::ArpSha, u128::from(a.sha().to_u64()));
    k.set_rest(Field::ArpTha, u128::from(a.tha().to_u64()));
}

/// The outer MPLS label stack entry (OVS keeps up to three; xennet the
/// outer one: label, TC, BOS, TTL).
fn extract_mpls(k: &mut Builder, l3: &[u8]) {
    if let Some(lse) = l3.get(..4) {
        let lse = u32::from_be_bytes([lse[0], lse[1], lse[2], lse[3]]);
        k.set_rest(Field::MplsLabel, u128::from(lse >> 12));
        k.set_rest(Field::MplsTc, u128::from((lse >> 9) & 7));
        k.set_rest(Field::MplsBos, u128::from((lse >> 8) & 1));
        k.set_rest(Field::MplsTtl, u128::from(lse & 0xff));
    }
}

/// ND fields of a neighbour solicitation (135) or advertisement (136)
/// (RFC 4861 §4.3, §4.4; OVS `parse_icmpv6`): the target address, the
/// reserved word (flags of an NA), the first option's type, and the
/// source (NS) or target (NA) link-layer address option. A malformed
/// option list leaves the options unset, as OVS does.
fn extract_nd(k: &mut Builder, icmp6: &[u8]) {
    let ty = icmp6[0];
    let Some(body) = icmp6.get(4..24) else {
        return;
    };
    k.set_rest(
        Field::NdReserved,
        u128::from(u32::from_be_bytes([body[0], body[1], body[2], body[3]])),
    );
    let mut target = [0u8; 16];
    target.copy_from_slice(&body[4..20]);
    k.set_rest(Field::NdTarget, u128::from_be_bytes(target));
    let mut opts = &icmp6[24..];
    let mut first = true;
    while opts.len() >= 8 {
        let (oty, olen) = (opts[0], usize::from(opts[1]) * 8);
        if olen == 0 || olen > opts.len() {
            return;
        }
        if first {
            k.set_rest(Field::NdOptionsType, u128::from(oty));
            first = false;
        }
        let lla = || {
            let mut b = [0u8; 8];
            b[2..].copy_from_slice(&opts[2..8]);
            u128::from(u64::from_be_bytes(b))
        };
        match (ty, oty) {
            (135, 1) if k.get_rest(Field::ArpSha) == 0 => k.set_rest(Field::ArpSha, lla()),
            (136, 2) if k.get_rest(Field::ArpTha) == 0 => k.set_rest(Field::ArpTha, lla()),
            _ => {}
        }
        opts = &opts[olen..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::MacAddr;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const SRC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const DST: [u8; 6] = [2, 0, 0, 0, 0, 2];

    #[test]
    fn tcp_over_vlan_ipv4() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(SRC, DST)
            .single_vlan(etherparse::VlanId::try_new(10).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 33)
            .tcp(1234, 80, 1, 1000)
            .syn()
            .write(&mut v, b"x")
            .unwrap();
        let k = extract_frame(&v, 3);
        assert_eq!(k.in_port(), 3);
        assert_eq!(k.dl_src(), MacAddr(SRC));
        assert_eq!(k.dl_dst(), MacAddr(DST));
        assert_eq!(k.vlan_tci(), 0x1000 | 10);
        assert_eq!(k.dl_type(), 0x0800);
        assert_eq!(k.nw_src_v4(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(k.nw_dst_v4(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(k.nw_proto(), 6);
        assert_eq!(k.nw_ttl(), 33);
        assert_eq!((k.tp_src(), k.tp_dst()), (1234, 80));
        assert_eq!(k.tcp_flags(), tcp::SYN);
        assert_eq!(k.nw_frag(), 0);
        assert_eq!(
            k.to_string(),
            "in_port=3,dl_vlan=10,dl_vlan_pcp=0,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,\
             dl_type=0x0800,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_proto=6,nw_tos=0,nw_ecn=0,\
             nw_ttl=33,nw_frag=no,tp_src=1234,tp_dst=80,tcp_flags=0x002"
        );
    }

    /// A UDP frame with the tags `tags` (TPID, TCI; outer first).
    fn tagged_udp(tags: &[(u16, u16)]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(SRC, DST)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2)
            .write(&mut v, b"x")
            .unwrap();
        for &(tpid, tci) in tags.iter().rev() {
            let (p, t) = (tpid.to_be_bytes(), tci.to_be_bytes());
            v.splice(12..12, [p[0], p[1], t[0], t[1]]);
        }
        v
    }

    #[test]
    fn two_vlan_tags_as_ovs_parse_vlan() {
        // QinQ (802.1ad S-tag over C-tag) and two 802.1Q tags: both in
        // the key, dl_type the payload's.
        for outer in [0x88a8, 0x8100] {
            let k = extract_frame(&tagged_udp(&[(outer, 0x200a), (0x8100, 5)]), 1);
            assert_eq!(k.vlan_tci(), 0x1000 | 0x200a);
            assert_eq!(k.get(Field::Vlan2Tci), 0x1005);
            let tpids = (k.get(Field::VlanTpid), k.get(Field::Vlan2Tpid));
            assert_eq!(tpids, (outer.into(), 0x8100), "OVS flow.vlans[i].tpid");
            assert_eq!((k.dl_type(), k.nw_proto(), k.tp_dst()), (0x0800, 17, 2));
            assert!(k
                .to_string()
                .contains("dl_vlan=10,dl_vlan_pcp=1,dl_vlan1=5,dl_vlan_pcp1=0,"));
        }
        // One tag: no inner tag, as before.
        let k = extract_frame(&tagged_udp(&[(0x8100, 7)]), 1);
        assert_eq!((k.vlan_tci(), k.get(Field::Vlan2Tci)), (0x1007, 0));
        assert_eq!(
            (k.get(Field::VlanTpid), k.get(Field::Vlan2Tpid)),
            (0x8100, 0)
        );
        let limits = [0, 1, 2, 3, u64::MAX].map(effective_vlan_limit);
        assert_eq!(limits, [2, 1, 2, 2, 2], "OVS flow_limit_vlans");
        // `vlan-limit=1`: the second tag is payload.
        let k = extract_frame_vlans(&tagged_udp(&[(0x88a8, 0x200a), (0x8100, 5)]), 1, 1);
        assert_eq!((k.vlan_tci(), k.get(Field::Vlan2Tci)), (0x100a | 0x2000, 0));
        assert_eq!(
            (k.get(Field::VlanTpid), k.get(Field::Vlan2Tpid)),
            (0x88a8, 0)
        );
        assert_eq!((k.dl_type(), k.nw_proto()), (0x8100, 0));
        // A third tag is payload.
        let k = extract_frame(&tagged_udp(&[(0x88a8, 1), (0x8100, 2), (0x8100, 3)]), 1);
        assert_eq!((k.vlan_tci(), k.get(Field::Vlan2Tci)), (0x1001, 0x1002));
        assert_eq!((k.dl_type(), k.nw_proto()), (0x8100, 0));
        // An inner tag cut short: the outer tag, dl_type its TPID.
        let mut v = tagged_udp(&[(0x88a8, 1), (0x8100, 2)]);
        v.truncate(18);
        let k = extract_frame(&v, 1);
        assert_eq!((k.vlan_tci(), k.get(Field::Vlan2Tci)), (0x1001, 0));
        assert_eq!(
            (k.get(Field::VlanTpid), k.get(Field::Vlan2Tpid)),
            (0x88a8, 0)
        );
        assert_eq!(k.dl_type(), 0x8100);
    }

    #[test]
    fn udp_ipv6_and_icmpv6() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(SRC, DST)
            .ipv6([1; 16], [2; 16], 5)
            .udp(53, 5353)
            .write(&mut v, b"abc")
            .unwrap();
        let k = extract_frame(&v, 1);
        assert_eq!(k.vlan_tci(), 0);
        assert_eq!(k.dl_type(), 0x86dd);
        assert_eq!(k.nw_src_v6().octets(), [1; 16]);
        assert_eq!(
            (k.nw_proto(), k.nw_ttl(), k.tp_src(), k.tp_dst()),
            (17, 5, 53, 5353)
        );

        let mut v = Vec::new();
        PacketBuilder::ethernet2(SRC, DST)
            .ipv6([1; 16], [2; 16], 255)
            .icmpv6_echo_request(1, 2)
            .write(&mut v, b"")
            .unwrap();
        let k = extract_frame(&v, 1);
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (58, 128, 0));
    }

    #[test]
    fn sctp_ports_ipv4_and_ipv6() {
        let mut sctp = vec![0x13, 0x88, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0];
        sctp.extend([1, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef]);
        let mut v = Vec::new();
        PacketBuilder::ethernet2(SRC, DST)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .write(&mut v, etherparse::IpNumber(132), &sctp)
            .unwrap();
        let k = extract_frame(&v, 1);
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (132, 5000, 80));
        assert_eq!(k.tcp_flags(), 0);

        let mut v = Vec::new();
        PacketBuilder::ethernet2(SRC, DST)
            .single_vlan(etherparse::VlanId::try_new(3).unwrap())
            .ipv6([1; 16], [2; 16], 64)
            .write(&mut v, etherparse::IpNumber(132), &sctp)
            .unwrap();
        let k = extract_frame(&v, 1);
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (132, 5000, 80));

        // A common header cut short: no ports, as OVS.
        let mut v = Vec::new();
        PacketBuilder::ethernet2(SRC, DST)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .write(&mut v, etherparse::IpNumber(132), &sctp[..11])
            .unwrap();
        let k = extract_frame(&v, 1);
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (132, 0, 0));
    }

    #[test]
    fn arp_and_fragments_and_odd_frames() {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        let k = extract_frame(&f, 7);
        assert_eq!(k.dl_type(), 0x0806);
        assert_eq!(k.nw_proto(), 1);
        assert_eq!(k.nw_src_v4(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(k.nw_dst_v4(), Ipv4Addr::new(10, 0, 0, 2));
        // RARP request (opcode 3), as OVN's routers send: ARP's fields.
        f[12..14].copy_from_slice(&[0x80, 0x35]);
        f[21] = 3;
        let k = extract_frame(&f, 7);
        assert_eq!((k.dl_type(), k.nw_proto()), (0x8035, 3));
        assert_eq!(k.nw_src_v4(), Ipv4Addr::new(10, 0, 0, 1));

        // Later IPv4 fragment: no L4.
        let mut v = Vec::new();
        PacketBuilder::ethernet2(SRC, DST)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2)
            .write(&mut v, b"abcdefgh")
            .unwrap();
        v[14 + 6] = 0x00;
        v[14 + 7] = 0x10; // offset 128 bytes
        let k = extract_frame(&v, 1);
        assert_eq!(k.nw_frag(), NW_FRAG_ANY | NW_FRAG_LATER);
        assert_eq!(k.tp_src(), 0);

        // 802.3 length frame, truncated VLAN, runt.
        let mut f = vec![0u8; 20];
        f[12] = 0x00;
        f[13] = 0x40;
        assert_eq!(extract_frame(&f, 1).dl_type(), DL_TYPE_NONE);
        f[12] = 0x81;
        f[13] = 0x00;
        assert_eq!(extract_frame(&f[..16], 1).dl_type(), 0x8100);
        assert_eq!(extract_frame(&f[..5], 9).in_port(), 9);
    }

    fn seed_frames() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let b = || PacketBuilder::ethernet2(SRC, DST);
        let mut v = Vec::new();
        b().ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1, 2, 3, 4)
            .write(&mut v, &[9u8; 300])
            .unwrap();
        out.push(v);
        let mut v = Vec::new();
        b().single_vlan(etherparse::VlanId::try_new(7).unwrap())
            .ipv6([1; 16], [2; 16], 64)
            .tcp(1, 2, 3, 4)
            .write(&mut v, &[9u8; 300])
            .unwrap();
        out.push(v);
        let mut v = Vec::new();
        b().ipv6([1; 16], [2; 16], 64)
            .udp(1, 2)
            .write(&mut v, &[1u8; 40])
            .unwrap();
        out.push(v);
        out
    }

    /// Frames that set the fields past the packet-header words: an ND
    /// solicitation and advertisement with link-layer options, ARP,
    /// MPLS.
    fn rest_frames() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (ty, opt) in [(135u8, 1u8), (136, 2)] {
            let mut icmp = vec![ty, 0, 0, 0, 0x60, 0, 0, 0];
            icmp.extend([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
            icmp.extend([opt, 1, 2, 0, 0, 0, 0, 9]);
            icmp.extend([opt, 1, 2, 0, 0, 0, 0, 8]);
            let mut v = Vec::new();
            PacketBuilder::ethernet2(SRC, DST)
                .ipv6([1; 16], [2; 16], 255)
                .write(&mut v, etherparse::IpNumber(58), &icmp)
                .unwrap();
            v[14 + 1] |= 0x0a; // a flow label
            out.push(v);
        }
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&[10, 0, 0, 1]);
        f.extend_from_slice(&DST);
        f.extend_from_slice(&[10, 0, 0, 2]);
        out.push(f);
        let mut f = DST.to_vec();
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&[0x88, 0x47, 0x00, 0x01, 0x41, 0x40, 0x45, 0]);
        out.push(f);
        out
    }

    #[test]
    fn rest_fields_land_in_the_key() {
        let f = rest_frames();
        let ns = extract_frame(&f[0], 1);
        assert_eq!(
            ns.get(Field::NdTarget),
            0xfe80_0000_0000_0000_0000_0000_0000_0007
        );
        assert_eq!(ns.get(Field::NdReserved), 0x6000_0000);
        assert_eq!(ns.get(Field::NdOptionsType), 1);
        assert_eq!(
            ns.get(Field::ArpSha),
            0x0200_0000_0009,
            "the first SLL option"
        );
        assert_eq!(ns.get(Field::ArpTha), 0);
        assert_eq!(ns.get(Field::Ipv6Label), 0xa_0000);
        let na = extract_frame(&f[1], 1);
        assert_eq!(na.get(Field::ArpTha), 0x0200_0000_0009);
        assert_eq!(na.get(Field::NdOptionsType), 2);
        let arp = extract_frame(&f[2], 1);
        assert_eq!(arp.get(Field::ArpSha), MacAddr(SRC).to_u64().into());
        assert_eq!(arp.get(Field::ArpTha), MacAddr(DST).to_u64().into());
        assert_eq!(arp.nw_proto(), 2);
        let mpls = extract_frame(&f[3], 1);
        assert_eq!(
            (
                mpls.get(Field::MplsLabel),
                mpls.get(Field::MplsTc),
                mpls.get(Field::MplsBos),
                mpls.get(Field::MplsTtl)
            ),
            (20, 0, 1, 0x40)
        );
    }

    proptest! {
        /// Whatever the frame, extraction leaves every field a packet
        /// does not carry (pipeline, tunnel, conntrack, mark, recirc,
        /// hash) zero, and never sets more words than it can hold.
        #[test]
        fn metadata_stays_zero(which in 0usize..4,
                               muts in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
                               cut in any::<usize>()) {
            let mut f = rest_frames()[which].clone();
            for (at, val) in muts {
                let n = f.len();
                f[at % n] = val;
            }
            if cut % 3 == 0 {
                f.truncate(cut % (f.len() + 1));
            }
            let k = extract_frame(&f, 1);
            let mut meta = crate::flow::FlowMask::CATCHALL;
            for fd in Field::ALL {
                if fd.is_pipeline_only() || Field::CT.contains(&fd) || matches!(fd,
                    Field::TunId | Field::TunSrc | Field::TunDst | Field::TunFlags |
                    Field::TunOpts(_) | Field::TunMdPresent |
                    Field::PktMark | Field::RecircId | Field::DpHash) {
                    meta.set_exact(fd);
                }
            }
            prop_assert_eq!(k.masked(&meta), FlowKey::default());
        }

        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                        ty in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x0806), Just(0x8100), Just(0x88a8), any::<u16>()],
                                        ver in any::<u8>()) {
            let mut f = bytes.clone();
            let _ = extract_frame(&f, 1);
            if f.len() > 15 {
                f[12..14].copy_from_slice(&ty.to_be_bytes());
                f[14] = ver;
                let _ = extract_frame(&f, 1);
                let _ = crate::csum::partial_offsets(&f);
                let _ = crate::csum::fill_l4(&mut f.clone());
                let _ = crate::csum::complete_partial(&mut f.clone(), ver.into(), ty);
                let mut p = Packet::from_slice(&f);
                p.gso = Some(crate::Gso { kind: crate::GsoType::TcpV4, mss: (ty % 64) });
                let mut out = Vec::new();
                let _ = crate::gso::segment(&p, &mut out);
            }
        }
        #[test]
        fn never_panics_on_mutated_frames(which in 0usize..3,
                                          muts in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
                                          cut in any::<usize>(),
                                          mss in 0u16..400) {
            use crate::actions::{DpAction, Executor};
            let mut f = seed_frames()[which].clone();
            for (at, val) in muts {
                let n = f.len();
                f[at % n] = val;
            }
            if cut % 3 == 0 {
                f.truncate(cut % (f.len() + 1));
            }
            let _ = extract_frame(&f, 1);
            let _ = crate::csum::fill_l4(&mut f.clone());
            let mut p = Packet::from_slice(&f);
            if let Some((s, o)) = crate::csum::partial_offsets(&f) {
                p.csum = crate::Csum::Partial { start: s, offset: o };
            }
            p.gso = Some(crate::Gso { kind: crate::GsoType::TcpV6, mss });
            let batch = vec![p];
            let mut ex = Executor::new();
            ex.execute(&batch, &[0], &[DpAction::PopVlan, DpAction::Output(1),
                DpAction::PushVlan { tpid: 0x8100, tci: 5 }, DpAction::PushVlan { tpid: 0x8100, tci: 6 }, DpAction::Output(2)],
                &|_| Some(crate::PortFeatures::default()));
            ex.flush(&batch, &mut |_, _| {});
        }
    }
}

#[cfg(test)]
mod md_tests {
    use super::*;

    #[test]
    fn packet_metadata_reaches_the_key_and_reset_clears_it() {
        let mut p = Packet::from_slice(&[0u8; 60]);
        assert_eq!(extract(&p), extract_frame(p.data(), 0));
        p.md.recirc_id = 7;
        p.md.tunnel.id = 0x1234;
        p.md.tunnel.dst = 0x0a00_0001;
        p.md.tunnel.metadata = [0x1234 << 96, 5];
        p.md.tunnel.md_present = 0b101;
        p.md.ct.state = 0x21;
        p.md.ct.zone = 5;
        p.md.ct.label = 1 << 100;
        let k = extract(&p);
        assert_eq!(k.get(Field::RecircId), 7);
        assert_eq!(k.get(Field::TunId), 0x1234);
        assert_eq!(k.get(Field::TunDst), 0x0a00_0001);
        assert_eq!(k.get(Field::TunOpts(0)), 0x1234 << 96);
        assert_eq!(k.get(Field::TunOpts(1)), 5);
        assert_eq!(k.get(Field::TunMdPresent), 0b101);
        assert_eq!(k.get(Field::CtState), 0x21);
        assert_eq!(k.get(Field::CtZone), 5);
        assert_eq!(k.get(Field::CtLabel), 1 << 100);
        let mut q = Packet::new();
        q.clone_from_packet(&p);
        assert_eq!(q.md, p.md);
        p.reset();
        assert!(p.md.is_empty());
    }
}
