//! Where each [`OxmField`] lives in a [`Match`] and what it requires.
//!
//! Shared by the codecs (OXM, NXM, OpenFlow 1.0 `ofp_match`) and by the
//! pipeline, which uses [`OxmField::layout`] to turn `set_field` into
//! datapath writes.

use xennet_datapath::flow::Field;

use crate::error::OfError;
use crate::model::{Match, OxmField};
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
    /// `eth_type` 0x0806.
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
}

impl OxmField {
    /// Every field.
    pub const ALL: [OxmField; 30] = [
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
    ];

    /// `(key field, shift, bits)`: the field occupies `bits` bits of the
    /// datapath key field starting `shift` bits from its least significant
    /// end. `None` for `Metadata`, which is not a packet field.
    pub const fn layout(self) -> Option<(Field, u32, u32)> {
        use OxmField::*;
        Some(match self {
            InPort => (Field::InPort, 0, 32),
            Metadata => return None,
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
        })
    }

    /// Width in bits of the field's value (as OXM carries it, except
    /// `ArpOp`, which OXM sends as 16 bits but only 0..=255 fit).
    pub const fn bits(self) -> u32 {
        match self.layout() {
            Some((_, _, b)) => b,
            None => 64,
        }
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
            ArpOp | ArpSpa | ArpTpa => Prereq::Arp,
            Icmpv6Type | Icmpv6Code => Prereq::Icmpv6,
        }
    }

    /// Whether `set_field` may write this field (xennet cannot rewrite the
    /// input port, EtherType, IP protocol or fragment bits, as OVS).
    pub const fn is_writable(self) -> bool {
        !matches!(
            self,
            OxmField::InPort | OxmField::EthType | OxmField::IpProto | OxmField::IpFrag
        )
    }
}

impl Match {
    /// The `(value, mask)` of a field in this match (both right-aligned).
    pub fn field(&self, f: OxmField) -> (u128, u128) {
        match f.layout() {
            None => (u128::from(self.metadata), u128::from(self.metadata_mask)),
            Some((kf, shift, bits)) => {
                let m = ones(bits);
                (
                    (self.key.get(kf) >> shift) & m,
                    (self.mask.get(kf) >> shift) & m,
                )
            }
        }
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
        match f.layout() {
            None => {
                self.metadata = value as u64;
                self.metadata_mask = mask as u64;
            }
            Some((kf, shift, bits)) => {
                let fm = ones(bits) << shift;
                let k = (self.key.get(kf) & !fm) | (value << shift);
                let m = (self.mask.get(kf) & !fm) | (mask << shift);
                self.key.set(kf, k);
                self.mask.set(kf, m);
            }
        }
        Ok(())
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
        let ip = self.eth_type_is(0x0800) || self.eth_type_is(0x86dd);
        match p {
            Prereq::None => true,
            Prereq::Vlan => {
                let (v, m) = self.field(OxmField::VlanVid);
                m & 0x1000 != 0 && v & 0x1000 != 0
            }
            Prereq::Ip => ip,
            Prereq::Ipv4 => self.eth_type_is(0x0800),
            Prereq::Ipv6 => self.eth_type_is(0x86dd),
            Prereq::Arp => self.eth_type_is(0x0806),
            Prereq::Tcp => ip && self.ip_proto_is(6),
            Prereq::Udp => ip && self.ip_proto_is(17),
            Prereq::Sctp => ip && self.ip_proto_is(132),
            Prereq::Icmpv4 => self.eth_type_is(0x0800) && self.ip_proto_is(1),
            Prereq::Icmpv6 => self.eth_type_is(0x86dd) && self.ip_proto_is(58),
        }
    }

    /// Check every matched field's prerequisite (OpenFlow 1.3 §7.2.3.6).
    /// Because several OXM fields share key bits (TCP/UDP/SCTP ports,
    /// IPv4/IPv6/ARP addresses), this checks the bits in use against the
    /// EtherType and IP protocol the match pins.
    ///
    /// # Errors
    /// `BAD_PREREQ`.
    pub fn check_prereqs(&self) -> Result<(), OfError> {
        let any = |fs: &[Field]| fs.iter().any(|f| self.mask.get(*f) != 0);
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
        if any(&[Field::NwTos, Field::NwTtl, Field::NwFrag]) && !ip {
            return Err(OfError::BAD_PREREQ);
        }
        if any(&[Field::NwSrc, Field::NwDst, Field::NwProto]) && !(ip || self.eth_type_is(0x0806)) {
            return Err(OfError::BAD_PREREQ);
        }
        if any(&[Field::TpSrc, Field::TpDst])
            && !(ip && [6, 17, 132, 1, 58].iter().any(|p| self.ip_proto_is(*p)))
        {
            return Err(OfError::BAD_PREREQ);
        }
        if any(&[Field::TcpFlags]) && !self.satisfies(Prereq::Tcp) {
            return Err(OfError::BAD_PREREQ);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
