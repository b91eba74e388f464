//! Connection keys and packet parsing for the tracker (OVS
//! `conn_key_extract`, `extract_l3_ipv4/6`, `extract_l4_*` in
//! lib/conntrack.c).
//!
//! A [`ConnKey`] is (zone, address family, protocol, source and
//! destination address and port); for ICMP echo (and timestamp and
//! information) messages the "ports" are the identifier in both
//! positions and the message types are part of the key, request type on
//! the source side and reply type on the destination side, so that the
//! reversed key of a request is the key of its reply. Other protocols
//! have zero ports.
//!
//! [`parse`] checks what OVS checks before tracking: the IPv4 header
//! checksum, the L4 checksum (unless the packet's [`Csum`] state says it
//! is offloaded or was validated), lengths, and for ICMP errors the
//! quoted packet (its source must be the error's destination, as OVS and
//! pf require, and it must itself not be an error).

use crate::buffer::Csum;
use crate::csum::{fold, pseudo_v4, pseudo_v6, sum};
use crate::packet::{be16, be32, ethernet, ipv6, EtherType, IpProtocol};

pub(crate) const PROTO_ICMP: u8 = 1;
pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
pub(crate) const PROTO_ICMPV6: u8 = 58;

/// The tuple of one direction of a connection, plus its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnKey {
    /// Source address (IPv4 in the low 32 bits).
    pub src: u128,
    /// Destination address.
    pub dst: u128,
    /// Source port (ICMP: identifier).
    pub sport: u16,
    /// Destination port (ICMP: identifier).
    pub dport: u16,
    /// Zone.
    pub zone: u16,
    /// IP protocol.
    pub proto: u8,
    /// IPv6 (else IPv4).
    pub ipv6: bool,
    /// ICMP: this direction's message type (else 0).
    pub stype: u8,
    /// ICMP: the other direction's message type (else 0).
    pub dtype: u8,
}

impl ConnKey {
    /// The key of the other direction.
    #[inline]
    pub fn reverse(&self) -> ConnKey {
        ConnKey {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            stype: self.dtype,
            dtype: self.stype,
            ..*self
        }
    }

    /// Whether the protocol is ICMP or ICMPv6.
    pub fn is_icmp(&self) -> bool {
        self.proto == PROTO_ICMP || self.proto == PROTO_ICMPV6
    }
}

/// The TCP fields the state machine reads.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TcpSeg {
    pub flags: u16,
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    /// Payload bytes.
    pub len: u32,
    /// Window scale option (`CT_WSCALE_FLAG | shift`) or 0.
    pub wscale: u8,
}

/// A parsed packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parsed {
    /// Key of the packet's direction (zone filled in by the caller); for
    /// an ICMP error, the reversed key of the quoted packet.
    pub key: ConnKey,
    /// Offset of the IP header in the frame.
    pub l3: usize,
    /// Offset of the L4 header.
    pub l4: usize,
    /// End of the IP datagram in the frame.
    pub end: usize,
    /// An ICMP error quoting `key`'s connection.
    pub related: bool,
    /// For `related`: offsets of the quoted IP and L4 headers.
    pub inner_l3: usize,
    pub inner_l4: usize,
    /// ICMP type of a non-error ICMP message.
    pub icmp_type: u8,
    pub tcp: TcpSeg,
}

/// Why a packet could not be tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Not IPv4 or IPv6.
    NotIp,
    /// Truncated or malformed headers, bad checksum, unsupported ICMP.
    Malformed,
    /// An IP fragment (to be reassembled first).
    Fragment,
}

/// Address bytes of the key form.
pub(crate) fn addr_from(b: &[u8]) -> u128 {
    if b.len() == 4 {
        u128::from(be32(b, 0))
    } else {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[..16]);
        u128::from_be_bytes(a)
    }
}

const ICMP4_ECHO_REPLY: u8 = 0;
const ICMP4_ECHO_REQUEST: u8 = 8;
const ICMP4_TIMESTAMP: u8 = 13;
const ICMP4_TIMESTAMPREPLY: u8 = 14;
const ICMP4_INFOREQUEST: u8 = 15;
const ICMP4_INFOREPLY: u8 = 16;
pub(crate) const ICMP6_ECHO_REQUEST: u8 = 128;
const ICMP6_ECHO_REPLY: u8 = 129;

fn reverse_icmp4(t: u8) -> Option<u8> {
    Some(match t {
        ICMP4_ECHO_REQUEST => ICMP4_ECHO_REPLY,
        ICMP4_ECHO_REPLY => ICMP4_ECHO_REQUEST,
        ICMP4_TIMESTAMP => ICMP4_TIMESTAMPREPLY,
        ICMP4_TIMESTAMPREPLY => ICMP4_TIMESTAMP,
        ICMP4_INFOREQUEST => ICMP4_INFOREPLY,
        ICMP4_INFOREPLY => ICMP4_INFOREQUEST,
        _ => return None,
    })
}

/// Whether an ICMP message of this type may start a connection (OVS
/// `icmp4_valid_new`, `icmp6_valid_new`).
pub(crate) fn icmp_valid_new(ipv6: bool, t: u8) -> bool {
    if ipv6 {
        t == ICMP6_ECHO_REQUEST
    } else {
        matches!(t, ICMP4_ECHO_REQUEST | ICMP4_TIMESTAMP | ICMP4_INFOREQUEST)
    }
}

/// L3 of an IP packet at `l3`: (key with addresses and protocol, L4
/// offset, datagram end). `outer`: checksum-verify and report fragments
/// as [`ParseError::Fragment`]; a quoted packet is not verified and must
/// not be a fragment.
fn parse_l3(
    d: &[u8],
    l3: usize,
    v6: bool,
    outer: bool,
) -> Result<(ConnKey, usize, usize), ParseError> {
    use ParseError::*;
    let ip = d.get(l3..).ok_or(Malformed)?;
    if !v6 {
        if ip.len() < 20 || ip[0] >> 4 != 4 {
            return Err(Malformed);
        }
        let ihl = usize::from(ip[0] & 0xf) * 4;
        let total = usize::from(be16(ip, 2));
        if ihl < 20 || ip.len() < ihl {
            return Err(Malformed);
        }
        // A quoted header may be truncated after its L4 ports.
        let end = if outer {
            if total < ihl || total > ip.len() {
                return Err(Malformed);
            }
            l3 + total
        } else {
            d.len()
        };
        if outer && fold(sum(&ip[..ihl], 0)) != 0xffff {
            return Err(Malformed);
        }
        let frag = be16(ip, 6);
        if frag & 0x3fff != 0 {
            return Err(if outer { Fragment } else { Malformed });
        }
        let key = ConnKey {
            src: u128::from(be32(ip, 12)),
            dst: u128::from(be32(ip, 16)),
            proto: ip[9],
            ..ConnKey::default()
        };
        Ok((key, l3 + ihl, end))
    } else {
        if ip.len() < ipv6::HEADER_LEN || ip[0] >> 4 != 6 {
            return Err(Malformed);
        }
        let plen = usize::from(be16(ip, 4));
        let end = if outer {
            if ipv6::HEADER_LEN + plen > ip.len() {
                return Err(Malformed);
            }
            l3 + ipv6::HEADER_LEN + plen
        } else {
            d.len()
        };
        let payload = &d[l3 + ipv6::HEADER_LEN..end];
        let up = ipv6::upper_checked(IpProtocol::from(ip[6]), payload).map_err(|_| Malformed)?;
        if up.fragment {
            return Err(if outer { Fragment } else { Malformed });
        }
        let key = ConnKey {
            src: addr_from(&ip[8..24]),
            dst: addr_from(&ip[24..40]),
            proto: u8::from(up.proto),
            ipv6: true,
            ..ConnKey::default()
        };
        Ok((key, l3 + ipv6::HEADER_LEN + up.ext_len, end))
    }
}

/// Pseudo-header sum of the key's addresses for an L4 length.
fn pseudo(d: &[u8], l3: usize, v6: bool, proto: u8, len: usize) -> u32 {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    if v6 {
        let mut s = [0u8; 16];
        let mut t = [0u8; 16];
        s.copy_from_slice(&d[l3 + 8..l3 + 24]);
        t.copy_from_slice(&d[l3 + 24..l3 + 40]);
        pseudo_v6(s, t, proto, len)
    } else {
        let mut s = [0u8; 4];
        let mut t = [0u8; 4];
        s.copy_from_slice(&d[l3 + 12..l3 + 16]);
        t.copy_from_slice(&d[l3 + 16..l3 + 20]);
        pseudo_v4(s, t, proto, len)
    }
}

/// TCP window-scale option of a SYN (OVS `tcp_get_wscale`): the shift
/// (at most 14) with flag 0x80, or 0 without the option.
fn tcp_wscale(opts: &[u8]) -> u8 {
    let mut i = 0;
    let mut ws = 0;
    while opts.len().saturating_sub(i) >= 3 {
        match opts[i] {
            0 => return ws,
            1 => i += 1,
            k => {
                if k == 3 {
                    ws = opts[i + 2].min(14) | 0x80;
                }
                i += usize::from(opts[i + 1]).max(2);
            }
        }
    }
    ws
}

/// Parse a frame for tracking. `csum` is the packet's checksum state
/// (L4 checksums are verified only for [`Csum::None`]).
pub(crate) fn parse(d: &[u8], csum: Csum) -> Result<Parsed, ParseError> {
    use ParseError::*;
    let (ty, l3) = ethernet::l3_offset(d).ok_or(NotIp)?;
    let v6 = match ty {
        EtherType::Ipv4 => false,
        EtherType::Ipv6 => true,
        _ => return Err(NotIp),
    };
    let (mut key, l4, end) = parse_l3(d, l3, v6, true)?;
    let mut p = Parsed {
        key,
        l3,
        l4,
        end,
        related: false,
        inner_l3: 0,
        inner_l4: 0,
        icmp_type: 0,
        tcp: TcpSeg::default(),
    };
    let seg = &d[l4..end];
    let verify = csum == Csum::None;
    match key.proto {
        PROTO_TCP => {
            if seg.len() < 20 {
                return Err(Malformed);
            }
            let hl = usize::from(seg[12] >> 4) * 4;
            if hl < 20 || hl > seg.len() {
                return Err(Malformed);
            }
            if verify && fold(sum(seg, pseudo(d, l3, v6, PROTO_TCP, seg.len()))) != 0xffff {
                return Err(Malformed);
            }
            key.sport = be16(seg, 0);
            key.dport = be16(seg, 2);
            let flags = be16(seg, 12) & 0x0fff;
            p.tcp = TcpSeg {
                flags,
                seq: be32(seg, 4),
                ack: be32(seg, 8),
                win: be16(seg, 14),
                len: u32::try_from(seg.len() - hl).unwrap_or(0),
                wscale: if flags & crate::packet::tcp::SYN != 0 {
                    tcp_wscale(&seg[20..hl])
                } else {
                    0
                },
            };
        }
        PROTO_UDP => {
            if seg.len() < 8 {
                return Err(Malformed);
            }
            let ulen = usize::from(be16(seg, 4));
            if ulen < 8 || ulen > seg.len() {
                return Err(Malformed);
            }
            let c = be16(seg, 6);
            // A zero IPv4 UDP checksum means "none" (RFC 768).
            let has_csum = c != 0 || v6;
            if verify
                && has_csum
                && fold(sum(&seg[..ulen], pseudo(d, l3, v6, PROTO_UDP, ulen))) != 0xffff
            {
                return Err(Malformed);
            }
            key.sport = be16(seg, 0);
            key.dport = be16(seg, 2);
        }
        PROTO_ICMP if !v6 => {
            if seg.len() < 8 || fold(sum(seg, 0)) != 0xffff {
                return Err(Malformed);
            }
            icmp_l4(d, &mut p, &mut key, false)?;
        }
        PROTO_ICMPV6 if v6 => {
            if seg.len() < 8 || fold(sum(seg, pseudo(d, l3, v6, PROTO_ICMPV6, seg.len()))) != 0xffff
            {
                return Err(Malformed);
            }
            icmp_l4(d, &mut p, &mut key, true)?;
        }
        _ => {}
    }
    p.key = key;
    Ok(p)
}

/// ICMP/ICMPv6: echo-like messages get id/type keys; errors take the
/// reversed key of the packet they quote (OVS `extract_l4_icmp`,
/// `extract_l4_icmp6`).
fn icmp_l4(d: &[u8], p: &mut Parsed, key: &mut ConnKey, v6: bool) -> Result<(), ParseError> {
    use ParseError::*;
    let seg = &d[p.l4..p.end];
    let (t, code) = (seg[0], seg[1]);
    let echo = if v6 {
        match t {
            ICMP6_ECHO_REQUEST => Some(ICMP6_ECHO_REPLY),
            ICMP6_ECHO_REPLY => Some(ICMP6_ECHO_REQUEST),
            _ => None,
        }
    } else {
        reverse_icmp4(t)
    };
    if let Some(rt) = echo {
        if code != 0 {
            return Err(Malformed);
        }
        key.sport = be16(seg, 4);
        key.dport = key.sport;
        key.stype = t;
        key.dtype = rt;
        p.icmp_type = t;
        return Ok(());
    }
    // Errors: v4 unreachable, source quench, redirect, time exceeded,
    // parameter problem; v6 unreachable, too big, time exceeded,
    // parameter problem.
    let is_err = if v6 {
        (1..=4).contains(&t)
    } else {
        matches!(t, 3 | 4 | 5 | 11 | 12)
    };
    if !is_err {
        return Err(Malformed);
    }
    // The quoted packet lies in the error's datagram, not the padding.
    let inner_l3 = p.l4 + 8;
    let quoted = &d[..p.end];
    let (mut ik, il4, _) = parse_l3(quoted, inner_l3, v6, false)?;
    if ik.src != key.dst {
        return Err(Malformed);
    }
    let q = &quoted[il4..];
    match ik.proto {
        PROTO_TCP | PROTO_UDP => {
            // The first 8 bytes of the L4 header (ICMP_ERROR_DATA_L4_LEN).
            if q.len() < 8 {
                return Err(Malformed);
            }
            ik.sport = be16(q, 0);
            ik.dport = be16(q, 2);
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            if q.len() < 8 || q[1] != 0 {
                return Err(Malformed);
            }
            let rt = if v6 {
                match q[0] {
                    ICMP6_ECHO_REQUEST => ICMP6_ECHO_REPLY,
                    ICMP6_ECHO_REPLY => ICMP6_ECHO_REQUEST,
                    _ => return Err(Malformed),
                }
            } else {
                reverse_icmp4(q[0]).ok_or(Malformed)?
            };
            ik.sport = be16(q, 4);
            ik.dport = ik.sport;
            ik.stype = q[0];
            ik.dtype = rt;
        }
        _ => {}
    }
    *key = ik.reverse();
    p.related = true;
    p.inner_l3 = inner_l3;
    p.inner_l4 = il4;
    Ok(())
}
