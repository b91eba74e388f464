//! Flow keys and masks.
//!
//! A [`FlowKey`] is the datapath's view of the headers that matter for
//! forwarding, stored like OVS's miniflow but simpler: a fixed array of
//! [`N_WORDS`] `u64` words, so that masking, comparing and hashing are
//! plain word loops. A [`FlowMask`] has the same shape; a 1-bit means the
//! bit is significant (OVS `struct flow_wildcards`).
//!
//! Field semantics follow OVS `struct flow` (`lib/flow.h`, `lib/packets.h`):
//! - `vlan_tci` holds the outer tag's TCI with the CFI/DEI bit (0x1000)
//!   forced to 1 as a "tag present" marker, so an untagged frame (0) differs
//!   from a tagged frame with VID 0 (0x1000). The frame's own DEI bit is
//!   not represented, as in OVS before 2.8.
//! - `vlan_tpid`/`vlan_tpid1` hold the TPIDs (0x8100 or 0x88a8) of the
//!   outer and inner tags, 0 where there is no tag (OVS
//!   `flow.vlans[i].tpid`). No OpenFlow field matches them; megaflows
//!   always match them exactly, as OVS datapath keys carry the outer
//!   EtherType of every tag.
//! - `dl_type` is the EtherType after the outer VLAN tag; 0x05ff
//!   (`FLOW_DL_TYPE_NONE`) for 802.3 length-field frames.
//! - `nw_src`/`nw_dst` hold IPv4 addresses (in the low 32 bits), IPv6
//!   addresses, or ARP SPA/TPA; for ARP `nw_proto` is the opcode's low byte.
//! - `nw_tos` is the whole TOS/traffic-class byte (DSCP and ECN); `nw_frag`
//!   uses OVS's `FLOW_NW_FRAG_ANY` (1) and `FLOW_NW_FRAG_LATER` (2) bits.
//! - `tp_src`/`tp_dst` hold TCP, UDP and SCTP ports, or ICMP/ICMPv6 type
//!   and code.

mod display;
mod extract;
mod minimatch;

pub use display::{DpctlFmt, MatchFmt, CT_STATE_NAMES};
pub use extract::{
    effective_vlan_limit, extract, extract_frame, extract_frame_vlans, set_metadata,
    set_vlan_limit, vlan_limit, MAX_VLAN_HEADERS,
};
pub use minimatch::MiniMatch;

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::buffer::OfPort;
use crate::packet::MacAddr;

/// Number of 64-bit words in a key or mask.
pub const N_WORDS: usize = 43;

/// Bytes of Geneve option data a key holds ([`Field::TunOpts`]; OVS
/// holds `TUN_METADATA_TOT_OPT_SIZE`, 256).
pub const TUN_OPT_SPACE: usize = 32;

/// Words that hold the classic packet headers (in_port to tcp_flags):
/// what the exact-match cache hashes and stores as they are (it compares
/// every word).
pub const N_PACKET_WORDS: usize = 8;

/// OVS `VLAN_CFI`: the "tag present" bit of `vlan_tci`.
pub const VLAN_CFI: u16 = 0x1000;
/// The VID bits of `vlan_tci`.
pub const VLAN_VID_MASK: u16 = 0x0fff;
/// The PCP bits of `vlan_tci`.
pub const VLAN_PCP_MASK: u16 = 0xe000;
/// OVS `FLOW_DL_TYPE_NONE`: dl_type of frames without an EtherType.
pub const DL_TYPE_NONE: u16 = 0x05ff;
/// `nw_frag` bit: the packet is a fragment.
pub const NW_FRAG_ANY: u8 = 1;
/// `nw_frag` bit: the packet is a fragment other than the first.
pub const NW_FRAG_LATER: u8 = 2;

/// Number of 32-bit registers (`reg0`..`reg15`, OVS `FLOW_N_REGS`).
pub const N_REGS: u8 = 16;

/// A field of the flow key.
///
/// Besides the packet headers the key holds, as OVS `struct flow` does,
/// the pipeline's registers and metadata (zero when a packet enters the
/// datapath; only translation sets them, so megaflows never match on them,
/// see [`FlowMask::datapath_only`]), the tunnel metadata of a decapsulated
/// packet, connection-tracking state, the packet mark, the recirculation
/// id and the datapath hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// Input port (32 bits).
    InPort,
    /// Ethernet source (48 bits).
    DlSrc,
    /// Ethernet destination (48 bits).
    DlDst,
    /// VLAN TCI with the presence bit (16 bits).
    VlanTci,
    /// EtherType (16 bits).
    DlType,
    /// IPv4/IPv6 source or ARP SPA (128 bits).
    NwSrc,
    /// IPv4/IPv6 destination or ARP TPA (128 bits).
    NwDst,
    /// IP protocol or ARP opcode (8 bits).
    NwProto,
    /// TOS / traffic class (8 bits).
    NwTos,
    /// TTL / hop limit (8 bits).
    NwTtl,
    /// Fragment bits (8 bits).
    NwFrag,
    /// L4 source port or ICMP type (16 bits).
    TpSrc,
    /// L4 destination port or ICMP code (16 bits).
    TpDst,
    /// TCP flags (12 bits used).
    TcpFlags,
    /// OpenFlow metadata (`OXM_OF_METADATA`, 64 bits; pipeline only).
    Metadata,
    /// Register `reg<n>` (`NXM_NX_REG<n>`, 32 bits, n < 16; pipeline
    /// only). `xreg<k>` is `reg<2k>` (high half) and `reg<2k+1>`.
    Reg(u8),
    /// `xreg<k>` (`OXM_OF_PKT_REG<k>`, 64 bits, k < 8): two registers.
    Xreg(u8),
    /// `xxreg<k>` (`NXM_NX_XXREG<k>`, 128 bits, k < 4): four registers.
    Xxreg(u8),
    /// Tunnel id / VNI (`NXM_NX_TUN_ID`, 64 bits).
    TunId,
    /// Tunnel outer source, IPv4 in the low 32 bits or IPv6 (128 bits).
    TunSrc,
    /// Tunnel outer destination (128 bits, as [`Field::TunSrc`]).
    TunDst,
    /// Tunnel flags (`NXM_NX_TUN_FLAGS`: bit 0 = OAM; 16 bits).
    TunFlags,
    /// Connection state (`NXM_NX_CT_STATE`, `CS_*` bits; 32 bits).
    CtState,
    /// Conntrack zone (16 bits).
    CtZone,
    /// Conntrack mark (32 bits).
    CtMark,
    /// Conntrack label (128 bits).
    CtLabel,
    /// Original-direction source address of the connection (128 bits).
    CtNwSrc,
    /// Original-direction destination address (128 bits).
    CtNwDst,
    /// Original-direction IP protocol (8 bits).
    CtNwProto,
    /// Original-direction L4 source port (16 bits).
    CtTpSrc,
    /// Original-direction L4 destination port (16 bits).
    CtTpDst,
    /// Packet mark (`NXM_NX_PKT_MARK`, Linux skb mark; 32 bits).
    PktMark,
    /// Recirculation id (`NXM_NX_RECIRC_ID`; 0 on first pass; 32 bits).
    RecircId,
    /// Datapath hash (`NXM_NX_DP_HASH`, 32 bits).
    DpHash,
    /// Conjunctive match id (`NXM_NX_CONJ_ID`, 32 bits; pipeline only).
    ConjId,
    /// IPv6 flow label (20 bits).
    Ipv6Label,
    /// Outer MPLS label (20 bits).
    MplsLabel,
    /// Outer MPLS traffic class (3 bits).
    MplsTc,
    /// Outer MPLS bottom-of-stack bit (1 bit).
    MplsBos,
    /// Outer MPLS TTL (8 bits).
    MplsTtl,
    /// ARP sender hardware address, or the ND source link-layer address
    /// option (`nd_sll`) (48 bits).
    ArpSha,
    /// ARP target hardware address, or the ND target link-layer address
    /// option (`nd_tll`) (48 bits).
    ArpTha,
    /// ND target address (128 bits).
    NdTarget,
    /// ND reserved word (`NXM_NX_ND_RESERVED`, 32 bits).
    NdReserved,
    /// Type of the ND option (`NXM_NX_ND_OPTIONS_TYPE`, 8 bits).
    NdOptionsType,
    /// Inner VLAN TCI of a double-tagged frame, with the presence bit
    /// (16 bits; OVS `flow.vlans[1]`).
    Vlan2Tci,
    /// Tunnel option data (OVS `flow_tnl.metadata.opts`): bytes
    /// `16 n .. 16 n + 16` of the [`TUN_OPT_SPACE`] bytes, big-endian (128
    /// bits, n < 2); where each `tun_metadata<i>` lies is the bridge's
    /// TLV map's choice.
    TunOpts(u8),
    /// Which `tun_metadata<i>` the packet carries (OVS
    /// `metadata.present.map`; bit i; 64 bits).
    TunMdPresent,
    /// TPID of the outer VLAN tag, 0x8100 or 0x88a8; 0 when untagged
    /// (16 bits; OVS `flow.vlans[0].tpid`; no OpenFlow field).
    VlanTpid,
    /// TPID of the inner VLAN tag (16 bits; OVS `flow.vlans[1].tpid`).
    Vlan2Tpid,
}

impl Field {
    /// Every field (aliases such as `xreg`/`xxreg` left out), in display
    /// order.
    pub const ALL: [Field; 61] = [
        Field::RecircId,
        Field::DpHash,
        Field::ConjId,
        Field::PktMark,
        Field::CtState,
        Field::CtZone,
        Field::CtMark,
        Field::CtLabel,
        Field::CtNwSrc,
        Field::CtNwDst,
        Field::CtNwProto,
        Field::CtTpSrc,
        Field::CtTpDst,
        Field::TunId,
        Field::TunSrc,
        Field::TunDst,
        Field::TunFlags,
        Field::Metadata,
        Field::Reg(0),
        Field::Reg(1),
        Field::Reg(2),
        Field::Reg(3),
        Field::Reg(4),
        Field::Reg(5),
        Field::Reg(6),
        Field::Reg(7),
        Field::Reg(8),
        Field::Reg(9),
        Field::Reg(10),
        Field::Reg(11),
        Field::Reg(12),
        Field::Reg(13),
        Field::Reg(14),
        Field::Reg(15),
        Field::InPort,
        Field::VlanTci,
        Field::Vlan2Tci,
        Field::VlanTpid,
        Field::Vlan2Tpid,
        Field::DlSrc,
        Field::DlDst,
        Field::DlType,
        Field::MplsLabel,
        Field::MplsTc,
        Field::MplsBos,
        Field::MplsTtl,
        Field::NwSrc,
        Field::NwDst,
        Field::Ipv6Label,
        Field::NwProto,
        Field::NwTos,
        Field::NwTtl,
        Field::NwFrag,
        Field::ArpSha,
        Field::ArpTha,
        Field::TpSrc,
        Field::TpDst,
        Field::TcpFlags,
        Field::NdTarget,
        Field::NdReserved,
        Field::NdOptionsType,
    ];

    /// The connection-tracking fields (what `ct_clear` clears).
    pub const CT: [Field; 9] = [
        Field::CtState,
        Field::CtZone,
        Field::CtMark,
        Field::CtLabel,
        Field::CtNwSrc,
        Field::CtNwDst,
        Field::CtNwProto,
        Field::CtTpSrc,
        Field::CtTpDst,
    ];

    /// `(word, shift, bits)`; 128-bit fields span `word` (high) and
    /// `word + 1` (low). Out-of-range register numbers wrap (callers
    /// check them: [`N_REGS`]).
    #[inline(always)]
    const fn layout(self) -> (usize, u32, u32) {
        match self {
            Field::InPort => (0, 32, 32),
            Field::DlType => (0, 16, 16),
            Field::VlanTci => (0, 0, 16),
            Field::DlDst => (1, 16, 48),
            Field::NwProto => (1, 8, 8),
            Field::NwTos => (1, 0, 8),
            Field::DlSrc => (2, 16, 48),
            Field::NwTtl => (2, 8, 8),
            Field::NwFrag => (2, 0, 8),
            Field::NwSrc => (3, 0, 128),
            Field::NwDst => (5, 0, 128),
            Field::TpSrc => (7, 48, 16),
            Field::TpDst => (7, 32, 16),
            Field::TcpFlags => (7, 16, 16),
            Field::Vlan2Tci => (7, 0, 16),
            Field::Metadata => (8, 0, 64),
            Field::Reg(n) => {
                let n = (n % N_REGS) as usize;
                (9 + n / 2, if n % 2 == 0 { 32 } else { 0 }, 32)
            }
            Field::Xreg(k) => (9 + (k % 8) as usize, 0, 64),
            Field::Xxreg(k) => (9 + 2 * (k % 4) as usize, 0, 128),
            Field::TunId => (17, 0, 64),
            Field::TunSrc => (18, 0, 128),
            Field::TunDst => (20, 0, 128),
            Field::TunFlags => (22, 48, 16),
            Field::CtZone => (22, 32, 16),
            Field::CtState => (22, 0, 32),
            Field::PktMark => (23, 32, 32),
            Field::RecircId => (23, 0, 32),
            Field::DpHash => (24, 32, 32),
            Field::ConjId => (24, 0, 32),
            Field::CtMark => (25, 32, 32),
            Field::Ipv6Label => (25, 0, 20),
            Field::CtLabel => (26, 0, 128),
            Field::CtNwSrc => (28, 0, 128),
            Field::CtNwDst => (30, 0, 128),
            Field::CtTpSrc => (32, 48, 16),
            Field::CtTpDst => (32, 32, 16),
            Field::MplsLabel => (32, 12, 20),
            Field::MplsTc => (32, 9, 3),
            Field::MplsBos => (32, 8, 1),
            Field::MplsTtl => (32, 0, 8),
            Field::ArpSha => (33, 16, 48),
            Field::CtNwProto => (33, 8, 8),
            Field::NdOptionsType => (33, 0, 8),
            Field::ArpTha => (34, 16, 48),
            Field::NdTarget => (35, 0, 128),
            Field::NdReserved => (37, 32, 32),
            Field::VlanTpid => (37, 16, 16),
            Field::Vlan2Tpid => (37, 0, 16),
            Field::TunOpts(n) => (38 + 2 * (n % 2) as usize, 0, 128),
            Field::TunMdPresent => (42, 0, 64),
        }
    }

    /// Index of the (first) word the field lies in.
    pub const fn word(self) -> usize {
        self.layout().0
    }

    /// Whether only translation sets this field (registers, metadata,
    /// `conj_id`): it is zero in every packet's datapath key.
    pub const fn is_pipeline_only(self) -> bool {
        matches!(
            self,
            Field::Metadata | Field::Reg(_) | Field::Xreg(_) | Field::Xxreg(_) | Field::ConjId
        )
    }

    /// Width in bits.
    pub const fn bits(self) -> u32 {
        self.layout().2
    }

    /// All-ones value of the field's width.
    pub const fn all_ones(self) -> u128 {
        let b = self.bits();
        if b == 128 {
            u128::MAX
        } else {
            (1u128 << b) - 1
        }
    }
}

#[inline(always)]
fn get_field(w: &[u64; N_WORDS], f: Field) -> u128 {
    let (i, shift, bits) = f.layout();
    if bits == 128 {
        (u128::from(w[i]) << 64) | u128::from(w[i + 1])
    } else {
        u128::from((w[i] >> shift) & (u64::MAX >> (64 - bits)))
    }
}

#[inline(always)]
fn set_field(w: &mut [u64; N_WORDS], f: Field, v: u128) {
    let (i, shift, bits) = f.layout();
    if bits == 128 {
        w[i] = (v >> 64) as u64;
        w[i + 1] = v as u64;
    } else {
        let m = (u64::MAX >> (64 - bits)) << shift;
        w[i] = (w[i] & !m) | (((v as u64) << shift) & m);
    }
}

/// A flow key: the forwarding-relevant header fields of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The raw words (see the module docs for the layout).
    pub words: [u64; N_WORDS],
}

/// A mask over a [`FlowKey`]: 1-bits are significant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowMask {
    /// The raw words, same layout as [`FlowKey::words`].
    pub words: [u64; N_WORDS],
}

impl Default for FlowKey {
    fn default() -> Self {
        FlowKey {
            words: [0; N_WORDS],
        }
    }
}

impl Default for FlowMask {
    fn default() -> Self {
        FlowMask::CATCHALL
    }
}

macro_rules! int_accessors {
    ($($get:ident, $set:ident, $field:ident, $ty:ty, $doc:literal;)*) => {
        $(
            #[doc = concat!("The ", $doc, ".")]
            pub fn $get(&self) -> $ty {
                self.get(Field::$field) as $ty
            }

            #[doc = concat!("Set the ", $doc, ".")]
            pub fn $set(&mut self, v: $ty) {
                self.set(Field::$field, u128::from(v));
            }
        )*
    };
}

/// The fields of what follows the EtherType when it is IP, ARP or ND:
/// what an MPLS label hides (or unveils, unparsed) besides the label
/// stack entry ([`FlowKey::without_l3`]).
pub const L3_FIELDS: [Field; 15] = [
    Field::NwSrc,
    Field::NwDst,
    Field::NwProto,
    Field::NwTos,
    Field::NwTtl,
    Field::NwFrag,
    Field::TpSrc,
    Field::TpDst,
    Field::TcpFlags,
    Field::Ipv6Label,
    Field::ArpSha,
    Field::ArpTha,
    Field::NdTarget,
    Field::NdReserved,
    Field::NdOptionsType,
];

/// The fields of the outer MPLS label stack entry (RFC 3032: label,
/// traffic class, bottom of stack, TTL).
pub const MPLS_FIELDS: [Field; 4] = [
    Field::MplsLabel,
    Field::MplsTc,
    Field::MplsBos,
    Field::MplsTtl,
];

impl FlowKey {
    /// Raw value of a field.
    #[inline]
    pub fn get(&self, f: Field) -> u128 {
        get_field(&self.words, f)
    }

    /// Set a field (excess bits are cut).
    #[inline]
    pub fn set(&mut self, f: Field, v: u128) {
        set_field(&mut self.words, f, v)
    }

    int_accessors! {
        in_port, set_in_port, InPort, OfPort, "input port";
        vlan_tci, set_vlan_tci, VlanTci, u16, "VLAN TCI (with the 0x1000 presence bit)";
        dl_type, set_dl_type, DlType, u16, "EtherType";
        nw_proto, set_nw_proto, NwProto, u8, "IP protocol or ARP opcode";
        nw_tos, set_nw_tos, NwTos, u8, "TOS byte";
        nw_ttl, set_nw_ttl, NwTtl, u8, "TTL / hop limit";
        nw_frag, set_nw_frag, NwFrag, u8, "fragment bits";
        tp_src, set_tp_src, TpSrc, u16, "L4 source port / ICMP type";
        tp_dst, set_tp_dst, TpDst, u16, "L4 destination port / ICMP code";
        tcp_flags, set_tcp_flags, TcpFlags, u16, "TCP flags";
    }

    /// Ethernet source.
    pub fn dl_src(&self) -> MacAddr {
        MacAddr::from_u64(self.get(Field::DlSrc) as u64)
    }

    /// Set the Ethernet source.
    pub fn set_dl_src(&mut self, m: MacAddr) {
        self.set(Field::DlSrc, u128::from(m.to_u64()));
    }

    /// Ethernet destination.
    pub fn dl_dst(&self) -> MacAddr {
        MacAddr::from_u64(self.get(Field::DlDst) as u64)
    }

    /// Set the Ethernet destination.
    pub fn set_dl_dst(&mut self, m: MacAddr) {
        self.set(Field::DlDst, u128::from(m.to_u64()));
    }

    /// Whether the frame carried a VLAN tag.
    pub fn has_vlan(&self) -> bool {
        self.vlan_tci() & VLAN_CFI != 0
    }

    /// VLAN ID (0 when untagged).
    pub fn vlan_vid(&self) -> u16 {
        self.vlan_tci() & VLAN_VID_MASK
    }

    /// Source as IPv4 (low 32 bits of `nw_src`).
    pub fn nw_src_v4(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.get(Field::NwSrc) as u32)
    }

    /// Destination as IPv4.
    pub fn nw_dst_v4(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.get(Field::NwDst) as u32)
    }

    /// Source as IPv6.
    pub fn nw_src_v6(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.get(Field::NwSrc))
    }

    /// Destination as IPv6.
    pub fn nw_dst_v6(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.get(Field::NwDst))
    }

    /// Set an IPv4 source.
    pub fn set_nw_src_v4(&mut self, a: Ipv4Addr) {
        self.set(Field::NwSrc, u128::from(u32::from(a)));
    }

    /// Set an IPv4 destination.
    pub fn set_nw_dst_v4(&mut self, a: Ipv4Addr) {
        self.set(Field::NwDst, u128::from(u32::from(a)));
    }

    /// Set an IPv6 source.
    pub fn set_nw_src_v6(&mut self, a: Ipv6Addr) {
        self.set(Field::NwSrc, u128::from(a));
    }

    /// Set an IPv6 destination.
    pub fn set_nw_dst_v6(&mut self, a: Ipv6Addr) {
        self.set(Field::NwDst, u128::from(a));
    }

    /// This key with the pipeline-only fields (registers, metadata,
    /// `conj_id`) zero, as a packet enters the OpenFlow pipeline.
    pub fn without_pipeline_state(&self) -> FlowKey {
        let keep = FlowMask::EXACT.datapath_only();
        self.masked(&keep)
    }

    /// This key with only what lies before L3 kept (in_port, Ethernet,
    /// VLAN) and the pipeline, tunnel and conntrack state: what a frame
    /// looks like once an MPLS label hides (or unveils, unparsed) its L3
    /// headers.
    pub fn without_l3(&self) -> FlowKey {
        let mut k = *self;
        k.set(Field::DlType, 0);
        for f in L3_FIELDS.into_iter().chain(MPLS_FIELDS) {
            k.set(f, 0);
        }
        k
    }

    /// This key with the bits outside `mask` cleared.
    #[inline]
    pub fn masked(&self, mask: &FlowMask) -> FlowKey {
        let mut out = FlowKey::default();
        for i in 0..N_WORDS {
            out.words[i] = self.words[i] & mask.words[i];
        }
        out
    }

    /// Whether `self` and `other` agree on every bit of `mask`.
    #[inline]
    pub fn matches(&self, other: &FlowKey, mask: &FlowMask) -> bool {
        (0..N_WORDS).all(|i| (self.words[i] ^ other.words[i]) & mask.words[i] == 0)
    }

    /// Display in `ovs-ofctl` match style (every field that applies).
    pub fn display(&self) -> MatchFmt<'_> {
        MatchFmt {
            key: self,
            mask: None,
        }
    }

    /// Display in `ovs-ofctl` match style, only the fields `mask` covers.
    pub fn display_masked<'a>(&'a self, mask: &'a FlowMask) -> MatchFmt<'a> {
        MatchFmt {
            key: self,
            mask: Some(mask),
        }
    }

    /// Display in `ovs-appctl dpctl/dump-flows` style under `mask`.
    pub fn dpctl<'a>(&'a self, mask: &'a FlowMask) -> DpctlFmt<'a> {
        DpctlFmt {
            key: self,
            mask,
            verbose: false,
        }
    }

    /// As [`FlowKey::dpctl`], with every field of the key's protocols,
    /// the wildcarded ones as `value/0` (OVS `dpctl/dump-flows -m`).
    pub fn dpctl_verbose<'a>(&'a self, mask: &'a FlowMask) -> DpctlFmt<'a> {
        DpctlFmt {
            key: self,
            mask,
            verbose: true,
        }
    }
}

impl std::fmt::Display for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.display().fmt(f)
    }
}

impl FlowMask {
    /// Nothing significant (matches everything).
    pub const CATCHALL: FlowMask = FlowMask {
        words: [0; N_WORDS],
    };

    /// Every bit significant.
    pub const EXACT: FlowMask = FlowMask {
        words: [u64::MAX; N_WORDS],
    };

    /// Raw mask bits of a field.
    pub fn get(&self, f: Field) -> u128 {
        get_field(&self.words, f)
    }

    /// Set a field's mask bits.
    pub fn set(&mut self, f: Field, v: u128) {
        set_field(&mut self.words, f, v)
    }

    /// Make a field fully significant ("un-wildcard" it).
    pub fn set_exact(&mut self, f: Field) -> &mut Self {
        self.set(f, f.all_ones());
        self
    }

    /// Whether a field is fully significant.
    pub fn is_exact(&self, f: Field) -> bool {
        self.get(f) == f.all_ones()
    }

    /// Whether no bit of the field is significant.
    pub fn is_wildcarded(&self, f: Field) -> bool {
        self.get(f) == 0
    }

    /// Add the bits of `other`.
    pub fn union_with(&mut self, other: &FlowMask) {
        for i in 0..N_WORDS {
            self.words[i] |= other.words[i];
        }
    }

    /// This mask without the pipeline-only fields (registers, metadata,
    /// `conj_id`; [`Field::is_pipeline_only`]): they are zero in every
    /// datapath key, so a megaflow gains nothing by matching them, and
    /// leaving them out keeps its subtable to the words packets differ in.
    pub fn datapath_only(&self) -> FlowMask {
        let mut m = *self;
        m.set(Field::Metadata, 0);
        for k in 0..8 {
            m.set(Field::Xreg(k), 0);
        }
        m.set(Field::ConjId, 0);
        m
    }

    /// Indices of the words with at least one significant bit.
    pub fn nonzero_words(&self) -> impl Iterator<Item = usize> + '_ {
        (0..N_WORDS).filter(|&i| self.words[i] != 0)
    }

    /// Number of significant bits.
    pub fn count_ones(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_overlap() {
        for f in Field::ALL {
            let mut m = FlowMask::default();
            m.set_exact(f);
            assert_eq!(m.count_ones(), f.bits(), "{f:?}");
            for g in Field::ALL {
                if g != f {
                    assert!(m.is_wildcarded(g), "{f:?} overlaps {g:?}");
                }
            }
        }
    }

    #[test]
    fn accessors_roundtrip() {
        let mut k = FlowKey::default();
        k.set_in_port(0xfffffffe);
        k.set_dl_src(MacAddr([1, 2, 3, 4, 5, 6]));
        k.set_dl_dst(MacAddr([0xff; 6]));
        k.set_vlan_tci(0x100a);
        k.set_dl_type(0x86dd);
        k.set_nw_src_v6("2001:db8::1".parse().unwrap());
        k.set_nw_dst_v4(Ipv4Addr::new(10, 0, 0, 2));
        k.set_tp_src(443);
        k.set_tcp_flags(0x12);
        assert_eq!(k.in_port(), 0xfffffffe);
        assert_eq!(k.dl_src(), MacAddr([1, 2, 3, 4, 5, 6]));
        assert_eq!(k.dl_dst(), MacAddr::BROADCAST);
        assert_eq!(k.vlan_vid(), 10);
        assert!(k.has_vlan());
        assert_eq!(k.dl_type(), 0x86dd);
        assert_eq!(k.nw_src_v6().to_string(), "2001:db8::1");
        assert_eq!(k.nw_dst_v4(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(k.tp_src(), 443);
        assert_eq!(k.tcp_flags(), 0x12);
        let mut m = FlowMask::default();
        m.set_exact(Field::DlType);
        let mk = k.masked(&m);
        assert_eq!(mk.dl_type(), 0x86dd);
        assert_eq!(mk.in_port(), 0);
        assert!(mk.matches(&k, &m));
    }
}
