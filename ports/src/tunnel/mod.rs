//! Tunnel encapsulation: VXLAN (RFC 7348), Geneve (RFC 8926) and GRE
//! (RFC 2784, [`gre`]) over
//! IPv4 and IPv6 underlays, as OVS's userspace tunnelling builds and
//! strips them (`lib/netdev-native-tnl.c`).
//!
//! [`encapsulate`] puts Ethernet + IPv4/IPv6 + UDP + VXLAN/Geneve headers in
//! front of an inner Ethernet frame (from the packet's headroom, no copy
//! of the frame). [`decapsulate`] checks an outer frame a bridge would
//! deliver to its internal port and, if it is a tunnel packet, returns the
//! tunnel metadata and where the inner frame starts; every malformed or
//! lying outer header is refused with a [`DecapError`], one variant (and
//! one [`DecapCounters`] counter) per reason. Neither panics on any input
//! (the `tunnel_decap` proptest feeds it arbitrary and mutated frames).

pub mod config;
pub mod geneve;
pub mod gre;
pub mod neigh;
pub mod route;
pub mod vport;
pub mod vxlan;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use xennet_datapath::buffer::{Csum, Packet, TunnelMeta, MAX_FRAME};
use xennet_datapath::csum;

/// Ethernet header length.
const ETH_LEN: usize = 14;
/// IPv4 header length without options.
const IPV4_LEN: usize = 20;
/// IPv6 fixed header length.
const IPV6_LEN: usize = 40;
/// UDP header length.
const UDP_LEN: usize = 8;
/// IP protocol number of UDP.
const PROTO_UDP: u8 = 17;
/// Smallest inner frame: an Ethernet header.
const MIN_INNER: usize = ETH_LEN;

/// `tun_flags` bit for an OAM packet (Geneve's O bit), as OVS's
/// `FLOW_TNL_F_OAM` (`NXM_NX_TUN_FLAGS`).
pub const TNL_F_OAM: u16 = 1;

/// A UDP tunnel protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// VXLAN, RFC 7348.
    Vxlan,
    /// Geneve, RFC 8926.
    Geneve,
    /// GRE (RFC 2784, key from RFC 2890) carrying Ethernet.
    Gre,
}

impl TunnelKind {
    /// The IANA UDP port: 4789 for VXLAN, 6081 for Geneve.
    pub fn default_port(self) -> u16 {
        match self {
            TunnelKind::Vxlan => vxlan::PORT,
            TunnelKind::Geneve => geneve::PORT,
            // Not UDP.
            TunnelKind::Gre => 0,
        }
    }

    /// The OVSDB Interface `type`.
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::Gre => "gre",
        }
    }

    /// The tunnel header length (Geneve without options, GRE without a
    /// checksum).
    fn header_len(self) -> usize {
        match self {
            TunnelKind::Vxlan => vxlan::HEADER_LEN,
            TunnelKind::Geneve => geneve::HEADER_LEN,
            TunnelKind::Gre => gre::header_len(false),
        }
    }
}

/// An address as the flow key and [`TunnelMeta`] store it: IPv4 in the low
/// 32 bits.
pub fn addr_to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address a [`TunnelMeta`] field holds: IPv4 when the high 96 bits are
/// zero (`::a.b.c.d`, deprecated by RFC 4291, is never a tunnel endpoint).
pub fn u128_to_addr(v: u128) -> IpAddr {
    match u32::try_from(v) {
        Ok(v4) => IpAddr::V4(v4.into()),
        Err(_) => IpAddr::V6(v.into()),
    }
}

/// Everything the outer headers need. `src` and `dst` must be of one
/// family.
#[derive(Debug, Clone)]
pub struct Encap<'a> {
    /// VXLAN or Geneve.
    pub kind: TunnelKind,
    /// Outer Ethernet source (the underlay bridge's MAC).
    pub src_mac: [u8; 6],
    /// Outer Ethernet destination (the next hop's MAC).
    pub dst_mac: [u8; 6],
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// VNI (24 bits; higher bits are ignored).
    pub vni: u32,
    /// Outer TOS / traffic class.
    pub tos: u8,
    /// Outer TTL / hop limit.
    pub ttl: u8,
    /// IPv4 don't-fragment bit (`df_default`).
    pub df: bool,
    /// IPv4 identification (ignored for IPv6).
    pub ip_id: u16,
    /// UDP source port; 0 = derived from a hash of the inner flow, in
    /// 32768..=61000 as OVS's `tnl_udp_port_min`/`max` defaults.
    pub udp_src: u16,
    /// UDP destination port.
    pub udp_dst: u16,
    /// Compute the UDP checksum (else 0, allowed for IPv4 and, with
    /// RFC 6935, IPv6 receivers that opt in); for GRE, the GRE checksum.
    pub csum: bool,
    /// Geneve option TLVs, already encoded (a multiple of 4 bytes, at most
    /// 252); must be empty for VXLAN.
    pub geneve_opts: &'a [u8],
    /// Geneve O bit (OAM).
    pub oam: bool,
}

/// Why a packet could not be encapsulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncapError {
    /// A GSO super-frame: segment it first.
    #[error("GSO super-frame must be segmented before encapsulation")]
    SuperFrame,
    /// Source and destination are of different families.
    #[error("outer source and destination are of different address families")]
    MixedFamilies,
    /// Geneve options not a multiple of 4 bytes or longer than 252, or
    /// options for VXLAN.
    #[error("bad tunnel options length {0}")]
    BadOptions(usize),
    /// The outer packet would exceed 65535 bytes of IP payload.
    #[error("encapsulated packet too long ({0} bytes)")]
    TooLong(usize),
    /// The inner frame is shorter than an Ethernet header.
    #[error("inner frame too short ({0} bytes)")]
    InnerTooShort(usize),
}

/// The outer header bytes [`encapsulate`] adds (Geneve with `opts_len`
/// bytes of options, GRE without a checksum).
pub fn overhead(kind: TunnelKind, ipv6: bool, opts_len: usize) -> usize {
    let udp = if kind == TunnelKind::Gre { 0 } else { UDP_LEN };
    ETH_LEN + if ipv6 { IPV6_LEN } else { IPV4_LEN } + udp + kind.header_len() + opts_len
}

/// Source port for a flow, from a hash of the inner frame's addresses and
/// ports (RFC 7348 §5: "a hash of fields from the inner packet"), in
/// 32768..=61000.
pub fn flow_udp_src(inner: &[u8]) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: &[u8]| {
        for x in b {
            h = (h ^ u32::from(*x)).wrapping_mul(0x0100_0193);
        }
    };
    eat(inner.get(..ETH_LEN).unwrap_or(inner));
    let l3 = inner.get(ETH_LEN..).unwrap_or(&[]);
    match inner.get(12..14) {
        Some([0x08, 0x00]) if l3.len() >= IPV4_LEN => {
            eat(&l3[9..10]);
            eat(&l3[12..20]);
            let ihl = usize::from(l3[0] & 0x0f) * 4;
            let frag = u16::from_be_bytes([l3[6], l3[7]]) & 0x1fff != 0;
            if !frag {
                if let Some(p) = l3.get(ihl..ihl + 4) {
                    eat(p);
                }
            }
        }
        Some([0x86, 0xdd]) if l3.len() >= IPV6_LEN => {
            eat(&l3[6..7]);
            eat(&l3[8..40]);
            if let Some(p) = l3.get(IPV6_LEN..IPV6_LEN + 4) {
                eat(p);
            }
        }
        _ => {}
    }
    let range = 61000 - 32768 + 1;
    // In range by the modulo: 32768 + (h % 28233) <= 61000.
    32768 + u16::try_from(h % range).unwrap_or(0)
}

/// Sizes of the outer headers for one packet.
#[derive(Debug, Clone, Copy)]
struct Layout {
    ipv6: bool,
    ip_len: usize,
    /// GRE (else UDP).
    gre: bool,
    /// IP payload length: UDP length (header, tunnel header, options,
    /// inner frame), or GRE header and inner frame.
    l4_len: u16,
    /// All outer header bytes.
    total: usize,
}

/// Check `e` for an inner frame of `inner_len` bytes.
fn layout(e: &Encap<'_>, inner_len: usize) -> Result<Layout, EncapError> {
    let opts = e.geneve_opts.len();
    if (e.kind != TunnelKind::Geneve && opts != 0) || opts % 4 != 0 || opts > geneve::MAX_OPTS_LEN {
        return Err(EncapError::BadOptions(opts));
    }
    let ipv6 = match (e.src, e.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => false,
        (IpAddr::V6(_), IpAddr::V6(_)) => true,
        _ => return Err(EncapError::MixedFamilies),
    };
    if inner_len < MIN_INNER {
        return Err(EncapError::InnerTooShort(inner_len));
    }
    let gre = e.kind == TunnelKind::Gre;
    let (udp, tnl_len) = match gre {
        true => (0, gre::header_len(e.csum)),
        false => (UDP_LEN, e.kind.header_len() + opts),
    };
    let l4_len = udp + tnl_len + inner_len;
    let ip_len = if ipv6 { IPV6_LEN } else { IPV4_LEN };
    let total = ETH_LEN + ip_len + udp + tnl_len;
    let ip_total = l4_len + if ipv6 { 0 } else { IPV4_LEN };
    if ip_total > usize::from(u16::MAX) || total + inner_len > MAX_FRAME {
        return Err(EncapError::TooLong(l4_len + ip_len));
    }
    Ok(Layout {
        ipv6,
        ip_len,
        gre,
        // Checked just above: fits in u16.
        l4_len: u16::try_from(l4_len).unwrap_or(u16::MAX),
        total,
    })
}

/// Write the outer headers (`l.total` bytes at the start of `frame`, the
/// inner frame after them) and the UDP checksum if asked for.
fn write_headers(frame: &mut [u8], e: &Encap<'_>, l: &Layout) {
    let udp_src = match e.udp_src {
        0 => flow_udp_src(&frame[l.total..]),
        p => p,
    };
    let proto = if l.gre { gre::PROTO_GRE } else { PROTO_UDP };
    let hdr = &mut frame[..l.total];
    hdr[0..6].copy_from_slice(&e.dst_mac);
    hdr[6..12].copy_from_slice(&e.src_mac);
    match (e.src, e.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            hdr[12..14].copy_from_slice(&[0x08, 0x00]);
            let ip = &mut hdr[ETH_LEN..ETH_LEN + IPV4_LEN];
            ip[0] = 0x45;
            ip[1] = e.tos;
            ip[2..4].copy_from_slice(&(l.l4_len + IPV4_LEN as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&e.ip_id.to_be_bytes());
            ip[6..8].copy_from_slice(&if e.df { [0x40, 0] } else { [0, 0] });
            ip[8] = e.ttl;
            ip[9] = proto;
            ip[10..12].copy_from_slice(&[0, 0]);
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = csum::checksum(ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            hdr[12..14].copy_from_slice(&[0x86, 0xdd]);
            let ip = &mut hdr[ETH_LEN..ETH_LEN + IPV6_LEN];
            let flow = u32::from(udp_src) & 0xf_ffff;
            let w = (6u32 << 28) | (u32::from(e.tos) << 20) | flow;
            ip[0..4].copy_from_slice(&w.to_be_bytes());
            ip[4..6].copy_from_slice(&l.l4_len.to_be_bytes());
            ip[6] = proto;
            ip[7] = e.ttl;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
        }
        _ => unreachable_families(),
    }
    let l4 = ETH_LEN + l.ip_len;
    if l.gre {
        // The key carries the VNI; the checksum covers the inner frame.
        gre::emit(&mut frame[l4..], e.vni, e.csum);
        return;
    }
    let udp = &mut hdr[l4..l4 + UDP_LEN];
    udp[0..2].copy_from_slice(&udp_src.to_be_bytes());
    udp[2..4].copy_from_slice(&e.udp_dst.to_be_bytes());
    udp[4..6].copy_from_slice(&l.l4_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    let t = &mut hdr[l4 + UDP_LEN..];
    match e.kind {
        TunnelKind::Vxlan => vxlan::emit(t, e.vni),
        TunnelKind::Geneve => geneve::emit(t, e.vni, e.geneve_opts, e.oam),
        TunnelKind::Gre => {}
    }
    if e.csum {
        fill_udp_csum(frame, l4, l.ipv6);
    }
}

/// Wrap `pkt`'s frame (an Ethernet frame) in the outer headers `e` asks
/// for, in place (in front of the frame, from the headroom). A partial
/// inner L4 checksum is completed first (the underlay gets no checksum
/// offload for the inner packet). On error the packet is unchanged.
pub fn encapsulate(pkt: &mut Packet, e: &Encap<'_>) -> Result<(), EncapError> {
    if pkt.gso.is_some() {
        return Err(EncapError::SuperFrame);
    }
    let l = layout(e, pkt.len())?;
    if let Csum::Partial { start, offset } = pkt.csum {
        csum::complete_partial(pkt.data_mut(), start, offset);
        pkt.csum = Csum::None;
    }
    pkt.push_front(l.total);
    write_headers(pkt.data_mut(), e, &l);
    Ok(())
}

/// [`encapsulate`] `inner` into `out` (whose frame and metadata are
/// replaced): one copy of the frame, whatever the headroom.
pub fn encapsulate_into(out: &mut Packet, inner: &Packet, e: &Encap<'_>) -> Result<(), EncapError> {
    if inner.gso.is_some() {
        return Err(EncapError::SuperFrame);
    }
    let l = layout(e, inner.len())?;
    out.reset();
    let frame = out.resize(l.total + inner.len());
    frame[l.total..].copy_from_slice(inner.data());
    if let Csum::Partial { start, offset } = inner.csum {
        csum::complete_partial(&mut frame[l.total..], start, offset);
    }
    write_headers(frame, e, &l);
    Ok(())
}

/// Only reached if the family check in [`encapsulate`] were wrong; keeps
/// the match total without a panic.
#[cold]
fn unreachable_families() {
    tracing::error!("tunnel: mixed address families reached header emission");
}

/// Fill the UDP checksum of the outer frame whose UDP header is at `l4`.
fn fill_udp_csum(frame: &mut [u8], l4: usize, ipv6: bool) {
    let udp_len = frame.len() - l4;
    let len32 = u32::try_from(udp_len).unwrap_or(u32::MAX);
    let ps = if ipv6 {
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&frame[ETH_LEN + 8..ETH_LEN + 24]);
        d.copy_from_slice(&frame[ETH_LEN + 24..ETH_LEN + 40]);
        csum::pseudo_v6(s, d, PROTO_UDP, len32)
    } else {
        let mut s = [0u8; 4];
        let mut d = [0u8; 4];
        s.copy_from_slice(&frame[ETH_LEN + 12..ETH_LEN + 16]);
        d.copy_from_slice(&frame[ETH_LEN + 16..ETH_LEN + 20]);
        csum::pseudo_v4(s, d, PROTO_UDP, len32)
    };
    let c = !csum::fold(csum::sum(&frame[l4..], ps));
    // RFC 768: a computed 0 is sent as 0xffff.
    let c = if c == 0 { 0xffff } else { c };
    frame[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
}

/// Why an outer frame was refused. Every variant has a counter in
/// [`DecapCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecapError {
    /// Shorter than its headers say or need.
    #[error("truncated outer header")]
    Truncated,
    /// IPv4 version/IHL, or total or payload length that lies.
    #[error("bad outer IP header")]
    BadIpHeader,
    /// IPv4 header checksum wrong.
    #[error("bad outer IPv4 header checksum")]
    BadIpChecksum,
    /// A fragment (the tunnel header may not be in it; OVS does not
    /// reassemble outer fragments either).
    #[error("outer IP fragment")]
    Fragment,
    /// UDP length that lies.
    #[error("bad outer UDP length")]
    BadUdpLength,
    /// UDP checksum present and wrong (or zero over IPv6, RFC 8200 §8.1).
    #[error("bad outer UDP checksum")]
    BadUdpChecksum,
    /// VXLAN I flag clear.
    #[error("VXLAN header without the I flag")]
    VxlanFlags,
    /// Geneve version other than 0.
    #[error("unknown Geneve version")]
    GeneveVersion,
    /// Geneve protocol type other than Transparent Ethernet Bridging.
    #[error("Geneve payload is not Ethernet")]
    GeneveProtocol,
    /// Geneve options that do not parse (an option running past the
    /// options length).
    #[error("malformed Geneve options")]
    GeneveOptions,
    /// Geneve critical options this switch does not know (RFC 8926 §3.5:
    /// the packet must be dropped).
    #[error("unknown critical Geneve option")]
    GeneveCritical,
    /// The inner frame is shorter than an Ethernet header.
    #[error("inner frame too short")]
    InnerTooShort,
    /// GRE version other than 0, or the routing bit.
    #[error("bad GRE header")]
    GreHeader,
    /// GRE payload not Ethernet.
    #[error("GRE payload is not Ethernet")]
    GreProtocol,
    /// GRE checksum wrong.
    #[error("bad GRE checksum")]
    GreChecksum,
}

/// Refusal counters, one per [`DecapError`] variant, plus packets
/// decapsulated. Relaxed atomics: shared between the forwarding thread
/// and whoever shows them.
#[derive(Debug, Default)]
pub struct DecapCounters {
    /// Packets decapsulated.
    pub ok: AtomicU64,
    /// [`DecapError::Truncated`].
    pub truncated: AtomicU64,
    /// [`DecapError::BadIpHeader`].
    pub bad_ip_header: AtomicU64,
    /// [`DecapError::BadIpChecksum`].
    pub bad_ip_checksum: AtomicU64,
    /// [`DecapError::Fragment`].
    pub fragment: AtomicU64,
    /// [`DecapError::BadUdpLength`].
    pub bad_udp_length: AtomicU64,
    /// [`DecapError::BadUdpChecksum`].
    pub bad_udp_checksum: AtomicU64,
    /// [`DecapError::VxlanFlags`].
    pub vxlan_flags: AtomicU64,
    /// [`DecapError::GeneveVersion`].
    pub geneve_version: AtomicU64,
    /// [`DecapError::GeneveProtocol`].
    pub geneve_protocol: AtomicU64,
    /// [`DecapError::GeneveOptions`].
    pub geneve_options: AtomicU64,
    /// [`DecapError::GeneveCritical`].
    pub geneve_critical: AtomicU64,
    /// [`DecapError::InnerTooShort`].
    pub inner_too_short: AtomicU64,
    /// [`DecapError::GreHeader`].
    pub gre_header: AtomicU64,
    /// [`DecapError::GreProtocol`].
    pub gre_protocol: AtomicU64,
    /// [`DecapError::GreChecksum`].
    pub gre_checksum: AtomicU64,
}

impl DecapCounters {
    /// Count a refusal.
    pub fn count(&self, e: DecapError) {
        self.counter(e).fetch_add(1, Ordering::Relaxed);
    }

    fn counter(&self, e: DecapError) -> &AtomicU64 {
        match e {
            DecapError::Truncated => &self.truncated,
            DecapError::BadIpHeader => &self.bad_ip_header,
            DecapError::BadIpChecksum => &self.bad_ip_checksum,
            DecapError::Fragment => &self.fragment,
            DecapError::BadUdpLength => &self.bad_udp_length,
            DecapError::BadUdpChecksum => &self.bad_udp_checksum,
            DecapError::VxlanFlags => &self.vxlan_flags,
            DecapError::GeneveVersion => &self.geneve_version,
            DecapError::GeneveProtocol => &self.geneve_protocol,
            DecapError::GeneveOptions => &self.geneve_options,
            DecapError::GeneveCritical => &self.geneve_critical,
            DecapError::InnerTooShort => &self.inner_too_short,
            DecapError::GreHeader => &self.gre_header,
            DecapError::GreProtocol => &self.gre_protocol,
            DecapError::GreChecksum => &self.gre_checksum,
        }
    }

    /// `(name, value)` of every counter, for `ovs-appctl` and metrics.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let v = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("decapsulated", v(&self.ok)),
            ("truncated", v(&self.truncated)),
            ("bad_ip_header", v(&self.bad_ip_header)),
            ("bad_ip_checksum", v(&self.bad_ip_checksum)),
            ("fragment", v(&self.fragment)),
            ("bad_udp_length", v(&self.bad_udp_length)),
            ("bad_udp_checksum", v(&self.bad_udp_checksum)),
            ("vxlan_flags", v(&self.vxlan_flags)),
            ("geneve_version", v(&self.geneve_version)),
            ("geneve_protocol", v(&self.geneve_protocol)),
            ("geneve_options", v(&self.geneve_options)),
            ("geneve_critical", v(&self.geneve_critical)),
            ("inner_too_short", v(&self.inner_too_short)),
            ("gre_header", v(&self.gre_header)),
            ("gre_protocol", v(&self.gre_protocol)),
            ("gre_checksum", v(&self.gre_checksum)),
        ]
    }
}

/// The outer IP and UDP headers of a frame addressed to a UDP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OuterUdp {
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// TOS / traffic class.
    pub tos: u8,
    /// TTL / hop limit.
    pub ttl: u8,
    /// UDP source port.
    pub udp_src: u16,
    /// UDP destination port.
    pub udp_dst: u16,
    /// Offset of the UDP payload in the frame.
    pub payload: usize,
    /// Length of the UDP payload (the frame may carry Ethernet padding
    /// after it).
    pub payload_len: usize,
}

/// If `frame` is an untagged Ethernet frame carrying IPv4 or IPv6 and UDP,
/// its outer headers, validated (lengths, IPv4 header checksum, no
/// fragment, UDP checksum if present). `Ok(None)`: not IP/UDP at all (not
/// a tunnel packet, nothing to count).
pub fn parse_outer_udp(frame: &[u8]) -> Result<Option<OuterUdp>, DecapError> {
    parse_outer_udp_csum(frame, Csum::None)
}

/// [`parse_outer_udp`] for a packet whose checksum state the port
/// reported as `csum`: a [`Csum::Validated`] or [`Csum::Partial`] UDP
/// checksum (the sender's stack vouches for it, or has not filled it in
/// yet, as Linux `CHECKSUM_PARTIAL` over a veth) is not verified again.
pub fn parse_outer_udp_csum(frame: &[u8], csum: Csum) -> Result<Option<OuterUdp>, DecapError> {
    let trusted = !matches!(csum, Csum::None);
    let Some(ip) = parse_outer_ip(frame, PROTO_UDP)? else {
        return Ok(None);
    };
    let OuterIp {
        src,
        dst,
        tos,
        ttl,
        l4_off,
        l4_len,
        ipv6,
    } = ip;
    let l4 = &frame[l4_off..l4_off + l4_len];
    if l4.len() < UDP_LEN {
        return Err(DecapError::Truncated);
    }
    let ulen = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
    if ulen < UDP_LEN || ulen > l4.len() {
        return Err(DecapError::BadUdpLength);
    }
    let udp = &l4[..ulen];
    let c = u16::from_be_bytes([udp[6], udp[7]]);
    if !trusted && (c != 0 || ipv6) {
        let len32 = u32::try_from(ulen).unwrap_or(u32::MAX);
        let ps = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                csum::pseudo_v4(s.octets(), d.octets(), PROTO_UDP, len32)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                csum::pseudo_v6(s.octets(), d.octets(), PROTO_UDP, len32)
            }
            _ => 0,
        };
        // A zero checksum over IPv6 is refused unless the receiver opted
        // in (RFC 6935); xennet does not.
        if c == 0 || csum::fold(csum::sum(udp, ps)) != 0xffff {
            return Err(DecapError::BadUdpChecksum);
        }
    }
    Ok(Some(OuterUdp {
        src,
        dst,
        tos,
        ttl,
        udp_src: u16::from_be_bytes([udp[0], udp[1]]),
        udp_dst: u16::from_be_bytes([udp[2], udp[3]]),
        payload: l4_off + UDP_LEN,
        payload_len: ulen - UDP_LEN,
    }))
}

/// If `frame` carries GRE over IPv4 or IPv6, its outer headers as an
/// [`OuterUdp`] with UDP ports 0 and the payload at the GRE header.
pub fn parse_outer_gre(frame: &[u8]) -> Result<Option<OuterUdp>, DecapError> {
    Ok(parse_outer_ip(frame, gre::PROTO_GRE)?.map(|ip| OuterUdp {
        src: ip.src,
        dst: ip.dst,
        tos: ip.tos,
        ttl: ip.ttl,
        udp_src: 0,
        udp_dst: 0,
        payload: ip.l4_off,
        payload_len: ip.l4_len,
    }))
}

/// The outer IP header of a frame carrying a given protocol.
#[derive(Debug, Clone, Copy)]
struct OuterIp {
    src: IpAddr,
    dst: IpAddr,
    tos: u8,
    ttl: u8,
    l4_off: usize,
    l4_len: usize,
    ipv6: bool,
}

/// Validate the outer IPv4/IPv6 header of `frame` if it carries `proto`
/// (lengths, IPv4 header checksum, no fragment); `Ok(None)` for anything
/// else. The returned payload lies inside the frame.
fn parse_outer_ip(frame: &[u8], proto: u8) -> Result<Option<OuterIp>, DecapError> {
    let Some(et) = frame.get(12..14) else {
        return Ok(None);
    };
    let (ipv6, l3) = match et {
        [0x08, 0x00] => (false, &frame[ETH_LEN..]),
        [0x86, 0xdd] => (true, &frame[ETH_LEN..]),
        _ => return Ok(None),
    };
    let (src, dst, tos, ttl, l4_off, l4_len) = if ipv6 {
        if l3.len() < IPV6_LEN {
            return Err(DecapError::Truncated);
        }
        if l3[0] >> 4 != 6 {
            return Err(DecapError::BadIpHeader);
        }
        if l3[6] != proto {
            // Extension headers before UDP/GRE are not tunnel packets here.
            return Ok(None);
        }
        let plen = usize::from(u16::from_be_bytes([l3[4], l3[5]]));
        if plen > l3.len() - IPV6_LEN {
            return Err(DecapError::BadIpHeader);
        }
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&l3[8..24]);
        d.copy_from_slice(&l3[24..40]);
        let tc = ((l3[0] & 0x0f) << 4) | (l3[1] >> 4);
        (
            IpAddr::from(s),
            IpAddr::from(d),
            tc,
            l3[7],
            ETH_LEN + IPV6_LEN,
            plen,
        )
    } else {
        if l3.len() < IPV4_LEN {
            return Err(DecapError::Truncated);
        }
        let ihl = usize::from(l3[0] & 0x0f) * 4;
        if l3[0] >> 4 != 4 || ihl < IPV4_LEN {
            return Err(DecapError::BadIpHeader);
        }
        if l3[9] != proto {
            return Ok(None);
        }
        let total = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
        if l3.len() < ihl {
            return Err(DecapError::Truncated);
        }
        if total < ihl || total > l3.len() {
            return Err(DecapError::BadIpHeader);
        }
        if csum::checksum(&l3[..ihl]) != 0 {
            return Err(DecapError::BadIpChecksum);
        }
        let fl = u16::from_be_bytes([l3[6], l3[7]]);
        if fl & 0x3fff != 0 {
            return Err(DecapError::Fragment);
        }
        let s: [u8; 4] = [l3[12], l3[13], l3[14], l3[15]];
        let d: [u8; 4] = [l3[16], l3[17], l3[18], l3[19]];
        (
            IpAddr::from(s),
            IpAddr::from(d),
            l3[1],
            l3[8],
            ETH_LEN + ihl,
            total - ihl,
        )
    };
    Ok(Some(OuterIp {
        src,
        dst,
        tos,
        ttl,
        l4_off,
        l4_len,
        ipv6,
    }))
}

/// A decapsulated packet: its tunnel metadata, the inner frame's place in
/// the outer frame, and (Geneve) where its options are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decap {
    /// Tunnel metadata for the inner packet (`tun_id`, `tun_src`,
    /// `tun_dst`, `tun_flags`, tos, ttl, UDP ports).
    pub tunnel: TunnelMeta,
    /// Offset of the inner Ethernet frame.
    pub inner: usize,
    /// Length of the inner frame.
    pub inner_len: usize,
    /// Offset and length of the Geneve options (0, 0 for VXLAN).
    pub opts: (usize, usize),
}

/// Decapsulate `frame` whose outer headers are `outer` as a `kind`
/// tunnel packet. `known_option(class, type)` says which Geneve options
/// the switch understands: a critical option it does not know refuses the
/// packet (RFC 8926 §3.5); unknown non-critical ones are skipped.
pub fn decapsulate(
    frame: &[u8],
    outer: &OuterUdp,
    kind: TunnelKind,
    known_option: &dyn Fn(u16, u8) -> bool,
) -> Result<Decap, DecapError> {
    let payload = frame
        .get(outer.payload..outer.payload + outer.payload_len)
        .ok_or(DecapError::Truncated)?;
    let (vni, hdr_len, opts, flags) = match kind {
        TunnelKind::Vxlan => {
            let h = vxlan::parse(payload)?;
            (h, vxlan::HEADER_LEN, (0, 0), 0)
        }
        TunnelKind::Gre => {
            let (len, key) = gre::parse(payload)?;
            (key, len, (0, 0), 0)
        }
        TunnelKind::Geneve => {
            let h = geneve::parse(payload, known_option)?;
            let flags = if h.oam { TNL_F_OAM } else { 0 };
            (
                h.vni,
                geneve::HEADER_LEN + h.opts_len,
                (outer.payload + geneve::HEADER_LEN, h.opts_len),
                flags,
            )
        }
    };
    let inner_len = outer.payload_len - hdr_len;
    if inner_len < MIN_INNER {
        return Err(DecapError::InnerTooShort);
    }
    Ok(Decap {
        tunnel: TunnelMeta {
            id: u64::from(vni),
            src: addr_to_u128(outer.src),
            dst: addr_to_u128(outer.dst),
            flags,
            tos: outer.tos,
            ttl: outer.ttl,
            tp_src: outer.udp_src,
            tp_dst: outer.udp_dst,
            ..TunnelMeta::default()
        },
        inner: outer.payload + hdr_len,
        inner_len,
        opts,
    })
}

#[cfg(test)]
mod tests;
