//! Software GSO: cut a TCP super-frame into MSS-sized segments, as Linux
//! `skb_segment` / `tcp_gso_segment` and OVS `dp_packet_gso` do for ports
//! that cannot take super-frames.
//!
//! Every segment gets a copy of the L2/L3/L4 headers and up to `mss` payload
//! bytes. IPv4: total length, identification (incremented per segment, as
//! Linux does for non-atomic datagrams) and header checksum. IPv6: payload
//! length. TCP: sequence number advanced by the payload offset; FIN and PSH
//! only on the last segment, CWR only on the first. Each segment leaves with
//! [`Csum::Partial`] (pseudo-header sum in the field), so a port without
//! checksum offload finishes it with [`crate::csum::complete_partial`].

use crate::buffer::{Csum, Packet};
use crate::csum;
use crate::packet::{ipv4, ipv6, tcp, IpProtocol};

/// Segment `pkt` into `out` (appended). A frame that needs no cutting
/// (payload ≤ MSS, or no GSO state) is appended as a copy without GSO
/// state. Returns false, appending nothing, if the frame is not a TCP
/// over IPv4/IPv6 frame whose headers parse, or if the MSS is 0.
pub fn segment(pkt: &Packet, out: &mut Vec<Packet>) -> bool {
    let frame = pkt.data();
    let Some(loc) = csum::locate_l4(frame) else {
        return false;
    };
    if loc.proto != IpProtocol::Tcp {
        return false;
    }
    let Ok(t) = tcp::Packet::new_checked(&frame[loc.l4..loc.l4 + loc.l4_len]) else {
        return false;
    };
    let mss = match pkt.gso {
        Some(g) => usize::from(g.mss),
        None => usize::MAX,
    };
    if mss == 0 {
        return false;
    }
    let thl = usize::from(t.header_len());
    let hdr_len = loc.l4 + thl;
    let payload = &frame[hdr_len..loc.l4 + loc.l4_len];
    let seq0 = t.seq_number();
    let flags0 = t.flags();
    let ip_id0 = if loc.ipv6 {
        0
    } else {
        ipv4::Packet::new_unchecked(&frame[loc.l3..]).ident()
    };
    if payload.len() <= mss {
        let mut copy = pkt.clone();
        copy.gso = None;
        out.push(copy);
        return true;
    }
    let n = payload.len().div_ceil(mss);
    for (i, chunk) in payload.chunks(mss).enumerate() {
        let last = i + 1 == n;
        let mut seg = Packet::with_capacity(hdr_len + chunk.len());
        seg.in_port = pkt.in_port;
        seg.set_frame(&frame[..hdr_len]);
        seg.extend_from_slice(chunk);
        let data = seg.data_mut();
        let l3_total = hdr_len - loc.l3 + chunk.len();
        if loc.ipv6 {
            let mut ip = ipv6::Packet::new_unchecked(&mut data[loc.l3..]);
            ip.set_payload_len((l3_total - ipv6::HEADER_LEN) as u16);
        } else {
            let mut ip = ipv4::Packet::new_unchecked(&mut data[loc.l3..]);
            ip.set_total_len(l3_total as u16);
            ip.set_ident(ip_id0.wrapping_add(i as u16));
            ip.fill_checksum();
        }
        let mut t = tcp::Packet::new_unchecked(&mut data[loc.l4..]);
        t.set_seq_number(seq0.wrapping_add((i * mss) as u32));
        let mut flags = flags0;
        if !last {
            flags &= !(tcp::FIN | tcp::PSH);
        }
        if i > 0 {
            flags &= !tcp::CWR;
        }
        t.set_flags(flags);
        seg.csum = match csum::prepare_partial(seg.data_mut()) {
            Some((start, offset)) => Csum::Partial { start, offset },
            None => Csum::None,
        };
        seg.gso = None;
        out.push(seg);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{Gso, GsoType};
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    fn superframe(v6: bool, len: usize) -> Packet {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut v = Vec::new();
        if v6 {
            b.ipv6([1; 16], [2; 16], 64)
                .tcp(1000, 2000, 0xffff_fff0, 100)
                .psh()
                .fin()
                .ack(7)
                .write(&mut v, &payload)
                .unwrap();
        } else {
            b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .tcp(1000, 2000, 0xffff_fff0, 100)
                .psh()
                .fin()
                .ack(7)
                .write(&mut v, &payload)
                .unwrap();
        }
        let mut p = Packet::from_slice(&v);
        p.gso = Some(Gso {
            kind: if v6 { GsoType::TcpV6 } else { GsoType::TcpV4 },
            mss: 1000,
        });
        p
    }

    fn check(v6: bool) {
        let p = superframe(v6, 2500);
        let mut out = Vec::new();
        assert!(segment(&p, &mut out));
        assert_eq!(out.len(), 3);
        let mut all = Vec::new();
        for (i, s) in out.iter().enumerate() {
            let mut s = s.clone();
            let Csum::Partial { start, offset } = s.csum else {
                panic!("not partial")
            };
            assert!(csum::complete_partial(s.data_mut(), start, offset));
            assert!(csum::verify_l4(s.data()));
            let sp = SlicedPacket::from_ethernet(s.data()).unwrap();
            let Some(TransportSlice::Tcp(t)) = sp.transport else {
                panic!("no tcp")
            };
            assert_eq!(
                t.sequence_number(),
                0xffff_fff0u32.wrapping_add(i as u32 * 1000)
            );
            let last = i == 2;
            assert_eq!(t.fin(), last);
            assert_eq!(t.psh(), last);
            assert!(t.ack());
            all.extend_from_slice(t.payload());
            match sp.net {
                Some(etherparse::NetSlice::Ipv4(ip)) => {
                    let h = ip.header();
                    assert_eq!(usize::from(h.total_len()), 20 + 20 + t.payload().len());
                    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
                }
                Some(etherparse::NetSlice::Ipv6(ip)) => {
                    assert_eq!(
                        usize::from(ip.header().payload_length()),
                        20 + t.payload().len()
                    );
                }
                _ => panic!("no ip"),
            }
        }
        let expect: Vec<u8> = (0..2500).map(|i| i as u8).collect();
        assert_eq!(all, expect);
    }

    #[test]
    fn segments_tcpv4() {
        check(false);
    }

    #[test]
    fn segments_tcpv6() {
        check(true);
    }

    #[test]
    fn small_frame_is_copied() {
        let p = superframe(false, 500);
        let mut out = Vec::new();
        assert!(segment(&p, &mut out));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].gso, None);
        assert_eq!(out[0].len(), p.len());
        let p = superframe(true, 0);
        assert!(segment(&p, &mut out));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn rejects_non_tcp_and_zero_mss() {
        let mut p = superframe(false, 100);
        p.gso = Some(Gso {
            kind: GsoType::TcpV4,
            mss: 0,
        });
        let mut out = Vec::new();
        assert!(!segment(&p, &mut out));
        assert!(!segment(&Packet::from_slice(&[0u8; 60]), &mut out));
        assert!(out.is_empty());
    }
}
