//! The Geneve header and options (RFC 8926 §3.4, §3.5):
//!
//! ```text
//! |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//! |        Virtual Network Identifier (VNI)       |    Reserved   |
//! |                    Variable-Length Options                    |
//! option: |  Option Class (16)  |C| Type (7) |R|R|R| Length (5) | data (4 * Length) |
//! ```

use super::DecapError;

/// IANA UDP port for Geneve.
pub const PORT: u16 = 6081;
/// Header length in bytes, without options.
pub const HEADER_LEN: usize = 8;
/// Most option bytes a header can carry (`Opt Len` is 6 bits of 4 bytes).
pub const MAX_OPTS_LEN: usize = 63 * 4;
/// Protocol type of an Ethernet payload (Transparent Ethernet Bridging).
pub const PROTO_ETHERNET: u16 = 0x6558;
/// O bit: an OAM packet.
const FLAG_O: u8 = 0x80;
/// C bit: critical options are present.
const FLAG_C: u8 = 0x40;
/// The option type bit that marks an option critical.
pub const OPT_CRITICAL: u8 = 0x80;

/// A parsed Geneve header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// VNI (24 bits).
    pub vni: u32,
    /// O bit.
    pub oam: bool,
    /// C bit.
    pub critical: bool,
    /// Bytes of options after the fixed header.
    pub opts_len: usize,
}

/// Write a header for `vni` with options `opts` (already encoded, a
/// multiple of 4, at most [`MAX_OPTS_LEN`]; checked by the caller) into
/// `b` (at least [`HEADER_LEN`] + `opts.len()` bytes).
pub fn emit(b: &mut [u8], vni: u32, opts: &[u8], oam: bool) {
    let words = u8::try_from(opts.len() / 4).unwrap_or(0) & 0x3f;
    let critical = Options(opts).any(|o| o.map(|o| o.critical()).unwrap_or(false));
    b[0] = words;
    b[1] = if oam { FLAG_O } else { 0 } | if critical { FLAG_C } else { 0 };
    b[2..4].copy_from_slice(&PROTO_ETHERNET.to_be_bytes());
    b[4..7].copy_from_slice(&(vni & 0xff_ffff).to_be_bytes()[1..]);
    b[7] = 0;
    b[HEADER_LEN..HEADER_LEN + opts.len()].copy_from_slice(opts);
}

/// One option TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt<'a> {
    /// Option class.
    pub class: u16,
    /// Type, including the critical bit.
    pub kind: u8,
    /// Data (4 * Length bytes).
    pub data: &'a [u8],
}

impl Opt<'_> {
    /// Whether the option is critical (high bit of the type).
    pub fn critical(&self) -> bool {
        self.kind & OPT_CRITICAL != 0
    }
}

/// Iterator over the options in an options area; yields an error (and
/// then stops) at an option running past the area.
#[derive(Debug, Clone)]
pub struct Options<'a>(pub &'a [u8]);

impl<'a> Iterator for Options<'a> {
    type Item = Result<Opt<'a>, DecapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let b = self.0;
        if b.len() < 4 {
            self.0 = &[];
            return Some(Err(DecapError::GeneveOptions));
        }
        let len = usize::from(b[3] & 0x1f) * 4;
        let Some(data) = b.get(4..4 + len) else {
            self.0 = &[];
            return Some(Err(DecapError::GeneveOptions));
        };
        self.0 = &b[4 + len..];
        Some(Ok(Opt {
            class: u16::from_be_bytes([b[0], b[1]]),
            kind: b[2],
            data,
        }))
    }
}

/// Parse the header at the start of `b` and check its options: each must
/// fit, and a critical one must be known (`known(class, type)`).
pub fn parse(b: &[u8], known: &dyn Fn(u16, u8) -> bool) -> Result<Header, DecapError> {
    let h = b.get(..HEADER_LEN).ok_or(DecapError::Truncated)?;
    if h[0] >> 6 != 0 {
        return Err(DecapError::GeneveVersion);
    }
    let opts_len = usize::from(h[0] & 0x3f) * 4;
    let opts = b
        .get(HEADER_LEN..HEADER_LEN + opts_len)
        .ok_or(DecapError::Truncated)?;
    if u16::from_be_bytes([h[2], h[3]]) != PROTO_ETHERNET {
        return Err(DecapError::GeneveProtocol);
    }
    for o in Options(opts) {
        let o = o?;
        if o.critical() && !known(o.class, o.kind) {
            return Err(DecapError::GeneveCritical);
        }
    }
    Ok(Header {
        vni: u32::from_be_bytes([0, h[4], h[5], h[6]]),
        oam: h[1] & FLAG_O != 0,
        critical: h[1] & FLAG_C != 0,
        opts_len,
    })
}
