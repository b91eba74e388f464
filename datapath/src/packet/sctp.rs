//! SCTP common headers (RFC 9260 §3.1).
//!
//! ```text
//!  0                   1                   2                   3
//! |     Source Port Number        |     Destination Port Number   |
//! |                      Verification Tag                         |
//! |                           Checksum                            |
//! ```
//!
//! The checksum is a CRC32c over the whole SCTP packet with the checksum
//! field zeroed, stored in little-endian byte order (RFC 9260 App. B); see
//! [`crate::rewrite::crc32c`].

use super::{be16, be32, put16, Error, Result};

/// Length of the SCTP common header.
pub const HEADER_LEN: usize = 12;
/// Offset of the checksum field from the start of the SCTP header.
pub const CHECKSUM_OFFSET: usize = 8;

/// A view of an SCTP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer, checking that the 12-byte common header fits (OVS
    /// `miniflow_extract` reads the ports only then, `SCTP_HEADER_LEN`).
    /// Chunks are not checked.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ensure the common header fits.
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

    /// Verification tag.
    pub fn verification_tag(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// Checksum as the CRC32c value (the field is little-endian).
    pub fn checksum(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_le_bytes([b[8], b[9], b[10], b[11]])
    }

    /// Chunks after the common header (to the end of the buffer).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the source port (the checksum is not updated).
    pub fn set_src_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), 0, p);
    }

    /// Set the destination port (the checksum is not updated).
    pub fn set_dst_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), 2, p);
    }

    /// Store a CRC32c value in the checksum field.
    pub fn set_checksum(&mut self, c: u32) {
        self.buffer.as_mut()[8..12].copy_from_slice(&c.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::crc32c;

    // INIT-less DATA packet 5000 -> 80, tag 1, one 8-byte chunk.
    static BYTES: [u8; 20] = [
        0x13, 0x88, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0xaa, 0xbb, 0xcc, 0xdd, 0x01, 0x00, 0x00,
        0x08, 0xde, 0xad, 0xbe, 0xef,
    ];

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&BYTES[..]).unwrap();
        assert_eq!(p.src_port(), 5000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.verification_tag(), 1);
        assert_eq!(p.checksum(), 0xddcc_bbaa);
        assert_eq!(p.payload(), &BYTES[12..]);
    }

    #[test]
    fn test_construct() {
        let mut b = BYTES;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_checksum(0);
        let c = crc32c(p.into_inner());
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_checksum(c);
        assert_eq!(&b[..8], &[0, 1, 0, 2, 0, 0, 0, 1]);
        assert_eq!(&b[8..12], &c.to_le_bytes());
    }

    #[test]
    fn test_truncated() {
        assert_eq!(Packet::new_checked(&BYTES[..11]).unwrap_err(), Error);
        assert!(Packet::new_checked(&BYTES[..12]).is_ok());
    }
}
