//! Internet checksum (RFC 1071) helpers and L4 checksum offload.
//!
//! Guests hand us TCP/UDP frames whose checksum is left blank
//! (netif `NETTXF_csum_blank`, virtio `VIRTIO_NET_HDR_F_NEEDS_CSUM`): the
//! field holds the pseudo-header sum and the sender expects whoever delivers
//! the frame to finish it, as Linux `CHECKSUM_PARTIAL` (`skb_checksum_help`).
//! [`partial_offsets`] finds where that checksum starts, [`complete_partial`]
//! finishes it, and [`fill_l4`] computes one from scratch.

use crate::packet::{ethernet, ipv4, ipv6, tcp, udp, EtherType, IpProtocol};

/// Add `data` to a running one's-complement sum (not yet folded). An odd
/// trailing byte is padded with zero, as RFC 1071 says.
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = u64::from(initial);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    fold64(acc)
}

/// Fold a 64-bit accumulator to a 32-bit one whose fold equals it.
fn fold64(mut acc: u64) -> u32 {
    while acc >> 32 != 0 {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    // Now < 2^32; keep as u32 (still to be folded to 16 bits).
    acc as u32
}

/// Fold a 32-bit sum to 16 bits (end-around carry), not complemented.
pub fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The Internet checksum of `data`: the complement of the folded sum.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Pseudo-header sum for IPv4 (RFC 793 §3.1): addresses, protocol and the
/// L4 length in bytes.
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u32) -> u32 {
    let s = sum(&src, 0);
    let s = sum(&dst, s);
    fold64(u64::from(s) + u64::from(proto) + u64::from(l4_len))
}

/// Pseudo-header sum for IPv6 (RFC 8200 §8.1).
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], proto: u8, l4_len: u32) -> u32 {
    let s = sum(&src, 0);
    let s = sum(&dst, s);
    fold64(u64::from(s) + u64::from(proto) + u64::from(l4_len))
}

/// Where a TCP or UDP header sits in an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4Location {
    /// Offset of the IP header from the frame start.
    pub l3: usize,
    /// Offset of the TCP/UDP header from the frame start.
    pub l4: usize,
    /// L4 length in bytes according to the IP header.
    pub l4_len: usize,
    /// [`IpProtocol::Tcp`] or [`IpProtocol::Udp`].
    pub proto: IpProtocol,
    /// Whether the IP header is IPv6.
    pub ipv6: bool,
    /// Pseudo-header sum (including `l4_len`), unfolded.
    pub pseudo: u32,
}

impl L4Location {
    /// Offset of the checksum field from the L4 header.
    pub fn csum_offset(&self) -> u16 {
        if self.proto == IpProtocol::Tcp {
            tcp::CHECKSUM_OFFSET
        } else {
            udp::CHECKSUM_OFFSET
        }
    }
}

/// Find the TCP or UDP header of an Ethernet (up to two VLAN tags) IPv4 or
/// IPv6 frame that is not a fragment. Returns `None` for anything else or
/// for a header that does not fit.
pub fn locate_l4(frame: &[u8]) -> Option<L4Location> {
    let (ty, l3) = ethernet::l3_offset(frame)?;
    let ip = frame.get(l3..)?;
    let (proto, l4, l4_len, ipv6, pseudo) = match ty {
        EtherType::Ipv4 => {
            let p = ipv4::Packet::new_checked(ip).ok()?;
            if p.more_frags() || p.frag_offset() != 0 {
                return None;
            }
            let hl = usize::from(p.header_len());
            let l4_len = usize::from(p.total_len()) - hl;
            let proto = p.protocol();
            let pseudo = pseudo_v4(
                p.src_addr().octets(),
                p.dst_addr().octets(),
                proto.into(),
                l4_len as u32,
            );
            (proto, l3 + hl, l4_len, false, pseudo)
        }
        EtherType::Ipv6 => {
            let p = ipv6::Packet::new_checked(ip).ok()?;
            let up = ipv6::upper_checked(p.next_header(), p.payload()).ok()?;
            if up.fragment {
                return None;
            }
            let l4_len = usize::from(p.payload_len()) - up.ext_len;
            let pseudo = pseudo_v6(
                p.src_addr().octets(),
                p.dst_addr().octets(),
                up.proto.into(),
                l4_len as u32,
            );
            (
                up.proto,
                l3 + ipv6::HEADER_LEN + up.ext_len,
                l4_len,
                true,
                pseudo,
            )
        }
        _ => return None,
    };
    let hdr = match proto {
        IpProtocol::Tcp => tcp::HEADER_LEN,
        IpProtocol::Udp => udp::HEADER_LEN,
        _ => return None,
    };
    if l4_len < hdr || l4 + l4_len > frame.len() {
        return None;
    }
    Some(L4Location {
        l3,
        l4,
        l4_len,
        proto,
        ipv6,
        pseudo,
    })
}

/// The `(start, offset)` of a frame's TCP/UDP checksum, as
/// [`crate::Csum::Partial`] wants them: `start` is the L4 header's offset
/// from the frame start, `offset` the checksum field's offset from `start`.
pub fn partial_offsets(frame: &[u8]) -> Option<(u16, u16)> {
    let loc = locate_l4(frame)?;
    Some((u16::try_from(loc.l4).ok()?, loc.csum_offset()))
}

/// Finish a `CHECKSUM_PARTIAL` checksum: the 16-bit field at
/// `start + offset` holds the pseudo-header sum; sum everything from
/// `start` to the end of the frame (field included) and store the
/// complement. A result of 0 is stored as 0xffff (Linux `CSUM_MANGLED_0`;
/// equivalent in one's complement, and required for UDP). Returns false,
/// leaving the frame alone, if the field does not fit.
pub fn complete_partial(frame: &mut [u8], start: u16, offset: u16) -> bool {
    let start = usize::from(start);
    let at = start + usize::from(offset);
    if at + 2 > frame.len() {
        return false;
    }
    let mut c = !fold(sum(&frame[start..], 0));
    if c == 0 {
        c = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Store the pseudo-header sum in the checksum field, turning a frame into
/// the `CHECKSUM_PARTIAL` form. Returns the `(start, offset)` pair, or
/// `None` if the frame has no TCP/UDP header.
pub fn prepare_partial(frame: &mut [u8]) -> Option<(u16, u16)> {
    let loc = locate_l4(frame)?;
    let at = loc.l4 + usize::from(loc.csum_offset());
    frame[at..at + 2].copy_from_slice(&fold(loc.pseudo).to_be_bytes());
    Some((u16::try_from(loc.l4).ok()?, loc.csum_offset()))
}

/// Compute a frame's TCP or UDP checksum from scratch, pseudo-header
/// included, over the L4 length the IP header gives. Returns false if the
/// frame has no TCP/UDP header over IPv4/IPv6.
pub fn fill_l4(frame: &mut [u8]) -> bool {
    let Some(loc) = locate_l4(frame) else {
        return false;
    };
    let at = loc.l4 + usize::from(loc.csum_offset());
    frame[at..at + 2].copy_from_slice(&[0, 0]);
    let mut c = !fold(sum(&frame[loc.l4..loc.l4 + loc.l4_len], loc.pseudo));
    if c == 0 && loc.proto == IpProtocol::Udp {
        c = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Whether a frame's TCP/UDP checksum verifies (for tests and diagnostics).
/// A zero IPv4 UDP checksum ("none") counts as valid.
pub fn verify_l4(frame: &[u8]) -> bool {
    let Some(loc) = locate_l4(frame) else {
        return false;
    };
    if loc.proto == IpProtocol::Udp && !loc.ipv6 {
        let at = loc.l4 + 6;
        if frame[at] == 0 && frame[at + 1] == 0 {
            return true;
        }
    }
    fold(sum(&frame[loc.l4..loc.l4 + loc.l4_len], loc.pseudo)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp4(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1234, 80, 1000, 65535)
            .ack(5)
            .psh();
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    fn udp6_vlan(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .single_vlan(etherparse::VlanId::try_new(10).unwrap())
            .ipv6([0xfe; 16], [0xfd; 16], 64)
            .udp(53, 5353);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example: sum of 0001 f203 f4f5 f6f7 = ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(
            fold(sum(&data[..7], 0)),
            fold(sum(&[0, 1, 0xf2, 3, 0xf4, 0xf5, 0xf6, 0], 0))
        );
    }

    #[test]
    fn offsets() {
        let f = tcp4(b"hello");
        assert_eq!(partial_offsets(&f), Some((34, 16)));
        let f = udp6_vlan(b"hi");
        assert_eq!(partial_offsets(&f), Some((14 + 4 + 40, 6)));
        assert_eq!(partial_offsets(&f[..60]), None);
    }

    #[test]
    fn fill_matches_etherparse() {
        for f in [tcp4(b"hello world"), udp6_vlan(b"odd"), tcp4(b"")] {
            let mut g = f.clone();
            let (s, o) = partial_offsets(&g).unwrap();
            let at = usize::from(s + o);
            g[at] ^= 0x55;
            assert!(!verify_l4(&g));
            assert!(fill_l4(&mut g));
            assert_eq!(g, f);
            assert!(verify_l4(&g));
        }
    }

    #[test]
    fn complete_partial_matches_etherparse() {
        for f in [tcp4(b"hello world!"), udp6_vlan(b"abcde")] {
            let mut g = f.clone();
            let (s, o) = prepare_partial(&mut g).unwrap();
            assert_ne!(g, f);
            assert!(complete_partial(&mut g, s, o));
            assert_eq!(g, f);
        }
    }

    #[test]
    fn complete_partial_rejects_out_of_range() {
        let mut f = tcp4(b"x");
        let n = f.len() as u16;
        assert!(!complete_partial(&mut f, n - 1, 0));
        assert!(!complete_partial(&mut f, n, 16));
        assert!(complete_partial(&mut f, n - 2, 0));
    }

    #[test]
    fn fragments_and_others_have_no_l4() {
        let mut f = tcp4(b"hello");
        f[14 + 6] = 0x20; // MF
        assert_eq!(locate_l4(&f), None);
        let b = PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv4([1; 4], [2; 4], 1)
            .icmpv4_echo_request(1, 1);
        let mut v = Vec::new();
        b.write(&mut v, b"ping").unwrap();
        assert_eq!(locate_l4(&v), None);
    }
}
