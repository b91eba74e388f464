//! Ethernet II frames (IEEE 802.3 without FCS) and 802.1Q / 802.1ad tags.

use super::{be16, put16, Error, Result};

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Whether the group bit (I/G, bit 0 of the first octet) is set;
    /// broadcast counts as multicast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// Whether this is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether this is one of the IEEE 802.1D reserved addresses
    /// `01:80:c2:00:00:0x` (STP, LACP, LLDP, ...), which bridges must not
    /// forward (OVS `eth_addr_is_reserved`).
    pub fn is_reserved(&self) -> bool {
        self.0[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && self.0[5] & 0xf0 == 0
    }

    /// The address as the low 48 bits of a u64.
    pub fn to_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b[2..].copy_from_slice(&self.0);
        u64::from_be_bytes(b)
    }

    /// The address from the low 48 bits of a u64.
    pub fn from_u64(v: u64) -> Self {
        let b = v.to_be_bytes();
        let mut m = [0u8; 6];
        m.copy_from_slice(&b[2..]);
        MacAddr(m)
    }

    /// Parse the first 6 bytes of `b`; `b` must hold at least 6 bytes.
    pub fn from_bytes(b: &[u8]) -> Self {
        let mut m = [0u8; 6];
        m.copy_from_slice(&b[..6]);
        MacAddr(m)
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

super::enum_with_unknown! {
    /// EtherType values (IEEE "EtherType" registry).
    pub enum EtherType(u16) {
        /// IPv4.
        Ipv4 = 0x0800,
        /// ARP (RFC 826).
        Arp = 0x0806,
        /// 802.1Q customer VLAN tag (C-TAG).
        Vlan = 0x8100,
        /// IPv6.
        Ipv6 = 0x86dd,
        /// 802.1ad service VLAN tag (S-TAG, "QinQ").
        QinQ = 0x88a8,
    }
}

impl EtherType {
    /// Whether this TPID introduces a VLAN tag (0x8100 or 0x88a8).
    pub fn is_vlan(self) -> bool {
        matches!(self, EtherType::Vlan | EtherType::QinQ)
    }
}

mod field {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wrap a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wrap a buffer, checking that the header fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Ensure the 14-byte header fits in the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Consume the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::DST])
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SRC])
    }

    /// EtherType (or TPID of an outer VLAN tag).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(be16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Everything after the 14-byte header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Set the destination address.
    pub fn set_dst_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.0);
    }

    /// Set the source address.
    pub fn set_src_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.0);
    }

    /// Set the EtherType.
    pub fn set_ethertype(&mut self, t: EtherType) {
        put16(self.buffer.as_mut(), field::ETHERTYPE, t.into());
    }

    /// Everything after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// Length of a VLAN tag (TCI plus the encapsulated EtherType).
pub const VLAN_TAG_LEN: usize = 4;

/// A view of the 4 bytes that follow a VLAN TPID: the tag control
/// information (PCP:3, DEI:1, VID:12) and the encapsulated EtherType.
#[derive(Debug, Clone)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wrap a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> VlanTag<T> {
        VlanTag { buffer }
    }

    /// Wrap a buffer, checking that the tag fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<VlanTag<T>> {
        let t = Self::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }

    /// Ensure the 4-byte tag fits.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < VLAN_TAG_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Consume the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole 16-bit TCI.
    #[inline]
    pub fn tci(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// VLAN ID (12 bits).
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// Priority code point (3 bits).
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// EtherType of what the tag encapsulates.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(be16(self.buffer.as_ref(), 2))
    }

    /// Everything after the tag.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[VLAN_TAG_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Set the TCI.
    pub fn set_tci(&mut self, tci: u16) {
        put16(self.buffer.as_mut(), 0, tci);
    }

    /// Set the encapsulated EtherType.
    pub fn set_ethertype(&mut self, t: EtherType) {
        put16(self.buffer.as_mut(), 2, t.into());
    }
}

/// Where the L3 header of an Ethernet frame starts: skips up to two VLAN
/// tags (802.1ad outer, 802.1Q inner). Returns the final EtherType and its
/// offset from the frame start, or `None` if the frame is truncated.
pub fn l3_offset(frame: &[u8]) -> Option<(EtherType, usize)> {
    let eth = Frame::new_checked(frame).ok()?;
    let mut ty = eth.ethertype();
    let mut off = HEADER_LEN;
    for _ in 0..2 {
        if !ty.is_vlan() {
            break;
        }
        let tag = VlanTag::new_checked(frame.get(off..)?).ok()?;
        ty = tag.ethertype();
        off += VLAN_TAG_LEN;
    }
    Some((ty, off))
}

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME: [u8; 22] = [
        0x02, 0, 0, 0, 0, 2, // dst
        0x02, 0, 0, 0, 0, 1, // src
        0x81, 0x00, // TPID
        0xa0, 0x0a, // PCP 5, VID 10
        0x08, 0x00, // IPv4
        0xde, 0xad, 0xbe, 0xef,
    ];

    #[test]
    fn test_deconstruct() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.src_addr(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), EtherType::Vlan);
        let t = VlanTag::new_checked(f.payload()).unwrap();
        assert_eq!(t.vid(), 10);
        assert_eq!(t.pcp(), 5);
        assert!(!t.dei());
        assert_eq!(t.ethertype(), EtherType::Ipv4);
        assert_eq!(t.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(l3_offset(&FRAME), Some((EtherType::Ipv4, 18)));
    }

    #[test]
    fn test_construct() {
        let mut buf = [0u8; 18];
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.set_dst_addr(MacAddr([2, 0, 0, 0, 0, 2]));
        f.set_src_addr(MacAddr([2, 0, 0, 0, 0, 1]));
        f.set_ethertype(EtherType::Vlan);
        let mut t = VlanTag::new_unchecked(f.payload_mut());
        t.set_tci(0xa00a);
        t.set_ethertype(EtherType::Ipv4);
        assert_eq!(&buf[..], &FRAME[..18]);
    }

    #[test]
    fn test_truncated() {
        assert!(Frame::new_checked(&FRAME[..13]).is_err());
        assert_eq!(l3_offset(&FRAME[..16]), None);
    }

    #[test]
    fn mac_classes() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]).is_reserved());
        assert!(!MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x10]).is_reserved());
        assert_eq!(
            MacAddr::from_u64(MacAddr([1, 2, 3, 4, 5, 6]).to_u64()).0,
            [1, 2, 3, 4, 5, 6]
        );
        assert_eq!(
            MacAddr([0xa, 0xb, 0xc, 0xd, 0xe, 0xf]).to_string(),
            "0a:0b:0c:0d:0e:0f"
        );
    }
}
