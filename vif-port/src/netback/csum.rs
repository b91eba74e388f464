//! Locating the L4 checksum of a frame whose checksum the guest left blank
//! (`NETTXF_csum_blank`), like Linux `skb_checksum_setup`.
//!
//! Parses Ethernet, up to two VLAN tags, IPv4 (first fragments only) or
//! IPv6 (with hop-by-hop, routing, destination-options and first-fragment
//! extension headers), then TCP or UDP. Every read is bounds-checked.

/// L4 protocol found by [`locate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// TCP over IPv4.
    TcpV4,
    /// TCP over IPv6.
    TcpV6,
    /// UDP over IPv4 or IPv6.
    Udp,
}

/// Where the checksum of `frame` lives: `(start, offset, proto)` with
/// `start` the L4 header's offset from the frame start in bytes and
/// `offset` the checksum field's offset from `start` (16 for TCP, 6 for
/// UDP). `None` if the headers are not Ethernet/IP/TCP-or-UDP or are
/// truncated.
pub fn locate(frame: &[u8]) -> Option<(u16, u16, L4)> {
    let be16 = |off: usize| -> Option<u16> {
        let b = frame.get(off..off.checked_add(2)?)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    };
    let mut ethertype = be16(12)?;
    let mut off = 14usize;
    for _ in 0..2 {
        if ethertype == 0x8100 || ethertype == 0x88a8 {
            ethertype = be16(off + 2)?;
            off += 4;
        }
    }
    let (proto, l4, v6) = match ethertype {
        0x0800 => {
            let vihl = *frame.get(off)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 || frame.len() < off + ihl {
                return None;
            }
            if be16(off + 6)? & 0x1fff != 0 {
                return None; // not the first fragment: no L4 header
            }
            (*frame.get(off + 9)?, off + ihl, false)
        }
        0x86dd => {
            if *frame.get(off)? >> 4 != 6 {
                return None;
            }
            let mut nh = *frame.get(off + 6)?;
            let mut p = off + 40;
            for _ in 0..8 {
                match nh {
                    0 | 43 | 60 => {
                        let len = (usize::from(*frame.get(p + 1)?) + 1) * 8;
                        nh = *frame.get(p)?;
                        p += len;
                    }
                    44 => {
                        if be16(p + 2)? & 0xfff8 != 0 {
                            return None;
                        }
                        nh = *frame.get(p)?;
                        p += 8;
                    }
                    _ => break,
                }
            }
            (nh, p, true)
        }
        _ => return None,
    };
    let (kind, csum_off, hdr_len) = match proto {
        6 if v6 => (L4::TcpV6, 16, 20),
        6 => (L4::TcpV4, 16, 20),
        17 => (L4::Udp, 6, 8),
        _ => return None,
    };
    if frame.len() < l4.checked_add(hdr_len)? {
        return None;
    }
    Some((u16::try_from(l4).ok()?, csum_off, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    #[test]
    fn test_tcp_v4_with_vlan() {
        let mut f = eth(0x8100);
        f.extend_from_slice(&[0, 10, 0x08, 0x00]);
        let mut ip = [0u8; 24];
        ip[0] = 0x46; // IHL 6 = 24 bytes of options-bearing header
        ip[9] = 6;
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0u8; 20]);
        assert_eq!(locate(&f), Some((18 + 24, 16, L4::TcpV4)));
    }

    #[test]
    fn test_udp_v6_with_hop_by_hop() {
        let mut f = eth(0x86dd);
        let mut ip = [0u8; 40];
        ip[0] = 0x60;
        ip[6] = 0; // hop-by-hop
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&[0u8; 8]);
        assert_eq!(locate(&f), Some((14 + 40 + 8, 6, L4::Udp)));
    }

    #[test]
    fn test_reject_truncated_and_fragments() {
        let mut f = eth(0x0800);
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[9] = 6;
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0u8; 10]);
        assert_eq!(locate(&f), None, "truncated TCP header");
        f.extend_from_slice(&[0u8; 10]);
        assert!(locate(&f).is_some());
        f[14 + 7] = 1; // fragment offset 8
        assert_eq!(locate(&f), None);
        assert_eq!(locate(&[0u8; 5]), None);
        assert_eq!(locate(&eth(0x0806)), None);
    }
}
