//! TCP headers (RFC 9293).

use super::{be16, be32, put16, put32, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const FLAGS: usize = 12;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Offset of the checksum field from the start of the TCP header.
pub const CHECKSUM_OFFSET: u16 = field::CHECKSUM as u16;

/// FIN flag.
pub const FIN: u16 = 0x001;
/// SYN flag.
pub const SYN: u16 = 0x002;
/// RST flag.
pub const RST: u16 = 0x004;
/// PSH flag.
pub const PSH: u16 = 0x008;
/// ACK flag.
pub const ACK: u16 = 0x010;
/// URG flag.
pub const URG: u16 = 0x020;
/// ECE flag.
pub const ECE: u16 = 0x040;
/// CWR flag.
pub const CWR: u16 = 0x080;

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer, checking it (see [`Packet::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ensure `20 <= header_len <= buffer length`.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let hl = usize::from(self.header_len());
        if hl < HEADER_LEN || hl > len {
            return Err(Error);
        }
        Ok(())
    }

    /// Consume the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }

    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::FLAGS] >> 4) * 4
    }

    /// The 12 flag bits (NS..FIN), as OVS's `tcp_flags` field.
    #[inline]
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS) & 0x0fff
    }

    /// Window size.
    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum as stored.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }

    /// Data after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the source port.
    pub fn set_src_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, p);
    }

    /// Set the destination port.
    pub fn set_dst_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, p);
    }

    /// Set the sequence number.
    pub fn set_seq_number(&mut self, s: u32) {
        put32(self.buffer.as_mut(), field::SEQ, s);
    }

    /// Set the acknowledgment number.
    pub fn set_ack_number(&mut self, a: u32) {
        put32(self.buffer.as_mut(), field::ACK, a);
    }

    /// Set header length (bytes, multiple of 4) and the 12 flag bits.
    pub fn set_header_len_and_flags(&mut self, header_len: u8, flags: u16) {
        let v = (u16::from(header_len / 4) << 12) | (flags & 0x0fff);
        put16(self.buffer.as_mut(), field::FLAGS, v);
    }

    /// Set the flag bits, keeping the header length.
    pub fn set_flags(&mut self, flags: u16) {
        let hl = self.header_len();
        self.set_header_len_and_flags(hl, flags);
    }

    /// Set the window size.
    pub fn set_window_len(&mut self, w: u16) {
        put16(self.buffer.as_mut(), field::WINDOW, w);
    }

    /// Set the stored checksum.
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SEG: [u8; 22] = [
        0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x18, 0xff, 0xff, 0x12, 0x34, 0, 0,
        0xaa, 0xbb,
    ];

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&SEG[..]).unwrap();
        assert_eq!(p.src_port(), 1234);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 1);
        assert_eq!(p.ack_number(), 2);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.flags(), PSH | ACK);
        assert_eq!(p.window_len(), 0xffff);
        assert_eq!(p.checksum(), 0x1234);
        assert_eq!(p.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn test_construct() {
        let mut b = [0u8; 22];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(1234);
        p.set_dst_port(80);
        p.set_seq_number(1);
        p.set_ack_number(2);
        p.set_header_len_and_flags(20, PSH | ACK);
        p.set_window_len(0xffff);
        p.set_checksum(0x1234);
        b[20] = 0xaa;
        b[21] = 0xbb;
        assert_eq!(b, SEG);
    }

    #[test]
    fn test_rejects() {
        assert!(Packet::new_checked(&SEG[..19]).is_err());
        let mut bad = SEG;
        bad[12] = 0x40; // 16-byte header
        assert!(Packet::new_checked(&bad[..]).is_err());
        bad[12] = 0x60; // 24-byte header > 22
        assert!(Packet::new_checked(&bad[..]).is_err());
    }
}
