//! IPv6 headers (RFC 8200) and the walk over extension headers.

use std::net::Ipv6Addr;

use super::{be16, put16, Error, IpProtocol, Result};

mod field {
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// A view of an IPv6 packet. The buffer may extend past the payload
/// length (Ethernet padding); [`Packet::payload`] stops there.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer, checking it (see [`Packet::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ensure version 6 and `40 + payload_len <= buffer length`. (Jumbograms,
    /// payload length 0 with a hop-by-hop jumbo option, are rejected.)
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN || self.version() != 6 {
            return Err(Error);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > b.len() {
            return Err(Error);
        }
        Ok(())
    }

    /// Consume the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// IP version (6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class (DSCP:6, ECN:2).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]])
    }

    /// Payload length in bytes (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// Next header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC..field::SRC + 16]);
        Ipv6Addr::from(a)
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST..field::DST + 16]);
        Ipv6Addr::from(a)
    }

    /// The payload (extension headers included), up to the payload length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set version 6, traffic class and flow label.
    pub fn set_version_tc_flow(&mut self, tc: u8, flow: u32) {
        let v = (6u32 << 28) | (u32::from(tc) << 20) | (flow & 0xfffff);
        self.buffer.as_mut()[..4].copy_from_slice(&v.to_be_bytes());
    }

    /// Set the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), field::PAYLOAD_LEN, len);
    }

    /// Set the next header.
    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::NEXT_HEADER] = p.into();
    }

    /// Set the hop limit.
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h;
    }

    /// Set the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&a.octets());
    }

    /// Set the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&a.octets());
    }
}

/// What lies past the IPv6 extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upper {
    /// The upper-layer protocol (or the header where the walk stopped).
    pub proto: IpProtocol,
    /// Bytes of extension headers skipped (offset of the upper layer from
    /// the start of the IPv6 payload).
    pub ext_len: usize,
    /// A fragment header was present.
    pub fragment: bool,
    /// The fragment header had a nonzero offset (not the first fragment).
    pub later_fragment: bool,
}

/// Walk the extension headers at the start of an IPv6 `payload` (hop-by-hop,
/// routing, destination options, fragment, AH), at most 8 of them, and
/// return the upper-layer protocol. A truncated extension header stops the
/// walk and reports that header's protocol as `proto`. ESP and unknown
/// headers end the walk.
pub fn skip_extensions(first: IpProtocol, payload: &[u8]) -> Upper {
    let mut up = Upper {
        proto: first,
        ext_len: 0,
        fragment: false,
        later_fragment: false,
    };
    for _ in 0..8 {
        let rest = &payload[up.ext_len.min(payload.len())..];
        let len = match up.proto {
            IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                if rest.len() < 8 {
                    return up;
                }
                (usize::from(rest[1]) + 1) * 8
            }
            IpProtocol::Ah => {
                if rest.len() < 8 {
                    return up;
                }
                (usize::from(rest[1]) + 2) * 4
            }
            IpProtocol::Ipv6Frag => {
                if rest.len() < 8 {
                    return up;
                }
                up.fragment = true;
                if be16(rest, 2) & 0xfff8 != 0 {
                    up.later_fragment = true;
                    // Later fragments carry no upper-layer header.
                    up.proto = IpProtocol::from(rest[0]);
                    up.ext_len += 8;
                    return up;
                }
                8
            }
            _ => return up,
        };
        if len > rest.len() {
            return up;
        }
        up.proto = IpProtocol::from(rest[0]);
        up.ext_len += len;
    }
    up
}

/// Error for callers that need the upper layer to be reachable.
pub fn upper_checked(first: IpProtocol, payload: &[u8]) -> Result<Upper> {
    let up = skip_extensions(first, payload);
    if up.ext_len > payload.len() {
        return Err(Error);
    }
    Ok(up)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt() -> Vec<u8> {
        let mut b = vec![0u8; 40];
        b[0] = 0x60;
        b[1] = 0x20; // tc 2
        b[6] = 0; // hop-by-hop
        b[7] = 64;
        b[8] = 0xfe;
        b[9] = 0x80;
        b[23] = 1;
        b[24] = 0xfe;
        b[25] = 0x80;
        b[39] = 2;
        // hop-by-hop (8 bytes) → fragment (first) → UDP
        b.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]);
        b.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 7]);
        b.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        let pl = (b.len() - 40) as u16;
        b[4..6].copy_from_slice(&pl.to_be_bytes());
        b
    }

    #[test]
    fn test_deconstruct() {
        let b = pkt();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.traffic_class(), 2);
        assert_eq!(p.next_header(), IpProtocol::HopByHop);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "fe80::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "fe80::2".parse::<Ipv6Addr>().unwrap());
        let up = skip_extensions(p.next_header(), p.payload());
        assert_eq!(up.proto, IpProtocol::Udp);
        assert_eq!(up.ext_len, 16);
        assert!(up.fragment && !up.later_fragment);
    }

    #[test]
    fn test_construct() {
        let mut b = [0u8; 40];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version_tc_flow(2, 0x12345);
        p.set_payload_len(0);
        p.set_next_header(IpProtocol::Tcp);
        p.set_hop_limit(1);
        p.set_src_addr(Ipv6Addr::LOCALHOST);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.traffic_class(), 2);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.next_header(), IpProtocol::Tcp);
        assert_eq!(p.src_addr(), Ipv6Addr::LOCALHOST);
    }

    #[test]
    fn test_rejects_and_truncated_ext() {
        let b = pkt();
        assert!(Packet::new_checked(&b[..39]).is_err());
        assert!(Packet::new_checked(&b[..b.len() - 1]).is_err());
        let up = skip_extensions(IpProtocol::HopByHop, &b[40..45]);
        assert_eq!(up.proto, IpProtocol::HopByHop);
        assert_eq!(up.ext_len, 0);
    }
}
