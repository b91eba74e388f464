//! UDP headers (RFC 768).

use super::{be16, put16, Error, Result};

/// Length of a UDP header.
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field from the start of the UDP header.
pub const CHECKSUM_OFFSET: u16 = 6;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer, checking that the 8-byte header fits. The length
    /// field is not checked against the buffer, so that flow extraction
    /// still sees the ports of a datagram with a bad length.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ensure the header fits.
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

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Length field (header plus data, bytes).
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// Whether the length field says there is no data.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum as stored (0 = none, IPv4 only).
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// Data after the header (to the end of the buffer).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the source port.
    pub fn set_src_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), 0, p);
    }

    /// Set the destination port.
    pub fn set_dst_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), 2, p);
    }

    /// Set the length field.
    pub fn set_len(&mut self, l: u16) {
        put16(self.buffer.as_mut(), 4, l);
    }

    /// Set the checksum.
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), 6, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static DGRAM: [u8; 10] = [0x00, 0x35, 0x04, 0xd2, 0x00, 0x0a, 0xbe, 0xef, 1, 2];

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&DGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 53);
        assert_eq!(p.dst_port(), 1234);
        assert_eq!(p.len(), 10);
        assert_eq!(p.checksum(), 0xbeef);
        assert_eq!(p.payload(), &[1, 2]);
    }

    #[test]
    fn test_construct() {
        let mut b = [0u8; 10];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(53);
        p.set_dst_port(1234);
        p.set_len(10);
        p.set_checksum(0xbeef);
        b[8] = 1;
        b[9] = 2;
        assert_eq!(b, DGRAM);
    }

    #[test]
    fn test_rejects() {
        assert!(Packet::new_checked(&DGRAM[..7]).is_err());
    }
}
