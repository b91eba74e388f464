//! `ofp_header` (OpenFlow 1.3 §7.1), framing and HELLO version bitmaps
//! (§7.5.1, `OFPHET_VERSIONBITMAP`).

use crate::error::{DecodeError, OfError};
use crate::model::Msg;

/// OpenFlow 1.0 wire version.
pub const OFP10_VERSION: u8 = 0x01;
/// OpenFlow 1.3 wire version.
pub const OFP13_VERSION: u8 = 0x04;
/// OpenFlow 1.4 wire version.
pub const OFP14_VERSION: u8 = 0x05;
/// OpenFlow 1.5 wire version.
pub const OFP15_VERSION: u8 = 0x06;
/// Versions xennet speaks, as a HELLO bitmap (bit n = version n): 1.0,
/// 1.3, 1.4 and 1.5 (`0x72`).
pub const SUPPORTED_BITMAP: u32 =
    (1 << OFP10_VERSION) | (1 << OFP13_VERSION) | (1 << OFP14_VERSION) | (1 << OFP15_VERSION);
/// `OFPT_HELLO`, the same in every version.
pub const OFPT_HELLO: u8 = 0;
/// `OFPT_ERROR`, the same in every version.
pub const OFPT_ERROR: u8 = 1;
/// Length of `ofp_header` in bytes.
pub const HEADER_LEN: usize = 8;
/// `OFP_NO_BUFFER`: the packet is not buffered in the switch.
pub const NO_BUFFER: u32 = 0xffff_ffff;

/// `ofp_header`: version, type, total length in bytes, transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Wire version (0x01 = 1.0, 0x04 = 1.3, …).
    pub version: u8,
    /// Message type (version specific numbering).
    pub typ: u8,
    /// Length of the whole message including this header, in bytes.
    pub length: u16,
    /// Transaction id, echoed in replies.
    pub xid: u32,
}

impl Header {
    /// Parse the header at the start of `buf`, checking that `length` is at
    /// least 8 and that `buf` holds the whole message.
    ///
    /// # Errors
    /// `BAD_REQUEST/BAD_LEN` when the length is short or beyond `buf`.
    pub fn parse(buf: &[u8]) -> Result<Header, DecodeError> {
        if buf.len() < HEADER_LEN {
            return Err(DecodeError::new(OfError::BAD_LEN, "short header"));
        }
        let h = Header {
            version: buf[0],
            typ: buf[1],
            length: u16::from_be_bytes([buf[2], buf[3]]),
            xid: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        };
        if usize::from(h.length) < HEADER_LEN || usize::from(h.length) > buf.len() {
            return Err(DecodeError::new(OfError::BAD_LEN, "bad header length"));
        }
        Ok(h)
    }

    /// Append this header to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.version);
        out.push(self.typ);
        out.extend_from_slice(&self.length.to_be_bytes());
        out.extend_from_slice(&self.xid.to_be_bytes());
    }
}

/// Length of the first message in a byte stream: `Some(n)` once the header
/// is there (`n >= 8`; a shorter declared length is returned as 8 so the
/// caller can reject it), `None` while fewer than 8 bytes are buffered.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    Some(usize::from(u16::from_be_bytes([buf[2], buf[3]])).max(HEADER_LEN))
}

/// Decode a HELLO of any version: the version bitmap element if present,
/// else the single bit of the header's version (§7.5.1).
///
/// # Errors
/// `BAD_REQUEST/BAD_LEN` for fewer than 8 bytes, `HELLO_FAILED/INCOMPATIBLE`
/// for a malformed element list.
pub fn decode_hello(buf: &[u8]) -> Result<Msg, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::new(OfError::BAD_LEN, "short header"));
    }
    let version = buf[0];
    let mut bitmap = if version < 32 { 1u32 << version } else { 0 };
    let mut rest = &buf[HEADER_LEN..];
    while rest.len() >= 4 {
        let typ = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if len < 4 || len > rest.len() {
            return Err(DecodeError::new(
                OfError::HELLO_INCOMPATIBLE,
                "bad hello element",
            ));
        }
        if typ == 1 && len >= 8 {
            // OFPHET_VERSIONBITMAP: only the first 32 bits matter to us.
            bitmap = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        }
        let padded = len.div_ceil(8) * 8;
        rest = rest.get(padded..).unwrap_or(&[]);
    }
    Ok(Msg::Hello { versions: bitmap })
}

/// Append a HELLO for `version` carrying the version bitmap `versions`.
/// OpenFlow 1.0 peers get a bare header (they ignore the body anyway, but
/// some old ones reject it).
pub fn encode_hello(version: u8, versions: u32, xid: u32, out: &mut Vec<u8>) {
    if version <= OFP10_VERSION {
        Header {
            version,
            typ: OFPT_HELLO,
            length: 8,
            xid,
        }
        .write(out);
        return;
    }
    Header {
        version,
        typ: OFPT_HELLO,
        length: 16,
        xid,
    }
    .write(out);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&8u16.to_be_bytes());
    out.extend_from_slice(&versions.to_be_bytes());
}

/// The version to use after HELLOs: the highest version in both bitmaps,
/// or `None` (send `HELLO_FAILED/INCOMPATIBLE` and close).
pub fn negotiate(ours: u32, theirs: u32) -> Option<u8> {
    let common = ours & theirs;
    if common == 0 {
        None
    } else {
        Some(31 - common.leading_zeros() as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_roundtrip_and_negotiation() {
        let mut out = Vec::new();
        encode_hello(0x06, 0x52, 7, &mut out);
        assert_eq!(Header::parse(&out).unwrap().length, 16);
        let Msg::Hello { versions } = decode_hello(&out).unwrap() else {
            panic!()
        };
        assert_eq!(versions, 0x52);
        // An OVS 3.x peer offers 1.0..1.5 (0x7e); we pick 1.5.
        assert_eq!(negotiate(SUPPORTED_BITMAP, 0x7e), Some(OFP15_VERSION));
        assert_eq!(negotiate(SUPPORTED_BITMAP, 1 << 1), Some(OFP10_VERSION));
        assert_eq!(negotiate(SUPPORTED_BITMAP, 1 << 6), Some(OFP15_VERSION));
        assert_eq!(negotiate(SUPPORTED_BITMAP, 0x18), Some(OFP13_VERSION));
        // 1.1 and 1.2 only: nothing in common.
        assert_eq!(negotiate(SUPPORTED_BITMAP, 0x0c), None);
        assert_eq!(frame_len(&out[..7]), None);
        // Cut short, it is an error, not a panic.
        for n in 0..HEADER_LEN {
            assert!(decode_hello(&out[..n]).is_err());
        }
        assert_eq!(frame_len(&out), Some(16));
    }
}
