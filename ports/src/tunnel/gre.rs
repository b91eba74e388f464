//! The GRE header (RFC 2784, with the key and sequence number fields of
//! RFC 2890) carrying Ethernet (Transparent Ethernet Bridging, 0x6558), as
//! OVS's `gre` tunnel ports use it:
//!
//! ```text
//! |C|R|K|S| Reserved0 |Ver|         Protocol Type         |
//! |      Checksum (optional)      |     Reserved1 (optional)      |
//! |                         Key (optional)                        |
//! |                 Sequence Number (optional)                    |
//! ```

use xennet_datapath::csum;

use super::DecapError;

/// IP protocol number of GRE.
pub const PROTO_GRE: u8 = 47;
/// Protocol type of an Ethernet payload.
pub const PROTO_TEB: u16 = 0x6558;
const FLAG_C: u16 = 0x8000;
const FLAG_R: u16 = 0x4000;
const FLAG_K: u16 = 0x2000;
const FLAG_S: u16 = 0x1000;
const VERSION: u16 = 0x0007;

/// Header length for a header with a key and, if `csum`, a checksum.
pub fn header_len(csum: bool) -> usize {
    8 + if csum { 4 } else { 0 }
}

/// Write a header with key `key` (and a checksum field if `csum`) at the
/// start of `b`, whose rest is the payload; fills the checksum over the
/// header and payload.
pub fn emit(b: &mut [u8], key: u32, csum_on: bool) {
    let flags = FLAG_K | if csum_on { FLAG_C } else { 0 };
    b[0..2].copy_from_slice(&flags.to_be_bytes());
    b[2..4].copy_from_slice(&PROTO_TEB.to_be_bytes());
    let mut at = 4;
    if csum_on {
        b[4..8].copy_from_slice(&[0; 4]);
        at = 8;
    }
    b[at..at + 4].copy_from_slice(&key.to_be_bytes());
    if csum_on {
        let c = csum::checksum(b);
        b[4..6].copy_from_slice(&c.to_be_bytes());
    }
}

/// Parse the header at the start of `b` (the whole IP payload): its
/// length and key (0 without one). Version 0 only, no routing; a checksum
/// present must verify; the payload must be Ethernet.
pub fn parse(b: &[u8]) -> Result<(usize, u32), DecapError> {
    let h = b.get(..4).ok_or(DecapError::Truncated)?;
    let flags = u16::from_be_bytes([h[0], h[1]]);
    if flags & (FLAG_R | VERSION) != 0 {
        return Err(DecapError::GreHeader);
    }
    if u16::from_be_bytes([h[2], h[3]]) != PROTO_TEB {
        return Err(DecapError::GreProtocol);
    }
    let mut len = 4;
    if flags & FLAG_C != 0 {
        if b.len() < 8 {
            return Err(DecapError::Truncated);
        }
        if csum::checksum(b) != 0 {
            return Err(DecapError::GreChecksum);
        }
        len += 4;
    }
    let mut key = 0;
    if flags & FLAG_K != 0 {
        let k = b.get(len..len + 4).ok_or(DecapError::Truncated)?;
        key = u32::from_be_bytes([k[0], k[1], k[2], k[3]]);
        len += 4;
    }
    if flags & FLAG_S != 0 {
        len += 4;
    }
    if b.len() < len {
        return Err(DecapError::Truncated);
    }
    Ok((len, key))
}
