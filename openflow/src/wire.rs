//! The bounds-checked reader, the writer and the string fields the
//! OpenFlow 1.0 and 1.3 codecs share.

use crate::error::{DecodeError, OfError};
use crate::header::Header;
use crate::model::{Desc, EncodeError, PortStats};

/// A bounds-checked big-endian reader; running short gives `err`.
pub(crate) struct Rd<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) err: OfError,
}

impl<'a> Rd<'a> {
    pub(crate) fn new(b: &'a [u8], err: OfError) -> Rd<'a> {
        Rd { b, err }
    }

    pub(crate) fn short(&self) -> DecodeError {
        DecodeError::new(self.err, "message too short")
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.b.len() {
            return Err(self.short());
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    pub(crate) fn arr<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.arr::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.arr()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.arr()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.arr()?))
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.b)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    /// Fail unless everything was consumed.
    pub(crate) fn end(&self) -> Result<(), DecodeError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::new(self.err, "trailing bytes"))
        }
    }

    /// Cut a length-prefixed record: `len` is the record's declared total
    /// length, `min` its fixed part; the record must fit in what is left.
    pub(crate) fn record(&mut self, len: usize, min: usize) -> Result<Rd<'a>, DecodeError> {
        if len < min {
            return Err(DecodeError::new(self.err, "record length too short"));
        }
        Ok(Rd::new(self.take(len)?, self.err))
    }

    /// The next record's 16-bit length at byte offset `at`, without
    /// consuming anything.
    pub(crate) fn peek_len(&self, at: usize) -> Result<usize, DecodeError> {
        match self.b.get(at..at + 2) {
            Some(s) => Ok(usize::from(u16::from_be_bytes([s[0], s[1]]))),
            None => Err(self.short()),
        }
    }

    /// Bytes left.
    pub(crate) fn len(&self) -> usize {
        self.b.len()
    }

    /// Cut the next element of a list of 8-byte-aligned TLVs (type, length,
    /// body: `ofp_action_header`, `ofp_instruction`): its type and a reader
    /// over what follows type and length. A length not a multiple of 8
    /// fails with `what`.
    pub(crate) fn tlv8(&mut self, what: &'static str) -> Result<(u16, Rd<'a>), DecodeError> {
        let typ = self.peek_len(0)? as u16;
        let len = self.peek_len(2)?;
        if len % 8 != 0 {
            return Err(DecodeError::new(self.err, what));
        }
        let mut r = self.record(len, 8)?;
        r.skip(4)?;
        Ok((typ, r))
    }
}

/// The low `bits` bits set (all for 128 or more).
pub(crate) fn ones(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// A big-endian field of up to 16 bytes as a number.
pub(crate) fn be_value(bytes: &[u8]) -> u128 {
    bytes
        .iter()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
}

/// A NUL-padded fixed-width string.
pub(crate) fn get_str(b: &[u8]) -> String {
    let n = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..n]).into_owned()
}

/// Big-endian appends to an output buffer.
pub(crate) trait Put {
    fn u8(&mut self, v: u8);
    fn u16(&mut self, v: u16);
    fn u32(&mut self, v: u32);
    fn u64(&mut self, v: u64);
    fn zeros(&mut self, n: usize);
    /// `s` NUL-padded to `n` bytes, cut to `n - 1` bytes at a character
    /// boundary so a NUL always ends it.
    fn str(&mut self, s: &str, n: usize);
    /// Zeros up to a multiple of 8 bytes counted from `start`.
    fn pad8(&mut self, start: usize);
    /// Store `v` at `at` (a length field written earlier as zero).
    fn patch16(&mut self, at: usize, v: u16);
}

impl Put for Vec<u8> {
    fn u8(&mut self, v: u8) {
        self.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn zeros(&mut self, n: usize) {
        self.resize(self.len() + n, 0);
    }
    fn str(&mut self, s: &str, n: usize) {
        let mut end = s.len().min(n.saturating_sub(1));
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.extend_from_slice(&s.as_bytes()[..end]);
        self.zeros(n - end);
    }
    fn pad8(&mut self, start: usize) {
        let len = self.len() - start;
        self.zeros(len.next_multiple_of(8) - len);
    }
    fn patch16(&mut self, at: usize, v: u16) {
        self[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
}

/// The largest message: `ofp_header.length` is 16 bits.
pub(crate) const MAX_MSG: usize = 0xffff;

/// Start a message: an `ofp_header` with length 0. Returns its offset.
pub(crate) fn begin(out: &mut Vec<u8>, version: u8, typ: u8, xid: u32) -> usize {
    let start = out.len();
    Header {
        version,
        typ,
        length: 0,
        xid,
    }
    .write(out);
    start
}

/// Patch the length of the message that starts at `start`.
pub(crate) fn finish(out: &mut Vec<u8>, start: usize) -> Result<(), EncodeError> {
    let len = u16::try_from(out.len() - start)
        .map_err(|_| EncodeError::Unsupported("message longer than 65535 bytes"))?;
    out.patch16(start + 2, len);
    Ok(())
}

/// Patch the 16-bit length at `at` with the bytes written since `start`.
pub(crate) fn end_record(out: &mut Vec<u8>, start: usize, at: usize) -> Result<(), EncodeError> {
    let len = u16::try_from(out.len() - start)
        .map_err(|_| EncodeError::Unsupported("record longer than 65535 bytes"))?;
    out.patch16(at, len);
    Ok(())
}

/// `OFPSF_REPLY_MORE` (1.0) and `OFPMPF_REPLY_MORE` (1.3).
const REPLY_MORE: u16 = 1;

/// Append a multipart (1.0: stats) reply whose body is `items`, split
/// into as few messages of at most 65535 bytes as will hold them, each
/// but the last with `REPLY_MORE` added to `flags`. `begin` writes one
/// message's header and fixed part (length 0, flags at byte 10 as in both
/// `ofp_stats_reply` and `ofp_multipart_reply`) and returns its start.
/// On error nothing is appended.
pub(crate) fn put_split_reply<T>(
    out: &mut Vec<u8>,
    flags: u16,
    begin: impl Fn(&mut Vec<u8>) -> usize,
    items: &[T],
    put: impl Fn(&mut Vec<u8>, &T) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let finish = |out: &mut Vec<u8>, start: usize, flags: u16| {
        let len = (out.len() - start) as u16;
        out.patch16(start + 2, len);
        out.patch16(start + 10, flags);
    };
    let first = out.len();
    let r = (|| {
        let mut start = begin(out);
        let fixed = out.len() - start;
        for item in items {
            let at = out.len();
            put(out, item)?;
            if out.len() - start > MAX_MSG {
                let tail = out.split_off(at);
                if fixed + tail.len() > MAX_MSG {
                    return Err(EncodeError::Unsupported(
                        "multipart item longer than a message",
                    ));
                }
                finish(out, start, flags | REPLY_MORE);
                start = begin(out);
                out.extend_from_slice(&tail);
            }
        }
        finish(out, start, flags);
        Ok(())
    })();
    if r.is_err() {
        out.truncate(first);
    }
    r
}

// ---------------------------------------------------------------------------
// Bodies whose layout is the same in OpenFlow 1.0 and 1.3.

/// `ofp_desc` (1.0 `ofp_desc_stats`), the whole body: 1056 bytes.
pub(crate) fn get_desc(rd: &mut Rd<'_>) -> Result<Desc, DecodeError> {
    let d = Desc {
        mfr_desc: get_str(rd.take(256)?),
        hw_desc: get_str(rd.take(256)?),
        sw_desc: get_str(rd.take(256)?),
        serial_num: get_str(rd.take(32)?),
        dp_desc: get_str(rd.take(256)?),
    };
    rd.end()?;
    Ok(d)
}

pub(crate) fn put_desc(out: &mut Vec<u8>, d: &Desc) {
    out.str(&d.mfr_desc, 256);
    out.str(&d.hw_desc, 256);
    out.str(&d.sw_desc, 256);
    out.str(&d.serial_num, 32);
    out.str(&d.dp_desc, 256);
}

/// `ofp_aggregate_stats_reply` (and `nx_aggregate_stats_reply`), the
/// whole body: packet, byte and flow counts.
pub(crate) fn get_aggregate(rd: &mut Rd<'_>) -> Result<(u64, u64, u32), DecodeError> {
    let packets = rd.u64()?;
    let bytes = rd.u64()?;
    let flows = rd.u32()?;
    rd.skip(4)?;
    rd.end()?;
    Ok((packets, bytes, flows))
}

pub(crate) fn put_aggregate(out: &mut Vec<u8>, packets: u64, bytes: u64, flows: u32) {
    out.u64(packets);
    out.u64(bytes);
    out.u32(flows);
    out.zeros(4);
}

/// The twelve counters of `ofp_port_stats`, rx_packets to collisions
/// (the port number before them and 1.3's duration after differ); the
/// duration is left 0.
pub(crate) fn get_port_counters(rd: &mut Rd<'_>, port_no: u32) -> Result<PortStats, DecodeError> {
    Ok(PortStats {
        port_no,
        rx_packets: rd.u64()?,
        tx_packets: rd.u64()?,
        rx_bytes: rd.u64()?,
        tx_bytes: rd.u64()?,
        rx_dropped: rd.u64()?,
        tx_dropped: rd.u64()?,
        rx_errors: rd.u64()?,
        tx_errors: rd.u64()?,
        rx_frame_err: rd.u64()?,
        rx_over_err: rd.u64()?,
        rx_crc_err: rd.u64()?,
        collisions: rd.u64()?,
        duration_sec: 0,
        duration_nsec: 0,
    })
}

pub(crate) fn put_port_counters(out: &mut Vec<u8>, s: &PortStats) {
    for v in [
        s.rx_packets,
        s.tx_packets,
        s.rx_bytes,
        s.tx_bytes,
        s.rx_dropped,
        s.tx_dropped,
        s.rx_errors,
        s.tx_errors,
        s.rx_frame_err,
        s.rx_over_err,
        s.rx_crc_err,
        s.collisions,
    ] {
        out.u64(v);
    }
}

/// A decode error: `e` (the OpenFlow error to send back) and `what`
/// (for the log).
pub(crate) fn err(e: OfError, what: &'static str) -> DecodeError {
    DecodeError::new(e, what)
}

/// An encode error for something the wire form cannot express.
pub(crate) fn unsupported(what: &'static str) -> EncodeError {
    EncodeError::Unsupported(what)
}

/// The big-endian u16 at `b[at..]` (the caller has checked the length).
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The big-endian u32 at `b[at..]` (the caller has checked the length).
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Append the low 48 bits of `v` (a MAC address).
pub(crate) fn put_mac(out: &mut Vec<u8>, v: u128) {
    out.extend_from_slice(&(v as u64).to_be_bytes()[2..]);
}

/// `(packets, bytes)` counter pairs.
pub(crate) fn get_counters(rd: &mut Rd<'_>) -> Result<Vec<(u64, u64)>, DecodeError> {
    if rd.b.len() % 16 != 0 {
        return Err(err(OfError::BAD_LEN, "bad counter list length"));
    }
    let mut v = Vec::new();
    while !rd.is_empty() {
        v.push((rd.u64()?, rd.u64()?));
    }
    Ok(v)
}

/// Split a body of variable-length entries (each starting with a 16-bit
/// length of at least `min`) and decode each.
pub(crate) fn decode_entries<T>(
    b: &[u8],
    min: usize,
    f: impl Fn(&[u8]) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut r = Rd::new(b, OfError::BAD_LEN);
    let mut v = Vec::new();
    while !r.is_empty() {
        let len = r.peek_len(0)?;
        v.push(f(r.record(len, min)?.b)?);
    }
    Ok(v)
}

/// Decode fixed-size entries.
pub(crate) fn decode_fixed<T>(
    b: &[u8],
    size: usize,
    f: impl Fn(&[u8]) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    if b.len() % size != 0 {
        return Err(err(OfError::BAD_LEN, "partial fixed-size entry"));
    }
    b.chunks_exact(size).map(f).collect()
}

/// Append one message of type `typ`: header, then what `body` writes.
/// On error nothing is appended.
pub(crate) fn message(
    out: &mut Vec<u8>,
    version: u8,
    typ: u8,
    xid: u32,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = begin(out, version, typ, xid);
    let r = body(out).and_then(|()| finish(out, start));
    if r.is_err() {
        out.truncate(start);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items of the given sizes after a 16-byte fixed part, appended to
    /// one byte already in the buffer.
    fn split(items: &[usize]) -> (Result<(), EncodeError>, Vec<u8>) {
        let mut out = vec![0xaa];
        let begin = |out: &mut Vec<u8>| {
            let start = out.len();
            out.zeros(16);
            start
        };
        let r = put_split_reply(&mut out, 0, begin, items, |out, n| {
            out.zeros(*n);
            Ok(())
        });
        (r, out)
    }

    #[test]
    fn split_reply_lengths() {
        // Fits: one message.
        let (r, out) = split(&[100, MAX_MSG - 116]);
        assert!(r.is_ok());
        assert_eq!(out.len(), 1 + MAX_MSG);
        // Two messages, the first with REPLY_MORE.
        let (r, out) = split(&[100, MAX_MSG - 100]);
        assert!(r.is_ok());
        assert_eq!(out.len(), 1 + 16 + 100 + 16 + MAX_MSG - 100);
        assert_eq!(out[1 + 2..1 + 4], [0, 116]);
        assert_eq!(out[1 + 10..1 + 12], REPLY_MORE.to_be_bytes());
        // An item that fits in no message, first or after others: an
        // error, and nothing appended (no length cut to 16 bits).
        for items in [
            &[MAX_MSG - 15][..],
            &[100, MAX_MSG - 15],
            &[100, MAX_MSG - 15, 8],
        ] {
            let (r, out) = split(items);
            assert!(r.is_err(), "{items:?}");
            assert_eq!(out, [0xaa]);
        }
    }
}
