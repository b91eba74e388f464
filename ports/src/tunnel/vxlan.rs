//! The VXLAN header (RFC 7348 §5):
//!
//! ```text
//!  0                   1                   2                   3
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! ```

use super::DecapError;

/// IANA UDP port for VXLAN.
pub const PORT: u16 = 4789;
/// Header length in bytes.
pub const HEADER_LEN: usize = 8;
/// The I flag: the VNI is valid.
const FLAG_I: u8 = 0x08;

/// Write a header for `vni` (24 bits) into `b` (at least
/// [`HEADER_LEN`] bytes).
pub fn emit(b: &mut [u8], vni: u32) {
    b[..HEADER_LEN].copy_from_slice(&[0; HEADER_LEN]);
    b[0] = FLAG_I;
    b[4..7].copy_from_slice(&(vni & 0xff_ffff).to_be_bytes()[1..]);
}

/// The VNI of the header at the start of `b`. Reserved bits are ignored
/// on receipt (RFC 7348 §5); the I flag must be set.
pub fn parse(b: &[u8]) -> Result<u32, DecapError> {
    let h = b.get(..HEADER_LEN).ok_or(DecapError::Truncated)?;
    if h[0] & FLAG_I == 0 {
        return Err(DecapError::VxlanFlags);
    }
    Ok(u32::from_be_bytes([0, h[4], h[5], h[6]]))
}
