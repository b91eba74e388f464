//! Header rewrites for [`SetAction`] (OVS `odp_execute_set_action` /
//! `packet_set_*` in `lib/packets.c`), with incremental checksum updates
//! (RFC 1624, eqn. 3: `HC' = ~(~HC + ~m + m')`).
//!
//! Checksums:
//! - IPv4 header checksum follows every IPv4 header change.
//! - TCP/UDP (and ICMPv6) checksums cover a pseudo-header with the IP
//!   addresses; address changes update them. Port and ICMP type/code
//!   changes update the L4 checksum too.
//! - A UDP checksum of zero means "none" (IPv4, RFC 768) and stays zero; a
//!   computed zero is sent as 0xffff.
//! - For packets in [`Csum::Partial`] state the L4 checksum field holds the
//!   (uncomplemented) pseudo-header sum and the L4 bytes are summed later,
//!   so only address changes touch the field (with the uncomplemented
//!   update), and port changes leave it alone.
//! - SCTP uses CRC32c over the whole SCTP packet (RFC 9260 App. B); a port
//!   change updates it as OVS `packet_set_sctp_port` does, carrying any
//!   error through (a packet that arrived with a bad CRC leaves with one).
//!
//! Frames too short for the header being written, non-first fragments
//! (for L4 fields) and mismatched protocols are left alone: the rewrite is
//! skipped, never a panic.

use std::fmt;

use crate::buffer::{Csum, Packet};
use crate::csum::{fold, sum};
use crate::packet::{ethernet, ipv6, sctp, IpProtocol};

/// A field rewrite (OVS `OVS_ACTION_ATTR_SET` / `SET_MASKED`). Values are
/// network-order byte arrays or host integers as named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetAction {
    /// Ethernet source address.
    EthSrc([u8; 6]),
    /// Ethernet destination address.
    EthDst([u8; 6]),
    /// VID (12 bits) of the outer VLAN tag, if the frame has one.
    VlanVid(u16),
    /// PCP (3 bits) of the outer VLAN tag, if the frame has one.
    VlanPcp(u8),
    /// IPv4 source.
    Ipv4Src([u8; 4]),
    /// IPv4 destination.
    Ipv4Dst([u8; 4]),
    /// IPv4 TOS bits under `mask` (DSCP = `0xfc`, ECN = `0x03`).
    Ipv4Tos {
        /// New bits.
        value: u8,
        /// Bits to change.
        mask: u8,
    },
    /// IPv4 TTL.
    Ipv4Ttl(u8),
    /// IPv6 source.
    Ipv6Src([u8; 16]),
    /// IPv6 destination.
    Ipv6Dst([u8; 16]),
    /// IPv6 traffic class bits under `mask`.
    Ipv6Tclass {
        /// New bits.
        value: u8,
        /// Bits to change.
        mask: u8,
    },
    /// IPv6 hop limit.
    Ipv6Hlim(u8),
    /// TCP/UDP/SCTP source port (`proto` is 6, 17 or 132; only frames of
    /// that protocol are changed).
    TpSrc {
        /// IP protocol.
        proto: u8,
        /// Port.
        port: u16,
    },
    /// TCP/UDP/SCTP destination port.
    TpDst {
        /// IP protocol.
        proto: u8,
        /// Port.
        port: u16,
    },
    /// TCP flags (low 12 bits of the offset/flags word).
    TcpFlags(u16),
    /// ICMP/ICMPv6 type.
    IcmpType(u8),
    /// ICMP/ICMPv6 code.
    IcmpCode(u8),
    /// ARP opcode.
    ArpOp(u16),
    /// ARP sender protocol address.
    ArpSpa([u8; 4]),
    /// ARP target protocol address.
    ArpTpa([u8; 4]),
    /// ARP sender hardware address.
    ArpSha([u8; 6]),
    /// ARP target hardware address.
    ArpTha([u8; 6]),
    /// IPv6 flow label (20 bits; no checksum covers it).
    Ipv6Label(u32),
    /// The outer MPLS label stack entry (label, TC, BOS, TTL).
    MplsLse(u32),
    /// ND target address of a neighbour solicitation or advertisement.
    NdTarget([u8; 16]),
    /// Source link-layer address option of a neighbour solicitation.
    NdSll([u8; 6]),
    /// Target link-layer address option of a neighbour advertisement.
    NdTll([u8; 6]),
    /// Tunnel id (`tun_id`) of the packet's tunnel metadata, used when it
    /// is output to a tunnel port with `key=flow` (OVS `set(tunnel(..))`).
    TunId(u64),
    /// Tunnel source address (`tun_src`; IPv4 in the low 32 bits).
    TunSrc(u128),
    /// Tunnel destination address (`tun_dst`), used by a tunnel port with
    /// `remote_ip=flow`.
    TunDst(u128),
    /// Geneve option data word `n` (n < 2) of the packet's tunnel metadata
    /// ([`crate::buffer::TunnelMeta::metadata`]), written as Geneve
    /// options by a tunnel port through its bridge's TLV map.
    TunOpts(u8, u128),
    /// Which `tun_metadata<i>` the packet carries (bit i).
    TunMdPresent(u64),
}

struct Mac<'a>(&'a [u8; 6]);

impl fmt::Display for Mac<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

fn l4_name(proto: u8) -> &'static str {
    match proto {
        6 => "tcp",
        17 => "udp",
        132 => "sctp",
        _ => "l4",
    }
}

impl fmt::Display for SetAction {
    /// `ovs-appctl dpctl/dump-flows` style: `set(ipv4(src=10.0.0.1))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::net::{Ipv4Addr, Ipv6Addr};
        match self {
            SetAction::EthSrc(m) => write!(f, "set(eth(src={}))", Mac(m)),
            SetAction::EthDst(m) => write!(f, "set(eth(dst={}))", Mac(m)),
            SetAction::VlanVid(v) => write!(f, "set(vlan(vid={v}))"),
            SetAction::VlanPcp(p) => write!(f, "set(vlan(pcp={p}))"),
            SetAction::Ipv4Src(a) => write!(f, "set(ipv4(src={}))", Ipv4Addr::from(*a)),
            SetAction::Ipv4Dst(a) => write!(f, "set(ipv4(dst={}))", Ipv4Addr::from(*a)),
            SetAction::Ipv4Tos { value, mask } => {
                write!(f, "set(ipv4(tos={value:#x}/{mask:#x}))")
            }
            SetAction::Ipv4Ttl(t) => write!(f, "set(ipv4(ttl={t}))"),
            SetAction::Ipv6Src(a) => write!(f, "set(ipv6(src={}))", Ipv6Addr::from(*a)),
            SetAction::Ipv6Dst(a) => write!(f, "set(ipv6(dst={}))", Ipv6Addr::from(*a)),
            SetAction::Ipv6Tclass { value, mask } => {
                write!(f, "set(ipv6(tclass={value:#x}/{mask:#x}))")
            }
            SetAction::Ipv6Hlim(h) => write!(f, "set(ipv6(hlimit={h}))"),
            SetAction::TpSrc { proto, port } => write!(f, "set({}(src={port}))", l4_name(*proto)),
            SetAction::TpDst { proto, port } => write!(f, "set({}(dst={port}))", l4_name(*proto)),
            SetAction::TcpFlags(x) => write!(f, "set(tcp_flags({x:#x}))"),
            SetAction::IcmpType(t) => write!(f, "set(icmp(type={t}))"),
            SetAction::IcmpCode(c) => write!(f, "set(icmp(code={c}))"),
            SetAction::ArpOp(o) => write!(f, "set(arp(op={o}))"),
            SetAction::ArpSpa(a) => write!(f, "set(arp(sip={}))", Ipv4Addr::from(*a)),
            SetAction::ArpTpa(a) => write!(f, "set(arp(tip={}))", Ipv4Addr::from(*a)),
            SetAction::ArpSha(m) => write!(f, "set(arp(sha={}))", Mac(m)),
            SetAction::ArpTha(m) => write!(f, "set(arp(tha={}))", Mac(m)),
            SetAction::Ipv6Label(l) => write!(f, "set(ipv6(label={l:#x}))"),
            SetAction::MplsLse(l) => write!(
                f,
                "set(mpls(label={},tc={},ttl={},bos={}))",
                l >> 12,
                (l >> 9) & 7,
                l & 0xff,
                (l >> 8) & 1
            ),
            SetAction::NdTarget(a) => write!(f, "set(nd(target={}))", Ipv6Addr::from(*a)),
            SetAction::NdSll(m) => write!(f, "set(nd(sll={}))", Mac(m)),
            SetAction::NdTll(m) => write!(f, "set(nd(tll={}))", Mac(m)),
            SetAction::TunId(id) => write!(f, "set(tunnel(tun_id={id:#x}))"),
            SetAction::TunSrc(a) => write!(f, "set(tunnel(src={}))", tun_addr(*a)),
            SetAction::TunDst(a) => write!(f, "set(tunnel(dst={}))", tun_addr(*a)),
            SetAction::TunOpts(n, v) => write!(f, "set(tunnel(opts{n}={v:#x}))"),
            SetAction::TunMdPresent(m) => write!(f, "set(tunnel(md_present={m:#x}))"),
        }
    }
}

/// New 16-bit checksum field after the summed bytes changed from a sum of
/// `old` to a sum of `new` (both unfolded 32-bit sums). `partial`: the field
/// holds an uncomplemented sum.
fn adjust(field: u16, old: u32, new: u32, partial: bool) -> u16 {
    let neg_old = u32::from(!fold(old));
    let new = u32::from(fold(new));
    if partial {
        fold(u32::from(field) + neg_old + new)
    } else {
        !fold(u32::from(!field) + neg_old + new)
    }
}

fn get16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

fn put16(d: &mut [u8], at: usize, v: u16) {
    if let Some(s) = d.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// Write `new` at `at`, returning the sums of the 16-bit-aligned span
/// (relative to `base`) before and after. `None` (nothing written) if the
/// span does not fit.
fn write_span(d: &mut [u8], base: usize, at: usize, new: &[u8]) -> Option<(u32, u32)> {
    let start = base + ((at - base) & !1);
    let end_rel = at + new.len() - base;
    let end = base + end_rel + (end_rel & 1);
    let span = d.get(start..end)?;
    let old = sum(span, 0);
    d.get_mut(at..at + new.len())?.copy_from_slice(new);
    Some((old, sum(&d[start..end], 0)))
}

/// Where the L3 and L4 headers are.
#[derive(Debug, Clone, Copy)]
struct Layout {
    l3: usize,
    ipv6: bool,
    /// L4 offset and protocol, if this is not a later fragment and the
    /// headers fit.
    l4: Option<(usize, u8)>,
    /// End of the IP datagram within the frame.
    end: usize,
}

fn ip_layout(d: &[u8]) -> Option<Layout> {
    let (ty, l3) = ethernet::l3_offset(d)?;
    match u16::from(ty) {
        0x0800 => {
            let vihl = *d.get(l3)?;
            if vihl >> 4 != 4 {
                return None;
            }
            let ihl = usize::from(vihl & 0xf) * 4;
            if ihl < 20 || d.len() < l3 + ihl {
                return None;
            }
            let total = usize::from(get16(d, l3 + 2)?);
            let end = (l3 + total).min(d.len()).max(l3 + ihl);
            let frag_off = get16(d, l3 + 6)? & 0x1fff;
            let proto = d[l3 + 9];
            Some(Layout {
                l3,
                ipv6: false,
                l4: (frag_off == 0).then_some((l3 + ihl, proto)),
                end,
            })
        }
        0x86dd => {
            if d.len() < l3 + ipv6::HEADER_LEN || d[l3] >> 4 != 6 {
                return None;
            }
            let plen = usize::from(get16(d, l3 + 4)?);
            let end = (l3 + ipv6::HEADER_LEN + plen).min(d.len());
            let payload = &d[l3 + ipv6::HEADER_LEN..end];
            let l4 = ipv6::upper_checked(IpProtocol::from(d[l3 + 6]), payload)
                .ok()
                .filter(|u| !u.later_fragment)
                .map(|u| (l3 + ipv6::HEADER_LEN + u.ext_len, u8::from(u.proto)));
            Some(Layout {
                l3,
                ipv6: true,
                l4,
                end,
            })
        }
        _ => None,
    }
}

/// Offset of the checksum field that covers the pseudo-header, for TCP,
/// UDP and ICMPv6.
fn pseudo_csum_at(proto: u8) -> Option<usize> {
    match proto {
        6 => Some(16),
        17 => Some(6),
        58 => Some(2),
        _ => None,
    }
}

/// Update the L4 checksum for a pseudo-header change.
fn fix_pseudo(d: &mut [u8], lay: &Layout, old: u32, new: u32, partial: bool) {
    let Some((l4, proto)) = lay.l4 else { return };
    let Some(off) = pseudo_csum_at(proto) else {
        return;
    };
    if proto == 58 && !lay.ipv6 {
        return;
    }
    let at = l4 + off;
    if at + 2 > lay.end {
        return;
    }
    let Some(c) = get16(d, at) else { return };
    if proto == 17 && c == 0 && !partial {
        return;
    }
    let mut n = adjust(c, old, new, partial);
    if proto == 17 && n == 0 && !partial {
        n = 0xffff;
    }
    put16(d, at, n);
}

/// Update a plain (non pseudo-header) change to the L4 bytes.
fn fix_l4(d: &mut [u8], lay: &Layout, proto: u8, old: u32, new: u32, partial: bool) {
    let Some((l4, _)) = lay.l4 else { return };
    let off = match proto {
        6 => 16,
        17 => 6,
        1 | 58 => 2,
        _ => return,
    };
    // A partial checksum covers the L4 bytes at completion time (ICMP is
    // never partial).
    if partial && proto != 1 && proto != 58 {
        return;
    }
    let at = l4 + off;
    if at + 2 > lay.end {
        return;
    }
    let Some(c) = get16(d, at) else { return };
    if proto == 17 && c == 0 {
        return;
    }
    let mut n = adjust(c, old, new, false);
    if proto == 17 && n == 0 {
        n = 0xffff;
    }
    put16(d, at, n);
}

const fn crc32c_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC32C: [u32; 256] = crc32c_table();

/// CRC32c (Castagnoli), as SCTP uses it (RFC 9260 Appendix B).
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC32C[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Rewrite 2 bytes at `off` of the SCTP header at `l4` (packet end
/// `end`), carrying any checksum error through as OVS
/// `packet_set_sctp_port` does: the field becomes
/// `old ^ crc(before) ^ crc(after)`, so a correct CRC32c stays correct
/// and a wrong one stays wrong by the same bits. `false` (nothing
/// written) if the header does not fit.
fn set_sctp_port(d: &mut [u8], l4: usize, end: usize, off: usize, port: u16) -> bool {
    if l4 + sctp::HEADER_LEN > end || end > d.len() {
        return false;
    }
    let mut p = sctp::Packet::new_unchecked(&mut d[l4..end]);
    let old = p.checksum();
    p.set_checksum(0);
    let before = crc32c(p.into_inner());
    let mut p = sctp::Packet::new_unchecked(&mut d[l4..end]);
    if off == 0 {
        p.set_src_port(port);
    } else {
        p.set_dst_port(port);
    }
    let after = crc32c(p.into_inner());
    sctp::Packet::new_unchecked(&mut d[l4..end]).set_checksum(old ^ before ^ after);
    true
}

fn vlan_tci_at(d: &[u8]) -> Option<usize> {
    let tpid = get16(d, 12)?;
    (matches!(tpid, 0x8100 | 0x88a8) && d.len() >= 16).then_some(14)
}

/// A tunnel address as text (IPv4 when the high 96 bits are zero).
fn tun_addr(a: u128) -> String {
    match u32::try_from(a) {
        Ok(v4) => std::net::Ipv4Addr::from(v4).to_string(),
        Err(_) => std::net::Ipv6Addr::from(a).to_string(),
    }
}

/// Apply `a` to `pkt` in place. Returns false when the frame has no such
/// header (nothing changed).
pub fn apply(pkt: &mut Packet, a: &SetAction) -> bool {
    match *a {
        SetAction::TunId(id) => {
            pkt.md.tunnel.id = id;
            return true;
        }
        SetAction::TunSrc(v) => {
            pkt.md.tunnel.src = v;
            return true;
        }
        SetAction::TunDst(v) => {
            pkt.md.tunnel.dst = v;
            return true;
        }
        SetAction::TunOpts(n, v) => {
            if let Some(w) = pkt.md.tunnel.metadata.get_mut(usize::from(n)) {
                *w = v;
            }
            return true;
        }
        SetAction::TunMdPresent(m) => {
            pkt.md.tunnel.md_present = m;
            return true;
        }
        _ => {}
    }
    let partial = matches!(pkt.csum, Csum::Partial { .. });
    let d = pkt.data_mut();
    match *a {
        SetAction::EthSrc(m) => write_bytes(d, 6, &m),
        SetAction::EthDst(m) => write_bytes(d, 0, &m),
        SetAction::VlanVid(v) => set_tci(d, 0x0fff, v & 0x0fff),
        SetAction::VlanPcp(p) => set_tci(d, 0xe000, (u16::from(p) & 7) << 13),
        SetAction::Ipv4Src(a) => set_ipv4_addr(d, 12, &a, partial),
        SetAction::Ipv4Dst(a) => set_ipv4_addr(d, 16, &a, partial),
        SetAction::Ipv4Tos { value, mask } => {
            let Some(lay) = ip_layout(d).filter(|l| !l.ipv6) else {
                return false;
            };
            let old = d[lay.l3 + 1];
            set_ipv4_hdr(d, &lay, 1, &[(old & !mask) | (value & mask)])
        }
        SetAction::Ipv4Ttl(t) => {
            let Some(lay) = ip_layout(d).filter(|l| !l.ipv6) else {
                return false;
            };
            set_ipv4_hdr(d, &lay, 8, &[t])
        }
        SetAction::Ipv6Src(a) => set_ipv6_addr(d, 8, &a, partial),
        SetAction::Ipv6Dst(a) => set_ipv6_addr(d, 24, &a, partial),
        SetAction::Ipv6Tclass { value, mask } => {
            let Some(lay) = ip_layout(d).filter(|l| l.ipv6) else {
                return false;
            };
            let l3 = lay.l3;
            let tc = ((d[l3] & 0x0f) << 4) | (d[l3 + 1] >> 4);
            let tc = (tc & !mask) | (value & mask);
            d[l3] = (d[l3] & 0xf0) | (tc >> 4);
            d[l3 + 1] = (d[l3 + 1] & 0x0f) | (tc << 4);
            true
        }
        SetAction::Ipv6Hlim(h) => {
            let Some(lay) = ip_layout(d).filter(|l| l.ipv6) else {
                return false;
            };
            d[lay.l3 + 7] = h;
            true
        }
        SetAction::TpSrc { proto, port } => set_port(d, proto, 0, port, partial),
        SetAction::TpDst { proto, port } => set_port(d, proto, 2, port, partial),
        SetAction::TcpFlags(flags) => {
            let Some(lay) = ip_layout(d) else {
                return false;
            };
            let Some((l4, 6)) = lay.l4 else { return false };
            if l4 + 20 > lay.end {
                return false;
            }
            let old = get16(d, l4 + 12).unwrap_or(0);
            let new = (old & 0xf000) | (flags & 0x0fff);
            let Some((o, n)) = write_span(d, l4, l4 + 12, &new.to_be_bytes()) else {
                return false;
            };
            fix_l4(d, &lay, 6, o, n, partial);
            true
        }
        SetAction::IcmpType(t) => set_icmp(d, 0, t),
        SetAction::IcmpCode(c) => set_icmp(d, 1, c),
        SetAction::ArpOp(op) => set_arp(d, 6, &op.to_be_bytes()),
        SetAction::ArpSpa(a) => set_arp(d, 14, &a),
        SetAction::ArpTpa(a) => set_arp(d, 24, &a),
        SetAction::ArpSha(m) => set_arp(d, 8, &m),
        SetAction::ArpTha(m) => set_arp(d, 18, &m),
        SetAction::Ipv6Label(label) => {
            let Some(lay) = ip_layout(d).filter(|l| l.ipv6) else {
                return false;
            };
            let l3 = lay.l3;
            d[l3 + 1] = (d[l3 + 1] & 0xf0) | ((label >> 16) as u8 & 0x0f);
            d[l3 + 2] = (label >> 8) as u8;
            d[l3 + 3] = label as u8;
            true
        }
        SetAction::MplsLse(lse) => match crate::actions::mpls_at(d) {
            Some(at) => write_bytes(d, at, &lse.to_be_bytes()),
            None => false,
        },
        SetAction::NdTarget(a) => set_nd(d, None, &a),
        SetAction::NdSll(m) => set_nd(d, Some((135, 1)), &m),
        SetAction::NdTll(m) => set_nd(d, Some((136, 2)), &m),
        // Metadata, applied above.
        SetAction::TunId(_)
        | SetAction::TunSrc(_)
        | SetAction::TunDst(_)
        | SetAction::TunOpts(..)
        | SetAction::TunMdPresent(_) => false,
    }
}

/// Rewrite the target address (`opt` = `None`) or the link-layer address
/// option of type `opt.1` in a message of ICMPv6 type `opt.0` (RFC 4861
/// §4.3, §4.4) of an ND packet, updating the ICMPv6 checksum. False when
/// the frame is not such a message or has no such option.
fn set_nd(d: &mut [u8], opt: Option<(u8, u8)>, v: &[u8]) -> bool {
    let Some(lay) = ip_layout(d).filter(|l| l.ipv6) else {
        return false;
    };
    let Some((l4, 58)) = lay.l4 else {
        return false;
    };
    if l4 + 24 > lay.end || !matches!(d[l4], 135 | 136) || d[l4 + 1] != 0 {
        return false;
    }
    let at = match opt {
        None => l4 + 8,
        Some((ty, oty)) => {
            if d[l4] != ty {
                return false;
            }
            let mut o = l4 + 24;
            loop {
                if o + 8 > lay.end {
                    return false;
                }
                let len = usize::from(d[o + 1]) * 8;
                if len == 0 {
                    return false;
                }
                if d[o] == oty && len >= 8 {
                    break o + 2;
                }
                o += len;
            }
        }
    };
    let Some((o, n)) = write_span(d, l4, at, v) else {
        return false;
    };
    fix_l4(d, &lay, 58, o, n, false);
    true
}

fn write_bytes(d: &mut [u8], at: usize, v: &[u8]) -> bool {
    match d.get_mut(at..at + v.len()) {
        Some(s) => {
            s.copy_from_slice(v);
            true
        }
        None => false,
    }
}

fn set_tci(d: &mut [u8], mask: u16, bits: u16) -> bool {
    let Some(at) = vlan_tci_at(d) else {
        return false;
    };
    let tci = get16(d, at).unwrap_or(0);
    put16(d, at, (tci & !mask) | (bits & mask));
    true
}

/// Change IPv4 header bytes at `off` from the header start, updating the
/// header checksum. Returns the sums before/after through the header
/// checksum only.
fn set_ipv4_hdr(d: &mut [u8], lay: &Layout, off: usize, new: &[u8]) -> bool {
    let l3 = lay.l3;
    let Some((o, n)) = write_span(d, l3, l3 + off, new) else {
        return false;
    };
    let c = get16(d, l3 + 10).unwrap_or(0);
    put16(d, l3 + 10, adjust(c, o, n, false));
    true
}

fn set_ipv4_addr(d: &mut [u8], off: usize, a: &[u8; 4], partial: bool) -> bool {
    let Some(lay) = ip_layout(d).filter(|l| !l.ipv6) else {
        return false;
    };
    let at = lay.l3 + off;
    let old = sum(&d[at..at + 4], 0);
    if !set_ipv4_hdr(d, &lay, off, a) {
        return false;
    }
    fix_pseudo(d, &lay, old, sum(a, 0), partial);
    true
}

fn set_ipv6_addr(d: &mut [u8], off: usize, a: &[u8; 16], partial: bool) -> bool {
    let Some(lay) = ip_layout(d).filter(|l| l.ipv6) else {
        return false;
    };
    let at = lay.l3 + off;
    let old = sum(&d[at..at + 16], 0);
    d[at..at + 16].copy_from_slice(a);
    fix_pseudo(d, &lay, old, sum(a, 0), partial);
    true
}

fn set_port(d: &mut [u8], proto: u8, off: usize, port: u16, partial: bool) -> bool {
    let Some(lay) = ip_layout(d) else {
        return false;
    };
    let Some((l4, p)) = lay.l4 else { return false };
    if p != proto || l4 + 4 > lay.end {
        return false;
    }
    if proto == 132 {
        return set_sctp_port(d, l4, lay.end, off, port);
    }
    let Some((o, n)) = write_span(d, l4, l4 + off, &port.to_be_bytes()) else {
        return false;
    };
    match proto {
        6 | 17 => fix_l4(d, &lay, proto, o, n, partial),
        _ => {}
    }
    true
}

fn set_icmp(d: &mut [u8], off: usize, v: u8) -> bool {
    let Some(lay) = ip_layout(d) else {
        return false;
    };
    let Some((l4, p)) = lay.l4 else { return false };
    let want = if lay.ipv6 { 58 } else { 1 };
    if p != want || l4 + 4 > lay.end {
        return false;
    }
    let Some((o, n)) = write_span(d, l4, l4 + off, &[v]) else {
        return false;
    };
    fix_l4(d, &lay, p, o, n, false);
    true
}

fn set_arp(d: &mut [u8], off: usize, v: &[u8]) -> bool {
    let Some((ty, l3)) = ethernet::l3_offset(d) else {
        return false;
    };
    // ARP or RARP (same layout; OVS `is_arp`).
    if !matches!(u16::from(ty), 0x0806 | 0x8035) {
        return false;
    }
    write_bytes(d, l3 + off, v)
}

/// Raise the drop precedence of an AF DSCP (RFC 2597: AFcd = `c<<3|d<<1`,
/// d in 1..=3) by `prec_level`, up to 3; other DSCPs are unchanged
/// (OpenFlow 1.3.5 §7.3.4.5 `OFPMBT_DSCP_REMARK`). Returns the new DSCP.
pub fn remark_dscp(dscp: u8, prec_level: u8) -> u8 {
    let class = dscp >> 3;
    let dp = (dscp >> 1) & 3;
    if (1..=4).contains(&class) && dp >= 1 && dscp & 1 == 0 {
        let ndp = dp.saturating_add(prec_level).min(3);
        (class << 3) | (ndp << 1)
    } else {
        dscp
    }
}

/// Apply [`remark_dscp`] to an IPv4 or IPv6 packet in place.
pub fn remark_packet(pkt: &mut Packet, prec_level: u8) -> bool {
    let Some(lay) = ip_layout(pkt.data()) else {
        return false;
    };
    let d = pkt.data();
    let tos = if lay.ipv6 {
        ((d[lay.l3] & 0x0f) << 4) | (d[lay.l3 + 1] >> 4)
    } else {
        d[lay.l3 + 1]
    };
    let nd = remark_dscp(tos >> 2, prec_level);
    if nd == tos >> 2 {
        return false;
    }
    let value = nd << 2;
    let a = if lay.ipv6 {
        SetAction::Ipv6Tclass { value, mask: 0xfc }
    } else {
        SetAction::Ipv4Tos { value, mask: 0xfc }
    };
    apply(pkt, &a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csum;
    use crate::flow::Field;
    use etherparse::{PacketBuilder, SlicedPacket};

    fn udp4() -> Packet {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 53)
            .write(&mut v, &[1, 2, 3, 4, 5])
            .unwrap();
        Packet::from_slice(&v)
    }

    fn tcp6() -> Packet {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
            .tcp(1, 2, 100, 1000)
            .write(&mut v, &[7u8; 100])
            .unwrap();
        Packet::from_slice(&v)
    }

    fn ipv4_ok(d: &[u8]) -> bool {
        csum::checksum(&d[14..34]) == 0
    }

    #[test]
    fn ipv4_rewrites_keep_checksums() {
        let mut p = udp4();
        assert!(apply(&mut p, &SetAction::Ipv4Src([192, 168, 1, 77])));
        assert!(apply(&mut p, &SetAction::Ipv4Dst([172, 16, 0, 9])));
        assert!(apply(&mut p, &SetAction::Ipv4Ttl(3)));
        assert!(apply(
            &mut p,
            &SetAction::Ipv4Tos {
                value: 46 << 2,
                mask: 0xfc
            }
        ));
        assert!(apply(
            &mut p,
            &SetAction::TpDst {
                proto: 17,
                port: 5353
            }
        ));
        assert!(!apply(&mut p, &SetAction::TpDst { proto: 6, port: 1 }));
        assert!(ipv4_ok(p.data()));
        assert!(csum::verify_l4(p.data()));
        let s = SlicedPacket::from_ethernet(p.data()).unwrap();
        match s.net {
            Some(etherparse::NetSlice::Ipv4(ip)) => {
                assert_eq!(ip.header().source(), [192, 168, 1, 77]);
                assert_eq!(ip.header().ttl(), 3);
                assert_eq!(ip.header().dcp().value(), 46);
            }
            _ => panic!(),
        }
    }

    /// A neighbour solicitation (135) or advertisement (136) for fe80::2
    /// with one link-layer address option (type 1 or 2), checksummed.
    fn nd(ty: u8) -> Packet {
        let mut body = vec![0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        body.extend_from_slice(&[ty - 134, 1, 2, 0, 0, 0, 0, 1]);
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [0x33, 0x33, 0xff, 0, 0, 2])
            .ipv6(
                [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 2],
                255,
            )
            .icmpv6(etherparse::Icmpv6Type::Unknown {
                type_u8: ty,
                code_u8: 0,
                bytes5to8: [0; 4],
            })
            .write(&mut v, &body)
            .unwrap();
        Packet::from_slice(&v)
    }

    /// Whether an untagged IPv6 frame's ICMPv6 checksum holds.
    fn icmp6_ok(d: &[u8]) -> bool {
        let plen = usize::from(u16::from_be_bytes([d[18], d[19]]));
        let src: [u8; 16] = d[22..38].try_into().unwrap();
        let dst: [u8; 16] = d[38..54].try_into().unwrap();
        let pseudo = csum::pseudo_v6(src, dst, 58, plen as u32);
        csum::fold(csum::sum(&d[54..54 + plen], pseudo)) == 0xffff
    }

    #[test]
    fn nd_rewrites_keep_the_icmpv6_checksum() {
        let mut ns = nd(135);
        assert!(icmp6_ok(ns.data()));
        let target = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        assert!(apply(&mut ns, &SetAction::NdTarget(target)));
        assert!(apply(&mut ns, &SetAction::NdSll([2, 0, 0, 0, 0, 9])));
        // An NS has no target link-layer option.
        assert!(!apply(&mut ns, &SetAction::NdTll([2, 0, 0, 0, 0, 9])));
        assert!(icmp6_ok(ns.data()));
        let k = crate::flow::extract(&ns);
        assert_eq!(k.get(Field::NdTarget), u128::from_be_bytes(target));
        assert_eq!(k.get(Field::ArpSha), 0x0200_0000_0009);
        let mut na = nd(136);
        assert!(apply(&mut na, &SetAction::NdTll([2, 0, 0, 0, 0, 7])));
        assert!(icmp6_ok(na.data()));
        assert_eq!(
            crate::flow::extract(&na).get(Field::ArpTha),
            0x0200_0000_0007
        );
        // Not ND: nothing changes.
        let mut t = tcp6();
        assert!(!apply(&mut t, &SetAction::NdTarget(target)));
        assert!(apply(&mut t, &SetAction::Ipv6Label(0x12345)));
        assert_eq!(crate::flow::extract(&t).get(Field::Ipv6Label), 0x12345);
        assert!(csum::verify_l4(t.data()));
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut p = udp4();
        let d = p.data_mut();
        d[40] = 0;
        d[41] = 0;
        assert!(apply(&mut p, &SetAction::Ipv4Src([1, 1, 1, 1])));
        assert!(apply(&mut p, &SetAction::TpSrc { proto: 17, port: 7 }));
        assert_eq!(&p.data()[40..42], &[0, 0]);
        assert!(ipv4_ok(p.data()));
    }

    #[test]
    fn partial_checksum_holds_new_pseudo_sum() {
        let mut p = tcp6();
        let (s, o) = csum::prepare_partial(p.data_mut()).unwrap();
        p.csum = Csum::Partial {
            start: s,
            offset: o,
        };
        assert!(apply(
            &mut p,
            &SetAction::Ipv6Dst([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99])
        ));
        assert!(apply(
            &mut p,
            &SetAction::TpSrc {
                proto: 6,
                port: 4444
            }
        ));
        assert!(csum::complete_partial(p.data_mut(), s, o));
        assert!(csum::verify_l4(p.data()));
        let mut q = tcp6();
        assert!(apply(
            &mut q,
            &SetAction::Ipv6Src([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42])
        ));
        assert!(apply(&mut q, &SetAction::TcpFlags(0x18)));
        assert!(apply(&mut q, &SetAction::Ipv6Hlim(9)));
        assert!(apply(
            &mut q,
            &SetAction::Ipv6Tclass {
                value: 0xb8,
                mask: 0xfc
            }
        ));
        assert!(csum::verify_l4(q.data()));
        assert_eq!(q.data()[14] & 0x0f, 0xb);
    }

    #[test]
    fn short_frames_are_left_alone() {
        let full = udp4();
        for n in 0..=full.len() {
            let mut p = Packet::from_slice(&full.data()[..n]);
            for a in [
                SetAction::Ipv4Src([1, 2, 3, 4]),
                SetAction::TpDst { proto: 17, port: 1 },
                SetAction::VlanVid(5),
                SetAction::EthDst([1; 6]),
                SetAction::IcmpType(3),
                SetAction::ArpTpa([1, 2, 3, 4]),
            ] {
                apply(&mut p, &a);
            }
        }
    }

    #[test]
    fn icmp_and_arp() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(7, 1)
            .write(&mut v, b"ping")
            .unwrap();
        let mut p = Packet::from_slice(&v);
        assert!(apply(&mut p, &SetAction::IcmpType(0)));
        assert!(apply(&mut p, &SetAction::IcmpCode(3)));
        assert!(!apply(&mut p, &SetAction::TpSrc { proto: 17, port: 1 }));
        let d = p.data();
        assert_eq!((d[34], d[35]), (0, 3));
        assert_eq!(csum::checksum(&d[34..]), 0, "ICMP checksum");
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(
                [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
            .icmpv6_echo_request(7, 1)
            .write(&mut v, b"ping")
            .unwrap();
        let mut p = Packet::from_slice(&v);
        assert!(apply(
            &mut p,
            &SetAction::Ipv6Src([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9])
        ));
        assert!(apply(&mut p, &SetAction::IcmpType(129)));
        let s = SlicedPacket::from_ethernet(p.data()).unwrap();
        match s.transport {
            Some(etherparse::TransportSlice::Icmpv6(i)) => {
                let Some(etherparse::NetSlice::Ipv6(ip)) = &s.net else {
                    panic!()
                };
                let h = ip.header();
                let want = i
                    .icmp_type()
                    .calc_checksum(h.source(), h.destination(), i.payload())
                    .unwrap();
                assert_eq!(i.checksum(), want);
                assert_eq!(i.type_u8(), 129);
            }
            _ => panic!(),
        }
        // ARP.
        let mut a = vec![0xffu8; 6];
        a.extend([2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        a.extend([
            0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
        ]);
        let mut p = Packet::from_slice(&a);
        assert!(apply(&mut p, &SetAction::ArpOp(2)));
        assert!(apply(&mut p, &SetAction::ArpSpa([1, 2, 3, 4])));
        assert!(apply(&mut p, &SetAction::ArpTpa([5, 6, 7, 8])));
        assert!(!apply(&mut p, &SetAction::Ipv4Src([1, 1, 1, 1])));
        let d = p.data();
        assert_eq!(&d[20..22], &[0, 2]);
        assert_eq!(&d[28..32], &[1, 2, 3, 4]);
        assert_eq!(&d[38..42], &[5, 6, 7, 8]);
    }

    #[test]
    fn sctp_port_rewrite_recomputes_crc32c() {
        let mut sctp = vec![0x13, 0x88, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0];
        sctp.extend([1, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef]);
        let c = crc32c(&sctp);
        sctp[8..12].copy_from_slice(&c.to_le_bytes());
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .write(&mut v, etherparse::IpNumber(132), &sctp)
            .unwrap();
        let mut p = Packet::from_slice(&v);
        assert!(apply(
            &mut p,
            &SetAction::TpDst {
                proto: 132,
                port: 443
            }
        ));
        assert!(apply(&mut p, &SetAction::Ipv4Dst([9, 9, 9, 9])));
        let d = p.data();
        assert!(ipv4_ok(d));
        let l4 = &d[34..];
        assert_eq!(&l4[2..4], &443u16.to_be_bytes());
        let mut z = l4.to_vec();
        z[8..12].fill(0);
        assert_eq!(&l4[8..12], &crc32c(&z).to_le_bytes());
    }

    #[test]
    fn sctp_port_rewrite_carries_a_bad_crc_through() {
        // As OVS `packet_set_sctp_port`: a wrong CRC stays wrong by the
        // same bits (the switch does not repair the sender's errors); over
        // IPv6 too, source port this time.
        let mut sctp = vec![0x13, 0x88, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0];
        sctp.extend([1, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef]);
        let good = crc32c(&sctp);
        let bad = good ^ 0x0000_ff01;
        sctp[8..12].copy_from_slice(&bad.to_le_bytes());
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6([1; 16], [2; 16], 64)
            .write(&mut v, etherparse::IpNumber(132), &sctp)
            .unwrap();
        let mut p = Packet::from_slice(&v);
        assert!(apply(
            &mut p,
            &SetAction::TpSrc {
                proto: 132,
                port: 7
            }
        ));
        let l4 = &p.data()[54..];
        assert_eq!(&l4[..2], &7u16.to_be_bytes());
        let mut z = l4.to_vec();
        z[8..12].fill(0);
        let now = u32::from_le_bytes([l4[8], l4[9], l4[10], l4[11]]);
        assert_eq!(now ^ crc32c(&z), 0x0000_ff01);
        // A header cut short is left alone.
        let mut p = Packet::from_slice(&v[..54 + 11]);
        assert!(!apply(
            &mut p,
            &SetAction::TpSrc {
                proto: 132,
                port: 7
            }
        ));
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn dscp_remark() {
        assert_eq!(remark_dscp(10, 1), 12); // AF11 -> AF12
        assert_eq!(remark_dscp(14, 1), 14); // AF13 stays
        assert_eq!(remark_dscp(46, 1), 46); // EF unchanged
    }
}
