//! Flow key extraction (OVS `miniflow_extract`, `lib/flow.c`).
//!
//! Every frame gets a key: parsing stops at the first header that does not
//! fit and the fields found so far stand, as OVS does.

use super::{Field, FlowKey, DL_TYPE_NONE, NW_FRAG_ANY, NW_FRAG_LATER, VLAN_CFI};
use crate::buffer::{OfPort, Packet, PacketMeta};
use crate::packet::{arp, ethernet, icmp, ipv4, ipv6, sctp, tcp, udp, EtherType, IpProtocol};

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

/// Extract the flow key of an Ethernet frame received on `in_port`.
pub fn extract_frame(frame: &[u8], in_port: OfPort) -> FlowKey {
    let mut k = FlowKey::default();
    k.set_in_port(in_port);
    let Ok(eth) = ethernet::Frame::new_checked(frame) else {
        return k;
    };
    k.set_dl_src(eth.src_addr());
    k.set_dl_dst(eth.dst_addr());
    let mut ty = eth.ethertype();
    let mut off = ethernet::HEADER_LEN;
    if ty.is_vlan() {
        let Ok(tag) = ethernet::VlanTag::new_checked(&frame[off..]) else {
            k.set_dl_type(ty.into());
            return k;
        };
        k.set_vlan_tci(tag.tci() | VLAN_CFI);
        ty = tag.ethertype();
        off += ethernet::VLAN_TAG_LEN;
    }
    let raw: u16 = ty.into();
    if raw < 0x0600 {
        k.set_dl_type(DL_TYPE_NONE);
        return k;
    }
    k.set_dl_type(raw);
    let l3 = &frame[off..];
    match ty {
        EtherType::Ipv4 => extract_ipv4(&mut k, l3),
        EtherType::Ipv6 => extract_ipv6(&mut k, l3),
        EtherType::Arp => extract_arp(&mut k, l3),
        _ if matches!(raw, 0x8847 | 0x8848) => extract_mpls(&mut k, l3),
        _ => {}
    }
    k
}

fn extract_ipv4(k: &mut FlowKey, l3: &[u8]) {
    let Ok(ip) = ipv4::Packet::new_checked(l3) else {
        return;
    };
    k.set_nw_src_v4(ip.src_addr());
    k.set_nw_dst_v4(ip.dst_addr());
    k.set_nw_proto(ip.protocol().into());
    k.set_nw_tos(ip.tos());
    k.set_nw_ttl(ip.ttl());
    if ip.more_frags() || ip.frag_offset() != 0 {
        let mut frag = NW_FRAG_ANY;
        if ip.frag_offset() != 0 {
            frag |= NW_FRAG_LATER;
            k.set_nw_frag(frag);
            return;
        }
        k.set_nw_frag(frag);
    }
    extract_l4(k, ip.protocol(), ip.payload());
}

fn extract_ipv6(k: &mut FlowKey, l3: &[u8]) {
    let Ok(ip) = ipv6::Packet::new_checked(l3) else {
        return;
    };
    k.set_nw_src_v6(ip.src_addr());
    k.set_nw_dst_v6(ip.dst_addr());
    k.set_nw_tos(ip.traffic_class());
    k.set_nw_ttl(ip.hop_limit());
    k.set(Field::Ipv6Label, u128::from(ip.flow_label()));
    let payload = ip.payload();
    let up = ipv6::skip_extensions(ip.next_header(), payload);
    k.set_nw_proto(up.proto.into());
    if up.fragment {
        k.set_nw_frag(if up.later_fragment {
            NW_FRAG_ANY | NW_FRAG_LATER
        } else {
            NW_FRAG_ANY
        });
        if up.later_fragment {
            return;
        }
    }
    if let Some(rest) = payload.get(up.ext_len..) {
        extract_l4(k, up.proto, rest);
    }
}

fn extract_l4(k: &mut FlowKey, proto: IpProtocol, l4: &[u8]) {
    match proto {
        IpProtocol::Tcp => {
            if let Ok(t) = tcp::Packet::new_checked(l4) {
                k.set_tp_src(t.src_port());
                k.set_tp_dst(t.dst_port());
                k.set_tcp_flags(t.flags());
            }
        }
        IpProtocol::Udp => {
            if let Ok(u) = udp::Packet::new_checked(l4) {
                k.set_tp_src(u.src_port());
                k.set_tp_dst(u.dst_port());
            }
        }
        IpProtocol::Sctp => {
            // OVS `miniflow_extract`: the ports once the 12-byte common
            // header fits (`SCTP_HEADER_LEN`).
            if let Ok(s) = sctp::Packet::new_checked(l4) {
                k.set_tp_src(s.src_port());
                k.set_tp_dst(s.dst_port());
            }
        }
        IpProtocol::Icmp | IpProtocol::Icmpv6 => {
            if let Ok(i) = icmp::Packet::new_checked(l4) {
                k.set_tp_src(u16::from(i.msg_type()));
                k.set_tp_dst(u16::from(i.msg_code()));
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

fn extract_arp(k: &mut FlowKey, l3: &[u8]) {
    let Ok(a) = arp::Packet::new_checked(l3) else {
        return;
    };
    // OVS: "We only match on the lower 8 bits of the opcode."
    let op = a.operation();
    if op <= 0xff {
        k.set_nw_proto(op as u8);
    }
    k.set_nw_src_v4(a.spa());
    k.set_nw_dst_v4(a.tpa());
    k.set(Field::ArpSha, u128::from(a.sha().to_u64()));
    k.set(Field::ArpTha, u128::from(a.tha().to_u64()));
}

/// The outer MPLS label stack entry (OVS keeps up to three; xennet the
/// outer one: label, TC, BOS, TTL).
fn extract_mpls(k: &mut FlowKey, l3: &[u8]) {
    if let Some(lse) = l3.get(..4) {
        let lse = u32::from_be_bytes([lse[0], lse[1], lse[2], lse[3]]);
        k.set(Field::MplsLabel, u128::from(lse >> 12));
        k.set(Field::MplsTc, u128::from((lse >> 9) & 7));
        k.set(Field::MplsBos, u128::from((lse >> 8) & 1));
        k.set(Field::MplsTtl, u128::from(lse & 0xff));
    }
}

/// ND fields of a neighbour solicitation (135) or advertisement (136)
/// (RFC 4861 §4.3, §4.4; OVS `parse_icmpv6`): the target address, the
/// reserved word (flags of an NA), the first option's type, and the
/// source (NS) or target (NA) link-layer address option. A malformed
/// option list leaves the options unset, as OVS does.
fn extract_nd(k: &mut FlowKey, icmp6: &[u8]) {
    let ty = icmp6[0];
    let Some(body) = icmp6.get(4..24) else {
        return;
    };
    k.set(
        Field::NdReserved,
        u128::from(u32::from_be_bytes([body[0], body[1], body[2], body[3]])),
    );
    let mut target = [0u8; 16];
    target.copy_from_slice(&body[4..20]);
    k.set(Field::NdTarget, u128::from_be_bytes(target));
    let mut opts = &icmp6[24..];
    let mut first = true;
    while opts.len() >= 8 {
        let (oty, olen) = (opts[0], usize::from(opts[1]) * 8);
        if olen == 0 || olen > opts.len() {
            return;
        }
        if first {
            k.set(Field::NdOptionsType, u128::from(oty));
            first = false;
        }
        let lla = || {
            let mut b = [0u8; 8];
            b[2..].copy_from_slice(&opts[2..8]);
            u128::from(u64::from_be_bytes(b))
        };
        match (ty, oty) {
            (135, 1) if k.get(Field::ArpSha) == 0 => k.set(Field::ArpSha, lla()),
            (136, 2) if k.get(Field::ArpTha) == 0 => k.set(Field::ArpTha, lla()),
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

    proptest! {
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
        p.md.ct.state = 0x21;
        p.md.ct.zone = 5;
        p.md.ct.label = 1 << 100;
        let k = extract(&p);
        assert_eq!(k.get(Field::RecircId), 7);
        assert_eq!(k.get(Field::TunId), 0x1234);
        assert_eq!(k.get(Field::TunDst), 0x0a00_0001);
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
