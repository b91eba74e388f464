//! ARP for IPv4 over Ethernet (RFC 826).

use std::net::Ipv4Addr;

use super::{be16, put16, Error, MacAddr, Result};

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
    pub const END: usize = 28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::END;

/// ARP request opcode.
pub const OP_REQUEST: u16 = 1;
/// ARP reply opcode.
pub const OP_REPLY: u16 = 2;

/// A view of an Ethernet/IPv4 ARP packet. `check_len` also requires
/// hardware type 1, protocol type 0x0800 and address lengths 6 and 4, since
/// the accessors assume that layout.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer, checking length and address formats.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ensure the packet is a complete Ethernet/IPv4 ARP packet.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < field::END
            || be16(b, field::HTYPE) != 1
            || be16(b, field::PTYPE) != 0x0800
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(Error);
        }
        Ok(())
    }

    /// Consume the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Operation (1 request, 2 reply).
    pub fn operation(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OPER)
    }

    /// Sender hardware address.
    pub fn sha(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SHA..])
    }

    /// Sender protocol address.
    pub fn spa(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SPA..field::SPA + 4];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Target hardware address.
    pub fn tha(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::THA..])
    }

    /// Target protocol address.
    pub fn tpa(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::TPA..field::TPA + 4];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Write the fixed Ethernet/IPv4 format fields.
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        put16(b, field::HTYPE, 1);
        put16(b, field::PTYPE, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }

    /// Set the operation.
    pub fn set_operation(&mut self, op: u16) {
        put16(self.buffer.as_mut(), field::OPER, op);
    }

    /// Set the sender addresses.
    pub fn set_sender(&mut self, mac: MacAddr, ip: Ipv4Addr) {
        let b = self.buffer.as_mut();
        b[field::SHA..field::SHA + 6].copy_from_slice(&mac.0);
        b[field::SPA..field::SPA + 4].copy_from_slice(&ip.octets());
    }

    /// Set the target addresses.
    pub fn set_target(&mut self, mac: MacAddr, ip: Ipv4Addr) {
        let b = self.buffer.as_mut();
        b[field::THA..field::THA + 6].copy_from_slice(&mac.0);
        b[field::TPA..field::TPA + 4].copy_from_slice(&ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static PKT: [u8; 28] = [
        0, 1, 8, 0, 6, 4, 0, 1, // htype, ptype, hlen, plen, op
        2, 0, 0, 0, 0, 1, 10, 0, 0, 1, // sender
        0, 0, 0, 0, 0, 0, 10, 0, 0, 2, // target
    ];

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&PKT[..]).unwrap();
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.sha(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(p.spa(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.tha(), MacAddr([0; 6]));
        assert_eq!(p.tpa(), Ipv4Addr::new(10, 0, 0, 2));
    }

    #[test]
    fn test_construct() {
        let mut buf = [0u8; 28];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_ethernet_ipv4();
        p.set_operation(OP_REQUEST);
        p.set_sender(MacAddr([2, 0, 0, 0, 0, 1]), Ipv4Addr::new(10, 0, 0, 1));
        p.set_target(MacAddr([0; 6]), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(buf, PKT);
    }

    #[test]
    fn test_rejects() {
        assert!(Packet::new_checked(&PKT[..27]).is_err());
        let mut bad = PKT;
        bad[4] = 8;
        assert!(Packet::new_checked(&bad[..]).is_err());
    }
}
