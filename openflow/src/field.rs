//! Where each [`OxmField`] lives in a [`Match`] and what it requires.
//!
//! Shared by the codecs (OXM, NXM, OpenFlow 1.0 `ofp_match`) and by the
//! pipeline, which uses [`OxmField::layout`] to turn `set_field` into
//! datapath writes.

use std::sync::OnceLock;

use xennet_datapath::flow::Field;
use xennet_datapath::FlowMask;

use crate::error::OfError;
use crate::model::{Match, MfField, OxmField, Subfield};
use crate::wire::ones;

/// What a field needs matched before it may be matched or set (OpenFlow
/// 1.3 §7.2.3.6, Table 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prereq {
    /// Nothing.
    None,
    /// A VLAN tag present (`vlan_vid` with `OFPVID_PRESENT`).
    Vlan,
    /// `eth_type` 0x0800 or 0x86dd.
    Ip,
    /// `eth_type` 0x0800.
    Ipv4,
    /// `eth_type` 0x86dd.
    Ipv6,
    /// `eth_type` 0x0806 (ARP) or 0x8035 (RARP), OVS `is_arp`.
    Arp,
    /// IP and `ip_proto` 6.
    Tcp,
    /// IP and `ip_proto` 17.
    Udp,
    /// IP and `ip_proto` 132.
    Sctp,
    /// IPv4 and `ip_proto` 1.
    Icmpv4,
    /// IPv6 and `ip_proto` 58.
    Icmpv6,
    /// `eth_type` 0x8847 or 0x8848.
    Mpls,
    /// ICMPv6 type 135 or 136, code 0 (OVS `MFP_ND`).
    Nd,
    /// ICMPv6 type 135 (`MFP_ND_SOLICIT`).
    NdSolicit,
    /// ICMPv6 type 136 (`MFP_ND_ADVERT`).
    NdAdvert,
    /// A valid connection-tracking state matched (OVS `is_ct_valid`).
    CtValid,
}

impl OxmField {
    /// Every field (registers by number, `xreg` and `xxreg` included).
    pub const ALL: [OxmField; 94] = {
        let base = [
            OxmField::InPort,
            OxmField::Metadata,
            OxmField::EthDst,
            OxmField::EthSrc,
            OxmField::EthType,
            OxmField::VlanVid,
            OxmField::VlanPcp,
            OxmField::IpDscp,
            OxmField::IpEcn,
            OxmField::IpProto,
            OxmField::IpTtl,
            OxmField::IpFrag,
            OxmField::Ipv4Src,
            OxmField::Ipv4Dst,
            OxmField::TcpSrc,
            OxmField::TcpDst,
            OxmField::UdpSrc,
            OxmField::UdpDst,
            OxmField::SctpSrc,
            OxmField::SctpDst,
            OxmField::Icmpv4Type,
            OxmField::Icmpv4Code,
            OxmField::ArpOp,
            OxmField::ArpSpa,
            OxmField::ArpTpa,
            OxmField::Ipv6Src,
            OxmField::Ipv6Dst,
            OxmField::Icmpv6Type,
            OxmField::Icmpv6Code,
            OxmField::TcpFlags,
            OxmField::TunId,
            OxmField::TunIpv4Src,
            OxmField::TunIpv4Dst,
            OxmField::TunIpv6Src,
            OxmField::TunIpv6Dst,
            OxmField::TunFlags,
            OxmField::PktMark,
            OxmField::CtState,
            OxmField::CtZone,
            OxmField::CtMark,
            OxmField::CtLabel,
            OxmField::CtNwProto,
            OxmField::CtNwSrc,
            OxmField::CtNwDst,
            OxmField::CtIpv6Src,
            OxmField::CtIpv6Dst,
            OxmField::CtTpSrc,
            OxmField::CtTpDst,
            OxmField::DpHash,
            OxmField::RecircId,
            OxmField::ConjId,
            OxmField::ArpSha,
            OxmField::ArpTha,
            OxmField::NdTarget,
            OxmField::NdSll,
            OxmField::NdTll,
            OxmField::NdReserved,
            OxmField::NdOptionsType,
            OxmField::Ipv6Label,
            OxmField::MplsLabel,
            OxmField::MplsTc,
            OxmField::MplsBos,
            OxmField::MplsTtl,
        ];
        let mut all = [OxmField::InPort; 94];
        let mut i = 0;
        while i < base.len() {
            all[i] = base[i];
            i += 1;
        }
        let mut n = 0;
        while n < 16 {
            all[base.len() + n] = OxmField::Reg(n as u8);
            n += 1;
        }
        let mut k = 0;
        while k < 8 {
            all[base.len() + 16 + k] = OxmField::Xreg(k as u8);
            k += 1;
        }
        let mut k = 0;
        while k < 4 {
            all[base.len() + 24 + k] = OxmField::Xxreg(k as u8);
            k += 1;
        }
        all
    };

    /// `(key field, shift, bits)`: the field occupies `bits` bits of the
    /// datapath key field starting `shift` bits from its least significant
    /// end.
    pub const fn layout(self) -> (Field, u32, u32) {
        use OxmField::*;
        match self {
            InPort => (Field::InPort, 0, 32),
            Metadata => (Field::Metadata, 0, 64),
            EthDst => (Field::DlDst, 0, 48),
            EthSrc => (Field::DlSrc, 0, 48),
            EthType => (Field::DlType, 0, 16),
            VlanVid => (Field::VlanTci, 0, 13),
            VlanPcp => (Field::VlanTci, 13, 3),
            IpDscp => (Field::NwTos, 2, 6),
            IpEcn => (Field::NwTos, 0, 2),
            IpProto => (Field::NwProto, 0, 8),
            IpTtl => (Field::NwTtl, 0, 8),
            IpFrag => (Field::NwFrag, 0, 2),
            Ipv4Src | ArpSpa => (Field::NwSrc, 0, 32),
            Ipv4Dst | ArpTpa => (Field::NwDst, 0, 32),
            Ipv6Src => (Field::NwSrc, 0, 128),
            Ipv6Dst => (Field::NwDst, 0, 128),
            TcpSrc | UdpSrc | SctpSrc => (Field::TpSrc, 0, 16),
            TcpDst | UdpDst | SctpDst => (Field::TpDst, 0, 16),
            Icmpv4Type | Icmpv6Type => (Field::TpSrc, 0, 8),
            Icmpv4Code | Icmpv6Code => (Field::TpDst, 0, 8),
            ArpOp => (Field::NwProto, 0, 8),
            TcpFlags => (Field::TcpFlags, 0, 12),
            Reg(n) => (Field::Reg(n), 0, 32),
            Xreg(k) => (Field::Xreg(k), 0, 64),
            Xxreg(k) => (Field::Xxreg(k), 0, 128),
            TunId => (Field::TunId, 0, 64),
            TunIpv4Src => (Field::TunSrc, 0, 32),
            TunIpv4Dst => (Field::TunDst, 0, 32),
            TunIpv6Src => (Field::TunSrc, 0, 128),
            TunIpv6Dst => (Field::TunDst, 0, 128),
            TunFlags => (Field::TunFlags, 0, 1),
            PktMark => (Field::PktMark, 0, 32),
            CtState => (Field::CtState, 0, 32),
            CtZone => (Field::CtZone, 0, 16),
            CtMark => (Field::CtMark, 0, 32),
            CtLabel => (Field::CtLabel, 0, 128),
            CtNwProto => (Field::CtNwProto, 0, 8),
            CtNwSrc => (Field::CtNwSrc, 0, 32),
            CtNwDst => (Field::CtNwDst, 0, 32),
            CtIpv6Src => (Field::CtNwSrc, 0, 128),
            CtIpv6Dst => (Field::CtNwDst, 0, 128),
            CtTpSrc => (Field::CtTpSrc, 0, 16),
            CtTpDst => (Field::CtTpDst, 0, 16),
            DpHash => (Field::DpHash, 0, 32),
            RecircId => (Field::RecircId, 0, 32),
            ConjId => (Field::ConjId, 0, 32),
            ArpSha | NdSll => (Field::ArpSha, 0, 48),
            ArpTha | NdTll => (Field::ArpTha, 0, 48),
            NdTarget => (Field::NdTarget, 0, 128),
            NdReserved => (Field::NdReserved, 0, 32),
            NdOptionsType => (Field::NdOptionsType, 0, 8),
            Ipv6Label => (Field::Ipv6Label, 0, 20),
            MplsLabel => (Field::MplsLabel, 0, 20),
            MplsTc => (Field::MplsTc, 0, 3),
            MplsBos => (Field::MplsBos, 0, 1),
            MplsTtl => (Field::MplsTtl, 0, 8),
            TunMetadata { offset, len, .. } => {
                let end = (offset % 16) as u32 + len as u32;
                let end = if end > 16 { 16 } else { end };
                (Field::TunOpts(offset / 16), 8 * (16 - end), 8 * len as u32)
            }
        }
    }

    /// Width in bits of the field's value (as OXM carries it, except
    /// `ArpOp`, which OXM sends as 16 bits but only 0..=255 fit).
    pub const fn bits(self) -> u32 {
        self.layout().2
    }

    /// The field's prerequisite.
    pub const fn prereq(self) -> Prereq {
        use OxmField::*;
        match self {
            InPort | Metadata | EthDst | EthSrc | EthType | VlanVid => Prereq::None,
            VlanPcp => Prereq::Vlan,
            IpDscp | IpEcn | IpProto | IpTtl | IpFrag => Prereq::Ip,
            Ipv4Src | Ipv4Dst => Prereq::Ipv4,
            Ipv6Src | Ipv6Dst => Prereq::Ipv6,
            TcpSrc | TcpDst | TcpFlags => Prereq::Tcp,
            UdpSrc | UdpDst => Prereq::Udp,
            SctpSrc | SctpDst => Prereq::Sctp,
            Icmpv4Type | Icmpv4Code => Prereq::Icmpv4,
            ArpOp | ArpSpa | ArpTpa | ArpSha | ArpTha => Prereq::Arp,
            Icmpv6Type | Icmpv6Code => Prereq::Icmpv6,
            Reg(_) | Xreg(_) | Xxreg(_) | TunId | TunIpv4Src | TunIpv4Dst | TunIpv6Src
            | TunIpv6Dst | TunFlags | PktMark | CtState | CtZone | CtMark | CtLabel | DpHash
            | RecircId | ConjId => Prereq::None,
            CtNwProto | CtNwSrc | CtNwDst | CtIpv6Src | CtIpv6Dst | CtTpSrc | CtTpDst => {
                Prereq::CtValid
            }
            NdTarget | NdReserved | NdOptionsType => Prereq::Nd,
            NdSll => Prereq::NdSolicit,
            NdTll => Prereq::NdAdvert,
            Ipv6Label => Prereq::Ipv6,
            MplsLabel | MplsTc | MplsBos | MplsTtl => Prereq::Mpls,
            TunMetadata { .. } => Prereq::None,
        }
    }

    /// The field's name in `ovs-ofctl` syntax (OVS meta-flow names).
    pub const fn name(self) -> &'static str {
        use OxmField::*;
        const REGS: [&str; 16] = [
            "reg0", "reg1", "reg2", "reg3", "reg4", "reg5", "reg6", "reg7", "reg8", "reg9",
            "reg10", "reg11", "reg12", "reg13", "reg14", "reg15",
        ];
        const XREGS: [&str; 8] = [
            "xreg0", "xreg1", "xreg2", "xreg3", "xreg4", "xreg5", "xreg6", "xreg7",
        ];
        const XXREGS: [&str; 4] = ["xxreg0", "xxreg1", "xxreg2", "xxreg3"];
        match self {
            InPort => "in_port",
            Metadata => "metadata",
            EthDst => "eth_dst",
            EthSrc => "eth_src",
            EthType => "eth_type",
            VlanVid => "vlan_vid",
            VlanPcp => "vlan_pcp",
            IpDscp => "ip_dscp",
            IpEcn => "ip_ecn",
            IpProto => "ip_proto",
            IpTtl => "nw_ttl",
            IpFrag => "ip_frag",
            Ipv4Src => "ipv4_src",
            Ipv4Dst => "ipv4_dst",
            TcpSrc => "tcp_src",
            TcpDst => "tcp_dst",
            UdpSrc => "udp_src",
            UdpDst => "udp_dst",
            SctpSrc => "sctp_src",
            SctpDst => "sctp_dst",
            Icmpv4Type => "icmpv4_type",
            Icmpv4Code => "icmpv4_code",
            ArpOp => "arp_op",
            ArpSpa => "arp_spa",
            ArpTpa => "arp_tpa",
            Ipv6Src => "ipv6_src",
            Ipv6Dst => "ipv6_dst",
            Icmpv6Type => "icmpv6_type",
            Icmpv6Code => "icmpv6_code",
            TcpFlags => "tcp_flags",
            Reg(n) => REGS[(n % 16) as usize],
            Xreg(k) => XREGS[(k % 8) as usize],
            Xxreg(k) => XXREGS[(k % 4) as usize],
            TunId => "tun_id",
            TunIpv4Src => "tun_src",
            TunIpv4Dst => "tun_dst",
            TunIpv6Src => "tun_ipv6_src",
            TunIpv6Dst => "tun_ipv6_dst",
            TunFlags => "tun_flags",
            PktMark => "pkt_mark",
            CtState => "ct_state",
            CtZone => "ct_zone",
            CtMark => "ct_mark",
            CtLabel => "ct_label",
            CtNwProto => "ct_nw_proto",
            CtNwSrc => "ct_nw_src",
            CtNwDst => "ct_nw_dst",
            CtIpv6Src => "ct_ipv6_src",
            CtIpv6Dst => "ct_ipv6_dst",
            CtTpSrc => "ct_tp_src",
            CtTpDst => "ct_tp_dst",
            DpHash => "dp_hash",
            RecircId => "recirc_id",
            ConjId => "conj_id",
            ArpSha => "arp_sha",
            ArpTha => "arp_tha",
            NdTarget => "nd_target",
            NdSll => "nd_sll",
            NdTll => "nd_tll",
            NdReserved => "nd_reserved",
            NdOptionsType => "nd_options_type",
            Ipv6Label => "ipv6_label",
            MplsLabel => "mpls_label",
            MplsTc => "mpls_tc",
            MplsBos => "mpls_bos",
            MplsTtl => "mpls_ttl",
            TunMetadata { index, .. } => TUN_METADATA_NAMES[(index % 64) as usize],
        }
    }

    /// The name OVS gives the field in subfield syntax (`NXM_NX_REG0[0..3]`;
    /// `mf_format_subfield`): its first header in OVS's field table, the
    /// NXM one where it has one, else the OXM one (ovs-fields(7)).
    pub fn nxm_name(self) -> String {
        use OxmField::*;
        let s = match self {
            Reg(n) => return format!("NXM_NX_REG{}", n % 16),
            Xreg(k) => return format!("OXM_OF_PKT_REG{}", k % 8),
            Xxreg(k) => return format!("NXM_NX_XXREG{}", k % 4),
            TunMetadata { index, .. } => return format!("NXM_NX_TUN_METADATA{}", index % 64),
            InPort => "OXM_OF_IN_PORT",
            Metadata => "OXM_OF_METADATA",
            EthDst => "NXM_OF_ETH_DST",
            EthSrc => "NXM_OF_ETH_SRC",
            EthType => "NXM_OF_ETH_TYPE",
            VlanVid => "OXM_OF_VLAN_VID",
            VlanPcp => "OXM_OF_VLAN_PCP",
            IpDscp => "OXM_OF_IP_DSCP",
            IpEcn => "NXM_NX_IP_ECN",
            IpProto => "NXM_OF_IP_PROTO",
            IpTtl => "NXM_NX_IP_TTL",
            IpFrag => "NXM_NX_IP_FRAG",
            Ipv4Src => "NXM_OF_IP_SRC",
            Ipv4Dst => "NXM_OF_IP_DST",
            TcpSrc => "NXM_OF_TCP_SRC",
            TcpDst => "NXM_OF_TCP_DST",
            UdpSrc => "NXM_OF_UDP_SRC",
            UdpDst => "NXM_OF_UDP_DST",
            SctpSrc => "OXM_OF_SCTP_SRC",
            SctpDst => "OXM_OF_SCTP_DST",
            Icmpv4Type => "NXM_OF_ICMP_TYPE",
            Icmpv4Code => "NXM_OF_ICMP_CODE",
            ArpOp => "NXM_OF_ARP_OP",
            ArpSpa => "NXM_OF_ARP_SPA",
            ArpTpa => "NXM_OF_ARP_TPA",
            Ipv6Src => "NXM_NX_IPV6_SRC",
            Ipv6Dst => "NXM_NX_IPV6_DST",
            Icmpv6Type => "NXM_NX_ICMPV6_TYPE",
            Icmpv6Code => "NXM_NX_ICMPV6_CODE",
            TcpFlags => "NXM_NX_TCP_FLAGS",
            TunId => "NXM_NX_TUN_ID",
            TunIpv4Src => "NXM_NX_TUN_IPV4_SRC",
            TunIpv4Dst => "NXM_NX_TUN_IPV4_DST",
            TunIpv6Src => "NXM_NX_TUN_IPV6_SRC",
            TunIpv6Dst => "NXM_NX_TUN_IPV6_DST",
            TunFlags => "NXM_NX_TUN_FLAGS",
            PktMark => "NXM_NX_PKT_MARK",
            CtState => "NXM_NX_CT_STATE",
            CtZone => "NXM_NX_CT_ZONE",
            CtMark => "NXM_NX_CT_MARK",
            CtLabel => "NXM_NX_CT_LABEL",
            CtNwProto => "NXM_NX_CT_NW_PROTO",
            CtNwSrc => "NXM_NX_CT_NW_SRC",
            CtNwDst => "NXM_NX_CT_NW_DST",
            CtIpv6Src => "NXM_NX_CT_IPV6_SRC",
            CtIpv6Dst => "NXM_NX_CT_IPV6_DST",
            CtTpSrc => "NXM_NX_CT_TP_SRC",
            CtTpDst => "NXM_NX_CT_TP_DST",
            DpHash => "NXM_NX_DP_HASH",
            RecircId => "NXM_NX_RECIRC_ID",
            ConjId => "NXM_NX_CONJ_ID",
            ArpSha => "NXM_NX_ARP_SHA",
            ArpTha => "NXM_NX_ARP_THA",
            NdTarget => "NXM_NX_ND_TARGET",
            NdSll => "NXM_NX_ND_SLL",
            NdTll => "NXM_NX_ND_TLL",
            NdReserved => "ERICOXM_OF_ICMPV6_ND_RESERVED",
            NdOptionsType => "ERICOXM_OF_ICMPV6_ND_OPTIONS_TYPE",
            Ipv6Label => "NXM_NX_IPV6_LABEL",
            MplsLabel => "OXM_OF_MPLS_LABEL",
            MplsTc => "OXM_OF_MPLS_TC",
            MplsBos => "OXM_OF_MPLS_BOS",
            MplsTtl => "NXM_NX_MPLS_TTL",
        };
        s.to_string()
    }

    /// OVS's own name of the field (`mf_field.name`, ovs-fields(7)
    /// "Name:"), where it differs from [`OxmField::name`]'s: what OVS
    /// writes for a whole field given a value (`learn(nw_proto=17)`).
    pub const fn ovs_name(self) -> &'static str {
        use OxmField::*;
        match self {
            InPort => "in_port_oxm",
            IpProto => "nw_proto",
            IpEcn => "nw_ecn",
            Ipv4Src => "ip_src",
            Ipv4Dst => "ip_dst",
            Icmpv4Type => "icmp_type",
            Icmpv4Code => "icmp_code",
            f => f.name(),
        }
    }

    /// The field index of a `tun_metadata<n>` field.
    pub const fn tun_metadata_index(self) -> Option<u8> {
        match self {
            OxmField::TunMetadata { index, .. } => Some(index),
            _ => None,
        }
    }

    /// The field with this `ovs-ofctl` name.
    pub fn from_name(name: &str) -> Option<OxmField> {
        OxmField::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether OpenFlow lets `set_field` write this field (OVS meta-flow
    /// "Access: read/write"; the input port is left out, as before).
    pub const fn is_writable(self) -> bool {
        use OxmField::*;
        !matches!(
            self,
            InPort
                | EthType
                | IpProto
                | IpFrag
                | CtState
                | CtZone
                | CtNwProto
                | CtNwSrc
                | CtNwDst
                | CtIpv6Src
                | CtIpv6Dst
                | CtTpSrc
                | CtTpDst
                | DpHash
                | RecircId
                | ConjId
                | MplsBos
        )
    }

    /// Whether xennet executes `set_field` (and `load`/`move`) on this
    /// writable field. The rest are refused at flow-mod time with
    /// `BAD_SET_TYPE`, never accepted and ignored: `ct_mark`/`ct_label`
    /// (only inside `ct(exec(...))`) and the ND reserved word and option
    /// type (no datapath rewrite yet).
    pub const fn is_settable(self) -> bool {
        use OxmField::*;
        self.is_writable() && !matches!(self, CtMark | CtLabel | NdReserved | NdOptionsType)
    }

    /// Whether the field lives only in the pipeline (registers, metadata,
    /// tunnel metadata, packet mark): setting it changes no packet bytes.
    pub const fn is_metadata(self) -> bool {
        use OxmField::*;
        matches!(
            self,
            Metadata
                | Reg(_)
                | Xreg(_)
                | Xxreg(_)
                | TunId
                | TunIpv4Src
                | TunIpv4Dst
                | TunIpv6Src
                | TunIpv6Dst
                | TunMetadata { .. }
                | TunFlags
                | PktMark
        )
    }
}

/// `tun_metadata0` .. `tun_metadata63`.
const TUN_METADATA_NAMES: [&str; 64] = [
    "tun_metadata0",
    "tun_metadata1",
    "tun_metadata2",
    "tun_metadata3",
    "tun_metadata4",
    "tun_metadata5",
    "tun_metadata6",
    "tun_metadata7",
    "tun_metadata8",
    "tun_metadata9",
    "tun_metadata10",
    "tun_metadata11",
    "tun_metadata12",
    "tun_metadata13",
    "tun_metadata14",
    "tun_metadata15",
    "tun_metadata16",
    "tun_metadata17",
    "tun_metadata18",
    "tun_metadata19",
    "tun_metadata20",
    "tun_metadata21",
    "tun_metadata22",
    "tun_metadata23",
    "tun_metadata24",
    "tun_metadata25",
    "tun_metadata26",
    "tun_metadata27",
    "tun_metadata28",
    "tun_metadata29",
    "tun_metadata30",
    "tun_metadata31",
    "tun_metadata32",
    "tun_metadata33",
    "tun_metadata34",
    "tun_metadata35",
    "tun_metadata36",
    "tun_metadata37",
    "tun_metadata38",
    "tun_metadata39",
    "tun_metadata40",
    "tun_metadata41",
    "tun_metadata42",
    "tun_metadata43",
    "tun_metadata44",
    "tun_metadata45",
    "tun_metadata46",
    "tun_metadata47",
    "tun_metadata48",
    "tun_metadata49",
    "tun_metadata50",
    "tun_metadata51",
    "tun_metadata52",
    "tun_metadata53",
    "tun_metadata54",
    "tun_metadata55",
    "tun_metadata56",
    "tun_metadata57",
    "tun_metadata58",
    "tun_metadata59",
    "tun_metadata60",
    "tun_metadata61",
    "tun_metadata62",
    "tun_metadata63",
];

impl MfField {
    /// Where the field lives in the flow key: `(key field, shift, width)`,
    /// the wire value being `(key >> shift) & ones(width)` (OVS
    /// `mf_field` in `struct flow`).
    pub fn layout(self) -> (Field, u32, u32) {
        match self {
            MfField::Oxm(f) => f.layout(),
            MfField::VlanTci => (Field::VlanTci, 0, 16),
            MfField::IpTos => (Field::NwTos, 0, 8),
            MfField::InPort16 => (Field::InPort, 0, 16),
        }
    }

    /// What matching or writing the field requires.
    pub fn prereq(self) -> Prereq {
        match self {
            MfField::Oxm(f) => f.prereq(),
            MfField::IpTos => Prereq::Ip,
            MfField::VlanTci | MfField::InPort16 => Prereq::None,
        }
    }
}

impl Match {
    /// The `(value, mask)` of a field in this match (both right-aligned).
    pub fn field(&self, f: OxmField) -> (u128, u128) {
        let (kf, shift, bits) = f.layout();
        let m = ones(bits);
        (
            (self.key.get(kf) >> shift) & m,
            (self.mask.get(kf) >> shift) & m,
        )
    }

    /// Match `f` against `value` under `mask` (right-aligned; bits of
    /// `value` outside `mask` are dropped).
    ///
    /// # Errors
    /// `BAD_VALUE` when `value` or `mask` is wider than the field (for
    /// `ArpOp`, an opcode above 255).
    pub fn set_field(&mut self, f: OxmField, value: u128, mask: u128) -> Result<(), OfError> {
        let bits = f.bits();
        if value & !ones(bits) != 0 {
            return Err(OfError::BAD_VALUE);
        }
        if mask & !ones(bits) != 0 {
            return Err(OfError::BAD_MASK);
        }
        let value = value & mask;
        let (kf, shift, bits) = f.layout();
        let fm = ones(bits) << shift;
        let k = (self.key.get(kf) & !fm) | (value << shift);
        let m = (self.mask.get(kf) & !fm) | (mask << shift);
        self.key.set(kf, k);
        self.mask.set(kf, m);
        Ok(())
    }

    /// Match the bits `sf` names against the low `sf.n_bits` bits of `v`
    /// (OVS `mf_write_subfield` on a match, as `learn` builds one). A
    /// whole 16-bit `NXM_OF_IN_PORT` maps OpenFlow 1.0 special ports to
    /// their 32-bit numbers.
    pub fn write_subfield(&mut self, sf: &Subfield, v: u128) {
        let (kf, shift, width) = sf.field.layout();
        if sf.field == MfField::InPort16 && sf.ofs == 0 && sf.n_bits == 16 {
            let p = crate::v10::port_from_ofp10(v as u16);
            self.key.set(kf, u128::from(p));
            self.mask.set(kf, u128::from(u32::MAX));
            return;
        }
        let at = shift + u32::from(sf.ofs);
        if at >= 128 || u32::from(sf.ofs) >= width {
            return;
        }
        let bits = (ones(u32::from(sf.n_bits)) << at) & (ones(width) << shift);
        let k = (self.key.get(kf) & !bits) | ((v << at) & bits);
        self.key.set(kf, k);
        self.mask.set(kf, self.mask.get(kf) | bits);
        if let MfField::Oxm(f) = sf.field {
            if let Some(i) = f.tun_metadata_index() {
                // As a decoded match: the option must be present.
                let p = Field::TunMdPresent;
                self.key.set(p, self.key.get(p) | (1u128 << i));
                self.mask.set(p, self.mask.get(p) | (1u128 << i));
            }
        }
    }

    /// Whether `f` is fully or partly matched.
    pub fn has_field(&self, f: OxmField) -> bool {
        self.field(f).1 != 0
    }

    /// Whether the match pins `eth_type` to `t`.
    fn eth_type_is(&self, t: u16) -> bool {
        self.field(OxmField::EthType) == (u128::from(t), 0xffff)
    }

    fn ip_proto_is(&self, p: u8) -> bool {
        self.field(OxmField::IpProto) == (u128::from(p), 0xff)
    }

    /// Whether the prerequisite `p` holds in this match.
    pub fn satisfies(&self, p: Prereq) -> bool {
        // Only where asked: this runs for every field of every match.
        let ip = || self.eth_type_is(0x0800) || self.eth_type_is(0x86dd);
        match p {
            Prereq::None => true,
            Prereq::Vlan => {
                let (v, m) = self.field(OxmField::VlanVid);
                m & 0x1000 != 0 && v & 0x1000 != 0
            }
            Prereq::Ip => ip(),
            Prereq::Ipv4 => self.eth_type_is(0x0800),
            Prereq::Ipv6 => self.eth_type_is(0x86dd),
            // OVS `is_arp`: ARP or RARP (OVN matches `rarp,arp_op=3`).
            Prereq::Arp => self.eth_type_is(0x0806) || self.eth_type_is(0x8035),
            Prereq::Tcp => ip() && self.ip_proto_is(6),
            Prereq::Udp => ip() && self.ip_proto_is(17),
            Prereq::Sctp => ip() && self.ip_proto_is(132),
            Prereq::Icmpv4 => self.eth_type_is(0x0800) && self.ip_proto_is(1),
            Prereq::Icmpv6 => self.eth_type_is(0x86dd) && self.ip_proto_is(58),
            Prereq::Mpls => self.eth_type_is(0x8847) || self.eth_type_is(0x8848),
            Prereq::Nd => self.icmpv6_type_is(135) || self.icmpv6_type_is(136),
            Prereq::NdSolicit => self.icmpv6_type_is(135),
            Prereq::NdAdvert => self.icmpv6_type_is(136),
            Prereq::CtValid => {
                // OVS `is_ct_valid` on a match: a bit that implies a valid
                // entry is matched set, or +trk with -inv.
                let (v, m) = self.field(OxmField::CtState);
                let valid = 0x01 | 0x02 | 0x04 | 0x08 | 0x40 | 0x80;
                v & m & valid != 0 || (v & m & 0x20 != 0 && m & 0x10 != 0 && v & 0x10 == 0)
            }
        }
    }

    /// Whether the match pins ICMPv6 type `t` and leaves the code 0 or
    /// unmatched (OVS `is_nd` on a match's values).
    fn icmpv6_type_is(&self, t: u128) -> bool {
        self.satisfies(Prereq::Icmpv6)
            && self.field(OxmField::Icmpv6Type) == (t, 0xff)
            && self.field(OxmField::Icmpv6Code).0 == 0
    }

    /// Check every matched field's prerequisite (OpenFlow 1.3 §7.2.3.6).
    /// Because several OXM fields share key bits (TCP/UDP/SCTP ports,
    /// IPv4/IPv6/ARP addresses), this checks the bits in use against the
    /// EtherType and IP protocol the match pins.
    ///
    /// # Errors
    /// `BAD_PREREQ`.
    pub fn check_prereqs(&self) -> Result<(), OfError> {
        let g = prereq_groups();
        let ip = self.eth_type_is(0x0800) || self.eth_type_is(0x86dd);
        // PCP bits need a tag, except under a match that pins "no tag"
        // (CFI matched as 0), as NXM_OF_VLAN_TCI(0000) from OpenFlow 1.0
        // `dl_vlan=0xffff` is: an untagged packet's TCI is all zeros.
        let untagged = self.mask.get(Field::VlanTci) & 0x1000 != 0
            && self.key.get(Field::VlanTci) & 0x1000 == 0;
        if self.mask.get(Field::VlanTci) & 0xe000 != 0 && !self.satisfies(Prereq::Vlan) && !untagged
        {
            return Err(OfError::BAD_PREREQ);
        }
        if g.ip_only.any_in(&self.mask) && !ip {
            return Err(OfError::BAD_PREREQ);
        }
        if g.ip_or_arp.any_in(&self.mask) && !(ip || self.satisfies(Prereq::Arp)) {
            return Err(OfError::BAD_PREREQ);
        }
        if g.ports.any_in(&self.mask)
            && !(ip && [6, 17, 132, 1, 58].iter().any(|p| self.ip_proto_is(*p)))
        {
            return Err(OfError::BAD_PREREQ);
        }
        if g.tcp_flags.any_in(&self.mask) && !self.satisfies(Prereq::Tcp) {
            return Err(OfError::BAD_PREREQ);
        }
        // Fields shared by two protocols: ARP hardware addresses are the
        // ND link-layer options under ICMPv6 ND.
        if g.arp_ha.any_in(&self.mask)
            && !(self.satisfies(Prereq::Arp) || self.satisfies(Prereq::Nd))
        {
            return Err(OfError::BAD_PREREQ);
        }
        if g.nd.any_in(&self.mask) && !self.satisfies(Prereq::Nd) {
            return Err(OfError::BAD_PREREQ);
        }
        if g.ipv6_label.any_in(&self.mask) && !self.satisfies(Prereq::Ipv6) {
            return Err(OfError::BAD_PREREQ);
        }
        if g.mpls.any_in(&self.mask) && !self.satisfies(Prereq::Mpls) {
            return Err(OfError::BAD_PREREQ);
        }
        if g.ct_tuple.any_in(&self.mask) && !self.satisfies(Prereq::CtValid) {
            return Err(OfError::BAD_PREREQ);
        }
        Ok(())
    }
}

/// Flow fields as the mask bits they occupy: `(word, bits)` for each
/// word of [`FlowMask::words`] they touch, so whether a mask matches any
/// of them is an AND or two rather than one field extraction each
/// ([`Match::check_prereqs`] runs for every flow-mod decoded and again
/// when it is applied).
#[derive(Debug)]
struct FieldBits(Vec<(usize, u64)>);

impl FieldBits {
    fn of(fields: &[Field]) -> FieldBits {
        let mut m = FlowMask::CATCHALL;
        for &f in fields {
            m.set_exact(f);
        }
        FieldBits(
            m.words
                .iter()
                .enumerate()
                .filter(|&(_, &w)| w != 0)
                .map(|(i, &w)| (i, w))
                .collect(),
        )
    }

    /// Whether `mask` matches some bit of these fields (what
    /// `fields.iter().any(|f| mask.get(*f) != 0)` says).
    fn any_in(&self, mask: &FlowMask) -> bool {
        self.0
            .iter()
            .any(|&(i, b)| mask.words.get(i).is_some_and(|w| w & b != 0))
    }
}

/// The field groups whose prerequisites [`Match::check_prereqs`] checks:
/// fields that need IP; IP or ARP; TCP, UDP, SCTP or ICMP; TCP; ARP or
/// ND; ND; IPv6; MPLS; a valid connection.
const PREREQ_FIELDS: [&[Field]; 9] = [
    &[Field::NwTos, Field::NwTtl, Field::NwFrag],
    &[Field::NwSrc, Field::NwDst, Field::NwProto],
    &[Field::TpSrc, Field::TpDst],
    &[Field::TcpFlags],
    &[Field::ArpSha, Field::ArpTha],
    &[Field::NdTarget, Field::NdReserved, Field::NdOptionsType],
    &[Field::Ipv6Label],
    &[
        Field::MplsLabel,
        Field::MplsTc,
        Field::MplsBos,
        Field::MplsTtl,
    ],
    &[
        Field::CtNwSrc,
        Field::CtNwDst,
        Field::CtNwProto,
        Field::CtTpSrc,
        Field::CtTpDst,
    ],
];

/// [`PREREQ_FIELDS`] as [`FieldBits`], built once.
#[derive(Debug)]
struct PrereqGroups {
    ip_only: FieldBits,
    ip_or_arp: FieldBits,
    ports: FieldBits,
    tcp_flags: FieldBits,
    arp_ha: FieldBits,
    nd: FieldBits,
    ipv6_label: FieldBits,
    mpls: FieldBits,
    ct_tuple: FieldBits,
}

impl PrereqGroups {
    /// The groups in [`PREREQ_FIELDS`] order.
    #[cfg(test)]
    fn all(&self) -> [&FieldBits; 9] {
        [
            &self.ip_only,
            &self.ip_or_arp,
            &self.ports,
            &self.tcp_flags,
            &self.arp_ha,
            &self.nd,
            &self.ipv6_label,
            &self.mpls,
            &self.ct_tuple,
        ]
    }
}

fn prereq_groups() -> &'static PrereqGroups {
    static GROUPS: OnceLock<PrereqGroups> = OnceLock::new();
    GROUPS.get_or_init(|| {
        let [ip_only, ip_or_arp, ports, tcp_flags, arp_ha, nd, ipv6_label, mpls, ct_tuple] =
            PREREQ_FIELDS.map(FieldBits::of);
        PrereqGroups {
            ip_only,
            ip_or_arp,
            ports,
            tcp_flags,
            arp_ha,
            nd,
            ipv6_label,
            mpls,
            ct_tuple,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `FieldBits::any_in` says what a field-by-field `mask.get` does,
    /// for a mask of each single field, for each field alone and for the
    /// groups `check_prereqs` uses.
    #[test]
    fn field_bits_agree_with_get() {
        let g = prereq_groups();
        for &f in &Field::ALL {
            let mut mask = FlowMask::CATCHALL;
            mask.set_exact(f);
            for &x in &Field::ALL {
                assert_eq!(
                    FieldBits::of(&[x]).any_in(&mask),
                    mask.get(x) != 0,
                    "{x:?} under {f:?}"
                );
            }
            for (fs, bits) in PREREQ_FIELDS.iter().zip(g.all()) {
                let want = fs.iter().any(|&x| mask.get(x) != 0);
                assert_eq!(bits.any_in(&mask), want, "{fs:?} under {f:?}");
            }
            assert!(!FieldBits::of(&[f]).any_in(&FlowMask::CATCHALL));
        }
    }

    #[test]
    fn set_and_get_fields() {
        let mut m = Match::CATCHALL;
        m.set_field(OxmField::EthType, 0x0800, 0xffff).unwrap();
        m.set_field(OxmField::IpProto, 6, 0xff).unwrap();
        m.set_field(OxmField::IpDscp, 46, 0x3f).unwrap();
        m.set_field(OxmField::IpEcn, 1, 0x3).unwrap();
        m.set_field(OxmField::Ipv4Dst, 0x0a00_0000, 0xff00_0000)
            .unwrap();
        m.set_field(OxmField::TcpDst, 80, 0xffff).unwrap();
        m.set_field(OxmField::VlanVid, 0x1000 | 10, 0x1fff).unwrap();
        m.set_field(OxmField::VlanPcp, 5, 0x7).unwrap();
        m.set_field(OxmField::Metadata, 0xab, 0xff).unwrap();
        assert_eq!(m.key.nw_tos(), (46 << 2) | 1);
        assert_eq!(m.key.vlan_tci(), 0xb00a);
        assert_eq!(m.field(OxmField::IpDscp), (46, 0x3f));
        assert_eq!(m.field(OxmField::Ipv4Dst), (0x0a00_0000, 0xff00_0000));
        assert_eq!(m.field(OxmField::Metadata), (0xab, 0xff));
        m.check_prereqs().unwrap();
        assert_eq!(
            m.set_field(OxmField::VlanPcp, 8, 7),
            Err(OfError::BAD_VALUE)
        );
    }

    #[test]
    fn prerequisites() {
        let mut m = Match::CATCHALL;
        m.set_field(OxmField::TcpDst, 80, 0xffff).unwrap();
        assert_eq!(m.check_prereqs(), Err(OfError::BAD_PREREQ));
        m.set_field(OxmField::EthType, 0x86dd, 0xffff).unwrap();
        assert_eq!(m.check_prereqs(), Err(OfError::BAD_PREREQ));
        m.set_field(OxmField::IpProto, 6, 0xff).unwrap();
        m.check_prereqs().unwrap();
        let mut a = Match::CATCHALL;
        a.set_field(OxmField::ArpTpa, 0x0a000001, u128::from(u32::MAX))
            .unwrap();
        assert_eq!(a.check_prereqs(), Err(OfError::BAD_PREREQ));
        a.set_field(OxmField::EthType, 0x0806, 0xffff).unwrap();
        a.check_prereqs().unwrap();
        // RARP has ARP's fields (OVS `is_arp`).
        a.set_field(OxmField::EthType, 0x8035, 0xffff).unwrap();
        a.set_field(OxmField::ArpOp, 3, 0xff).unwrap();
        a.check_prereqs().unwrap();
    }
}
