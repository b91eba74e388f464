//! Software GSO: cut a super-frame into segments for ports that cannot
//! take super-frames. TCP ([`GsoType::TcpV4`], [`GsoType::TcpV6`]) as Linux
//! `skb_segment` / `tcp_gso_segment` and OVS `dp_packet_gso` do; UDP
//! ([`GsoType::UdpL4`]) into whole datagrams as Linux `__udp_gso_segment`
//! does (not IP fragments).
//!
//! Every segment gets a copy of the L2/L3/L4 headers and up to `mss` payload
//! bytes. IPv4: total length, identification (incremented per segment, as
//! Linux `inet_gso_segment` does for TCP and UDP L4 segments alike) and
//! header checksum. IPv6: payload length. TCP: sequence number advanced by
//! the payload offset; FIN and PSH only on the last segment, CWR only on
//! the first. UDP: length. Each segment leaves with [`Csum::Partial`]
//! (pseudo-header sum in the field), so a port without checksum offload
//! finishes it with [`crate::csum::complete_partial`]. Segments keep the
//! super-frame's input port and metadata ([`Packet::md`]).

use crate::buffer::{Csum, GsoType, Packet};
use crate::csum::{self, L4Location};
use crate::packet::{ipv4, ipv6, tcp, udp, IpProtocol};

/// Most segments one super-frame may be cut into. The sender chooses the
/// MSS (a guest, a tap): without a bound a 64 KiB frame with an MSS of 1
/// becomes 65,535 packets, each allocated, for every output. Linux
/// senders stay far below it (TCP's minimum MSS of 88 bytes gives 745
/// segments; `UDP_MAX_SEGMENTS` is 128).
pub const MAX_SEGMENTS: usize = 1024;

/// The per-segment L4 header fix-up.
#[derive(Clone, Copy)]
enum L4 {
    /// TCP, with the super-frame's sequence number and flags.
    Tcp { seq: u32, flags: u16 },
    /// UDP: only the length changes.
    Udp,
}

/// Where `pkt`'s L4 header is, what each segment's copy of it needs, and
/// its length in bytes; `None` if the frame is not TCP (for
/// [`GsoType::TcpV4`] / [`GsoType::TcpV6`]) or UDP (for
/// [`GsoType::UdpL4`]) over IPv4/IPv6 with headers that parse.
fn headers(pkt: &Packet) -> Option<(L4Location, L4, usize)> {
    let frame = pkt.data();
    let loc = csum::locate_l4(frame)?;
    let l4_frame = &frame[loc.l4..loc.l4 + loc.l4_len];
    let kind = pkt.gso.map(|g| g.kind);
    match (loc.proto, kind) {
        (IpProtocol::Tcp, None | Some(GsoType::TcpV4 | GsoType::TcpV6)) => {
            let t = tcp::Packet::new_checked(l4_frame).ok()?;
            let l4 = L4::Tcp {
                seq: t.seq_number(),
                flags: t.flags(),
            };
            Some((loc, l4, usize::from(t.header_len())))
        }
        (IpProtocol::Udp, None | Some(GsoType::UdpL4)) => Some((loc, L4::Udp, udp::HEADER_LEN)),
        _ => None,
    }
}

/// The length in bytes of the largest frame [`segment`] cuts `pkt` into
/// (headers included, at most `mss` payload bytes): what leaves a port
/// without GSO (Linux `skb_gso_validate_mac_len` compares the same). The
/// frame's own length without GSO state; `None` where [`segment`] would
/// refuse the frame.
pub fn largest_segment_len(pkt: &Packet) -> Option<usize> {
    let Some(g) = pkt.gso else {
        return Some(pkt.len());
    };
    let (loc, _, l4_hdr_len) = headers(pkt)?;
    let hdr_len = loc.l4 + l4_hdr_len;
    let payload = (loc.l4 + loc.l4_len).checked_sub(hdr_len)?;
    (g.mss != 0).then(|| hdr_len + payload.min(usize::from(g.mss)))
}

/// Segment `pkt` into `out` (appended). A frame that needs no cutting
/// (payload ≤ MSS, or no GSO state) is appended as a copy without GSO
/// state. Returns false, appending nothing, if the frame is not a TCP
/// (for [`GsoType::TcpV4`] / [`GsoType::TcpV6`]) or UDP (for
/// [`GsoType::UdpL4`]) over IPv4/IPv6 frame whose headers parse, if the
/// MSS is 0, or if it would give more than [`MAX_SEGMENTS`] segments.
pub fn segment(pkt: &Packet, out: &mut Vec<Packet>) -> bool {
    let mut scratch = Packet::new();
    segment_each(pkt, &mut scratch, &mut |seg| out.push(seg.clone()))
}

/// [`segment`] without allocating: each segment is built in `scratch`
/// (its buffer reused, the frame at [`crate::buffer::HEADROOM`]) and
/// handed to `emit`, which may take the packet out of it (swap in another
/// buffer). Same segments, same refusals (then `emit` is never called).
pub fn segment_each(pkt: &Packet, scratch: &mut Packet, emit: &mut dyn FnMut(&mut Packet)) -> bool {
    let frame = pkt.data();
    let Some((loc, l4, l4_hdr_len)) = headers(pkt) else {
        return false;
    };
    let mss = match pkt.gso {
        Some(g) => usize::from(g.mss),
        None => usize::MAX,
    };
    if mss == 0 {
        return false;
    }
    let hdr_len = loc.l4 + l4_hdr_len;
    let payload = &frame[hdr_len..loc.l4 + loc.l4_len];
    let ip_id0 = if loc.ipv6 {
        0
    } else {
        ipv4::Packet::new_unchecked(&frame[loc.l3..]).ident()
    };
    if payload.len() <= mss {
        scratch.clone_from_packet(pkt);
        scratch.gso = None;
        emit(scratch);
        return true;
    }
    let n = payload.len().div_ceil(mss);
    if n > MAX_SEGMENTS {
        return false;
    }
    for (i, chunk) in payload.chunks(mss).enumerate() {
        let seg = &mut *scratch;
        seg.reset();
        seg.in_port = pkt.in_port;
        // Tunnel metadata too: an output to a tunnel port with
        // `key=flow` or `remote_ip=flow` encapsulates with it.
        seg.md = pkt.md;
        seg.set_frame(&frame[..hdr_len]);
        seg.extend_from_slice(chunk);
        let data = seg.data_mut();
        set_ip_header(
            data,
            &loc,
            hdr_len - loc.l3 + chunk.len(),
            ip_id0.wrapping_add(i as u16),
        );
        match l4 {
            L4::Tcp { seq, flags } => {
                let mut t = tcp::Packet::new_unchecked(&mut data[loc.l4..]);
                t.set_seq_number(seq.wrapping_add((i * mss) as u32));
                let mut flags = flags;
                if i + 1 != n {
                    flags &= !(tcp::FIN | tcp::PSH);
                }
                if i > 0 {
                    flags &= !tcp::CWR;
                }
                t.set_flags(flags);
            }
            L4::Udp => {
                let mut u = udp::Packet::new_unchecked(&mut data[loc.l4..]);
                u.set_len((l4_hdr_len + chunk.len()) as u16);
            }
        }
        seg.csum = match csum::prepare_partial(seg.data_mut()) {
            Some((start, offset)) => Csum::Partial { start, offset },
            None => Csum::None,
        };
        seg.gso = None;
        emit(seg);
    }
    true
}

/// Fix a segment's IP header: `l3_len` bytes from the IP header on (IPv4
/// total length, IPv6 payload length plus the 40-byte header), and for
/// IPv4 the identification `ident` and the header checksum. `l3_len` is at
/// most the super-frame's IP length, so it fits 16 bits.
fn set_ip_header(data: &mut [u8], loc: &L4Location, l3_len: usize, ident: u16) {
    if loc.ipv6 {
        let mut ip = ipv6::Packet::new_unchecked(&mut data[loc.l3..]);
        ip.set_payload_len((l3_len - ipv6::HEADER_LEN) as u16);
    } else {
        let mut ip = ipv4::Packet::new_unchecked(&mut data[loc.l3..]);
        ip.set_total_len(l3_len as u16);
        ip.set_ident(ident);
        ip.fill_checksum();
    }
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

    /// A segment with its partial checksum completed and verified.
    fn completed(s: &Packet) -> Packet {
        let mut s = s.clone();
        let Csum::Partial { start, offset } = s.csum else {
            panic!("not partial")
        };
        assert!(csum::complete_partial(s.data_mut(), start, offset));
        assert!(csum::verify_l4(s.data()));
        s
    }

    fn check(v6: bool) {
        let p = superframe(v6, 2500);
        let mut out = Vec::new();
        assert!(segment(&p, &mut out));
        assert_eq!(out.len(), 3);
        let mut all = Vec::new();
        for (i, s) in out.iter().enumerate() {
            let s = completed(s);
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

    /// A UDP GSO super-frame of `len` payload bytes at segment size
    /// `mss`, checksum partial as Linux hands it over (`UDP_SEGMENT`);
    /// IPv4 with identification 0xfffe, so that it wraps.
    fn udp_superframe(v6: bool, len: usize, mss: u16) -> Packet {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut v = Vec::new();
        if v6 {
            b.ipv6([1; 16], [2; 16], 64)
                .udp(4433, 5555)
                .write(&mut v, &payload)
                .unwrap();
        } else {
            b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .udp(4433, 5555)
                .write(&mut v, &payload)
                .unwrap();
            let mut ip = ipv4::Packet::new_unchecked(&mut v[14..]);
            ip.set_ident(0xfffe);
            ip.fill_checksum();
        }
        let mut p = Packet::from_slice(&v);
        let (start, offset) = csum::prepare_partial(p.data_mut()).unwrap();
        p.csum = Csum::Partial { start, offset };
        p.gso = Some(Gso {
            kind: GsoType::UdpL4,
            mss,
        });
        p
    }

    /// Cut a 3,500-byte UDP GSO frame at 1,400: datagrams of 1400, 1400
    /// and 700 bytes whose payloads put together are the original, each
    /// with its own UDP length and a checksum that etherparse computes
    /// alike, IPv4 lengths, identifications and header checksums, IPv6
    /// payload lengths.
    fn check_udp(v6: bool) {
        let p = udp_superframe(v6, 3500, 1400);
        let mut out = Vec::new();
        assert!(segment(&p, &mut out));
        assert_eq!(out.len(), 3);
        let mut all = Vec::new();
        for (i, s) in out.iter().enumerate() {
            assert_eq!(s.gso, None);
            let s = completed(s);
            let sp = SlicedPacket::from_ethernet(s.data()).unwrap();
            let Some(TransportSlice::Udp(u)) = sp.transport else {
                panic!("no udp")
            };
            let want = if i == 2 { 700 } else { 1400 };
            assert_eq!(u.payload().len(), want);
            assert_eq!(usize::from(u.length()), 8 + want);
            assert_eq!((u.source_port(), u.destination_port()), (4433, 5555));
            let h = u.to_header();
            let expect = match sp.net {
                Some(etherparse::NetSlice::Ipv4(ip)) => {
                    let ih = ip.header();
                    assert_eq!(usize::from(ih.total_len()), 20 + 8 + want);
                    assert_eq!(ih.identification(), 0xfffeu16.wrapping_add(i as u16));
                    assert_eq!(ih.to_header().calc_header_checksum(), ih.header_checksum());
                    h.calc_checksum_ipv4(&ih.to_header(), u.payload()).unwrap()
                }
                Some(etherparse::NetSlice::Ipv6(ip)) => {
                    let ih = ip.header();
                    assert_eq!(usize::from(ih.payload_length()), 8 + want);
                    h.calc_checksum_ipv6(&ih.to_header(), u.payload()).unwrap()
                }
                _ => panic!("no ip"),
            };
            assert_eq!(u.checksum(), expect);
            assert_eq!(s.len(), p.len() - 3500 + want);
            all.extend_from_slice(u.payload());
        }
        let expect: Vec<u8> = (0..3500).map(|i| (i % 251) as u8).collect();
        assert_eq!(all, expect);
    }

    #[test]
    fn segments_udpv4() {
        check_udp(false);
    }

    #[test]
    fn segments_udpv6() {
        check_udp(true);
    }

    /// A payload that is an exact multiple of the segment size has no
    /// short last segment; one of at most the segment size is copied as
    /// it is (a single datagram, no GSO state left).
    #[test]
    fn udp_exact_multiple_and_small() {
        let mut out = Vec::new();
        assert!(segment(&udp_superframe(true, 2800, 1400), &mut out));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|s| s.len() == 14 + 40 + 8 + 1400));
        for len in [1400, 100] {
            let p = udp_superframe(false, len, 1400);
            out.clear();
            assert!(segment(&p, &mut out));
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].gso, None);
            assert_eq!(out[0].data(), p.data());
            assert_eq!(out[0].csum, p.csum);
        }
    }

    /// A UDP GSO frame with segment size 0, a UDP GSO type on a TCP frame
    /// and a TCP type on a UDP frame are refused.
    #[test]
    fn udp_rejects_zero_mss_and_mismatched_types() {
        let mut out = Vec::new();
        assert!(!segment(&udp_superframe(false, 3000, 0), &mut out));
        let mut p = udp_superframe(true, 3000, 1000);
        p.gso = Some(Gso {
            kind: GsoType::TcpV6,
            mss: 1000,
        });
        assert!(!segment(&p, &mut out));
        let mut p = superframe(false, 3000);
        p.gso = Some(Gso {
            kind: GsoType::UdpL4,
            mss: 1000,
        });
        assert!(!segment(&p, &mut out));
        assert!(out.is_empty());
    }

    proptest::proptest! {
        /// Mutated and cut UDP GSO frames at any segment size: no panic,
        /// and what comes out are datagrams no larger than the input.
        #[test]
        fn udp_never_panics(v6 in proptest::bool::ANY,
                            muts in proptest::collection::vec((0usize..200, proptest::num::u8::ANY), 0..6),
                            cut in proptest::num::usize::ANY,
                            mss in 0u16..2000) {
            let mut p = udp_superframe(v6, 3000, mss);
            let mut f = p.data().to_vec();
            for (at, val) in muts {
                let n = f.len();
                f[at % n] = val;
            }
            if cut % 3 == 0 {
                f.truncate(cut % (f.len() + 1));
            }
            p.set_frame(&f);
            let mut out = Vec::new();
            if segment(&p, &mut out) {
                proptest::prop_assert!(out.iter().all(|s| s.gso.is_none() && s.len() <= f.len()));
            } else {
                proptest::prop_assert!(out.is_empty());
            }
        }
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

    /// A sender's tiny MSS cannot make one frame into tens of thousands
    /// of packets: beyond MAX_SEGMENTS the frame is refused.
    #[test]
    fn segment_count_is_bounded() {
        let mut out = Vec::new();
        let mut p = superframe(false, MAX_SEGMENTS);
        p.gso = p.gso.map(|g| Gso { mss: 1, ..g });
        assert!(segment(&p, &mut out));
        assert_eq!(out.len(), MAX_SEGMENTS);
        out.clear();
        let mut p = superframe(false, MAX_SEGMENTS + 1);
        p.gso = p.gso.map(|g| Gso { mss: 1, ..g });
        assert!(!segment(&p, &mut out));
        let mut p = udp_superframe(true, 60_000, 1);
        assert!(!segment(&p, &mut out));
        p.gso = p.gso.map(|g| Gso { mss: 100, ..g });
        assert!(segment(&p, &mut out));
        assert_eq!(out.len(), 600);
    }
}
