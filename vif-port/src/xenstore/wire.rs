//! The xenstore wire protocol (`xen/io/xs_wire.h`).
//!
//! Every message, in both directions, is a 16-byte little-endian header
//! (`struct xsd_sockmsg`: `type`, `req_id`, `tx_id`, `len`) followed by
//! `len` payload bytes, at most [`XENSTORE_PAYLOAD_MAX`]. Payloads are
//! NUL-terminated strings, except the value of `XS_WRITE` (after the
//! path's NUL) and the reply to `XS_READ`, which are raw bytes. Errors are
//! `XS_ERROR` replies carrying an errno name (`"ENOENT\0"`); watch events
//! are unsolicited `XS_WATCH_EVENT` messages (`"path\0token\0"`, `req_id`
//! 0) that may arrive between a request and its reply.
//!
//! Decoding never panics: a header is accepted only if its length fits
//! [`XENSTORE_PAYLOAD_MAX`]; the type may be unknown
//! ([`MsgType::Unknown`]) and is left for the server to reject.

use std::fmt;
use std::io::{self, Read, Write};

/// Size of `struct xsd_sockmsg`.
pub const HEADER_LEN: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`: the largest payload of one message.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// `XENSTORE_ABS_PATH_MAX`: the longest absolute path.
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`: the longest relative path.
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// `enum xsd_sockmsg_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// `XS_CONTROL` (also `XS_DEBUG`).
    Control,
    /// `XS_DIRECTORY`: list a node's children.
    Directory,
    /// `XS_READ`: read a node's value.
    Read,
    /// `XS_GET_PERMS`: read a node's permissions.
    GetPerms,
    /// `XS_WATCH`: register a watch (`path\0token\0`).
    Watch,
    /// `XS_UNWATCH`: remove a watch.
    Unwatch,
    /// `XS_TRANSACTION_START`: reply is the transaction id.
    TransactionStart,
    /// `XS_TRANSACTION_END`: `"T\0"` commits, `"F\0"` aborts.
    TransactionEnd,
    /// `XS_INTRODUCE`: the toolstack introduces a domain.
    Introduce,
    /// `XS_RELEASE`: the toolstack releases a domain.
    Release,
    /// `XS_GET_DOMAIN_PATH`: `/local/domain/<id>`.
    GetDomainPath,
    /// `XS_WRITE`: `path\0value`.
    Write,
    /// `XS_MKDIR`: create a node (and its parents).
    Mkdir,
    /// `XS_RM`: remove a node and its subtree.
    Rm,
    /// `XS_SET_PERMS`: `path\0perm\0perm\0...`.
    SetPerms,
    /// `XS_WATCH_EVENT`: an asynchronous watch event.
    WatchEvent,
    /// `XS_ERROR`: an error reply carrying an errno name.
    Error,
    /// `XS_IS_DOMAIN_INTRODUCED`.
    IsDomainIntroduced,
    /// `XS_RESUME`.
    Resume,
    /// `XS_SET_TARGET`.
    SetTarget,
    /// `XS_RESET_WATCHES`: drop all of the connection's watches.
    ResetWatches,
    /// `XS_DIRECTORY_PART`: a directory listing in chunks.
    DirectoryPart,
    /// Anything else (`XS_INVALID`, 20 (the removed `XS_RESTRICT`), ...).
    Unknown(u32),
}

impl MsgType {
    /// The type for a wire value.
    pub fn from_u32(v: u32) -> MsgType {
        match v {
            0 => MsgType::Control,
            1 => MsgType::Directory,
            2 => MsgType::Read,
            3 => MsgType::GetPerms,
            4 => MsgType::Watch,
            5 => MsgType::Unwatch,
            6 => MsgType::TransactionStart,
            7 => MsgType::TransactionEnd,
            8 => MsgType::Introduce,
            9 => MsgType::Release,
            10 => MsgType::GetDomainPath,
            11 => MsgType::Write,
            12 => MsgType::Mkdir,
            13 => MsgType::Rm,
            14 => MsgType::SetPerms,
            15 => MsgType::WatchEvent,
            16 => MsgType::Error,
            17 => MsgType::IsDomainIntroduced,
            18 => MsgType::Resume,
            19 => MsgType::SetTarget,
            21 => MsgType::ResetWatches,
            22 => MsgType::DirectoryPart,
            other => MsgType::Unknown(other),
        }
    }

    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            MsgType::Control => 0,
            MsgType::Directory => 1,
            MsgType::Read => 2,
            MsgType::GetPerms => 3,
            MsgType::Watch => 4,
            MsgType::Unwatch => 5,
            MsgType::TransactionStart => 6,
            MsgType::TransactionEnd => 7,
            MsgType::Introduce => 8,
            MsgType::Release => 9,
            MsgType::GetDomainPath => 10,
            MsgType::Write => 11,
            MsgType::Mkdir => 12,
            MsgType::Rm => 13,
            MsgType::SetPerms => 14,
            MsgType::WatchEvent => 15,
            MsgType::Error => 16,
            MsgType::IsDomainIntroduced => 17,
            MsgType::Resume => 18,
            MsgType::SetTarget => 19,
            MsgType::ResetWatches => 21,
            MsgType::DirectoryPart => 22,
            MsgType::Unknown(v) => v,
        }
    }
}

/// Error names carried by `XS_ERROR` replies (`xsd_errors[]` in
/// `xs_wire.h`, plus oxenstored's `EQUOTA`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `EINVAL`: malformed request or path.
    Einval,
    /// `EACCES`: permission denied.
    Eacces,
    /// `EEXIST`: the node exists.
    Eexist,
    /// `EISDIR`.
    Eisdir,
    /// `ENOENT`: no such node (or transaction).
    Enoent,
    /// `ENOMEM`.
    Enomem,
    /// `ENOSPC`.
    Enospc,
    /// `EIO`.
    Eio,
    /// `ENOTEMPTY`.
    Enotempty,
    /// `ENOSYS`: unsupported operation.
    Enosys,
    /// `EROFS`.
    Erofs,
    /// `EBUSY`.
    Ebusy,
    /// `EAGAIN`: the transaction conflicted; retry it.
    Eagain,
    /// `EISCONN`.
    Eisconn,
    /// `E2BIG`: the reply or request would not fit a message.
    E2big,
    /// `EPERM`: operation not permitted (e.g. changing a node's owner).
    Eperm,
    /// `EQUOTA`: a per-domain quota (request rate, watches,
    /// transactions) is exhausted.
    Equota,
    /// Any other name a peer sent.
    Other(String),
}

impl ErrorCode {
    /// The errno name as sent on the wire.
    pub fn name(&self) -> &str {
        match self {
            ErrorCode::Einval => "EINVAL",
            ErrorCode::Eacces => "EACCES",
            ErrorCode::Eexist => "EEXIST",
            ErrorCode::Eisdir => "EISDIR",
            ErrorCode::Enoent => "ENOENT",
            ErrorCode::Enomem => "ENOMEM",
            ErrorCode::Enospc => "ENOSPC",
            ErrorCode::Eio => "EIO",
            ErrorCode::Enotempty => "ENOTEMPTY",
            ErrorCode::Enosys => "ENOSYS",
            ErrorCode::Erofs => "EROFS",
            ErrorCode::Ebusy => "EBUSY",
            ErrorCode::Eagain => "EAGAIN",
            ErrorCode::Eisconn => "EISCONN",
            ErrorCode::E2big => "E2BIG",
            ErrorCode::Eperm => "EPERM",
            ErrorCode::Equota => "EQUOTA",
            ErrorCode::Other(s) => s,
        }
    }

    /// Parses an errno name (without the trailing NUL).
    pub fn from_name(name: &str) -> ErrorCode {
        match name {
            "EINVAL" => ErrorCode::Einval,
            "EACCES" => ErrorCode::Eacces,
            "EEXIST" => ErrorCode::Eexist,
            "EISDIR" => ErrorCode::Eisdir,
            "ENOENT" => ErrorCode::Enoent,
            "ENOMEM" => ErrorCode::Enomem,
            "ENOSPC" => ErrorCode::Enospc,
            "EIO" => ErrorCode::Eio,
            "ENOTEMPTY" => ErrorCode::Enotempty,
            "ENOSYS" => ErrorCode::Enosys,
            "EROFS" => ErrorCode::Erofs,
            "EBUSY" => ErrorCode::Ebusy,
            "EAGAIN" => ErrorCode::Eagain,
            "EISCONN" => ErrorCode::Eisconn,
            "E2BIG" => ErrorCode::E2big,
            "EPERM" => ErrorCode::Eperm,
            "EQUOTA" => ErrorCode::Equota,
            other => ErrorCode::Other(other.to_owned()),
        }
    }

    /// Parses the payload of an `XS_ERROR` reply (`"ENOENT\0"`).
    pub fn from_payload(payload: &[u8]) -> ErrorCode {
        let name = payload.split(|&b| b == 0).next().unwrap_or_default();
        ErrorCode::from_name(&String::from_utf8_lossy(name))
    }

    /// The `XS_ERROR` payload: the name and a NUL.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut v = self.name().as_bytes().to_vec();
        v.push(0);
        v
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Framing errors.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The header announces (or the caller supplied) a payload longer than
    /// [`XENSTORE_PAYLOAD_MAX`].
    #[error("payload of {len} bytes exceeds XENSTORE_PAYLOAD_MAX ({XENSTORE_PAYLOAD_MAX})")]
    PayloadTooLong {
        /// The offending length.
        len: usize,
    },
    /// The peer closed the stream (possibly mid-message).
    #[error("connection closed")]
    Closed,
    /// An I/O error on the stream.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
}

/// `struct xsd_sockmsg`, with the type decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `type`.
    pub msg_type: MsgType,
    /// `req_id`: echoed in the reply.
    pub req_id: u32,
    /// `tx_id`: 0 outside transactions.
    pub tx_id: u32,
    /// `len`: payload length.
    pub len: u32,
}

impl Header {
    /// Parses a header; fails if `len` exceeds [`XENSTORE_PAYLOAD_MAX`].
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Header, WireError> {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let hdr = Header {
            msg_type: MsgType::from_u32(word(0)),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        };
        let len = usize::try_from(hdr.len).unwrap_or(usize::MAX);
        if len > XENSTORE_PAYLOAD_MAX {
            return Err(WireError::PayloadTooLong { len });
        }
        Ok(hdr)
    }

    /// The 16 wire bytes.
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.msg_type.to_u32().to_le_bytes());
        b[4..8].copy_from_slice(&self.req_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.tx_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b
    }
}

/// One whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `type`.
    pub msg_type: MsgType,
    /// `req_id`.
    pub req_id: u32,
    /// `tx_id`.
    pub tx_id: u32,
    /// The payload (at most [`XENSTORE_PAYLOAD_MAX`] bytes to be encodable).
    pub payload: Vec<u8>,
}

impl Message {
    /// A message with the given fields.
    pub fn new(msg_type: MsgType, req_id: u32, tx_id: u32, payload: Vec<u8>) -> Message {
        Message {
            msg_type,
            req_id,
            tx_id,
            payload,
        }
    }

    /// The header plus payload, ready to send in one write (the
    /// `/dev/xen/xenbus` device wants whole messages).
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let len = self.payload.len();
        if len > XENSTORE_PAYLOAD_MAX {
            return Err(WireError::PayloadTooLong { len });
        }
        let hdr = Header {
            msg_type: self.msg_type,
            req_id: self.req_id,
            tx_id: self.tx_id,
            // Cannot truncate: len <= XENSTORE_PAYLOAD_MAX.
            len: u32::try_from(len).unwrap_or(u32::MAX),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + len);
        out.extend_from_slice(&hdr.emit());
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// Decodes one message from the front of `buf`: `Ok(None)` if `buf`
    /// holds only part of one, else the message and the bytes consumed.
    pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
        let Some(hb) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut hdr_bytes = [0u8; HEADER_LEN];
        hdr_bytes.copy_from_slice(hb);
        let hdr = Header::parse(&hdr_bytes)?;
        // Cannot overflow: len <= XENSTORE_PAYLOAD_MAX (checked by parse).
        let total = HEADER_LEN + hdr.len as usize;
        let Some(payload) = buf.get(HEADER_LEN..total) else {
            return Ok(None);
        };
        let msg = Message::new(hdr.msg_type, hdr.req_id, hdr.tx_id, payload.to_vec());
        Ok(Some((msg, total)))
    }

    /// Reads one message from a stream.
    pub fn read_from<R: Read + ?Sized>(r: &mut R) -> Result<Message, WireError> {
        let mut hb = [0u8; HEADER_LEN];
        read_exact_or_closed(r, &mut hb)?;
        let hdr = Header::parse(&hb)?;
        let mut payload = vec![0u8; hdr.len as usize];
        read_exact_or_closed(r, &mut payload)?;
        Ok(Message::new(hdr.msg_type, hdr.req_id, hdr.tx_id, payload))
    }

    /// Writes the message to a stream in one `write_all`.
    pub fn write_to<W: Write + ?Sized>(&self, w: &mut W) -> Result<(), WireError> {
        let bytes = self.encode()?;
        w.write_all(&bytes)?;
        w.flush()?;
        Ok(())
    }
}

fn read_exact_or_closed<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> Result<(), WireError> {
    match r.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(WireError::Closed),
        Err(e) => Err(WireError::Io(e)),
    }
}

/// Splits a payload of NUL-terminated strings. A final fragment without a
/// NUL is returned too; the empty string after the last NUL is not.
pub fn split_strings(payload: &[u8]) -> Vec<&[u8]> {
    let mut parts: Vec<&[u8]> = payload.split(|&b| b == 0).collect();
    if payload.last() == Some(&0) || payload.is_empty() {
        parts.pop();
    }
    parts
}

/// Joins strings, each followed by a NUL.
pub fn join_strings<S: AsRef<[u8]>>(parts: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p.as_ref());
        out.push(0);
    }
    out
}

/// What a permission entry grants (the letter of `"r1"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: nothing.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: both read and write.
    Both,
}

impl Access {
    /// Whether reading is allowed.
    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// Whether writing is allowed.
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }

    fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }
}

/// One permission entry, as in `"b3"`. In a node's list the first entry
/// names the owner and the access of every domain not listed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain.
    pub domid: u32,
    /// What it may do.
    pub access: Access,
}

impl Perm {
    /// A permission entry.
    pub fn new(access: Access, domid: u32) -> Perm {
        Perm { domid, access }
    }

    /// Parses `"n0"`, `"r1"`, `"w2"`, `"b3"`; `None` if malformed.
    pub fn parse(s: &str) -> Option<Perm> {
        let mut chars = s.chars();
        let access = match chars.next()? {
            'n' => Access::None,
            'r' => Access::Read,
            'w' => Access::Write,
            'b' => Access::Both,
            _ => return None,
        };
        let rest = chars.as_str();
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let domid = rest.parse().ok()?;
        Some(Perm { domid, access })
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter(), self.domid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static READ_REQ: [u8; 22] = [
        2, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0, 6, 0, 0, 0, b'/', b'a', b'/', b'b', b'c', 0,
    ];

    #[test]
    fn test_parse() {
        let (m, used) = Message::decode(&READ_REQ).unwrap().unwrap();
        assert_eq!(used, 22);
        assert_eq!(m.msg_type, MsgType::Read);
        assert_eq!((m.req_id, m.tx_id), (7, 3));
        assert_eq!(m.payload, b"/a/bc\0");
    }

    #[test]
    fn test_emit() {
        let m = Message::new(MsgType::Read, 7, 3, b"/a/bc\0".to_vec());
        assert_eq!(m.encode().unwrap(), READ_REQ);
    }

    #[test]
    fn test_partial() {
        for n in 0..READ_REQ.len() {
            assert!(Message::decode(&READ_REQ[..n]).unwrap().is_none());
        }
    }

    #[test]
    fn test_reject_too_long() {
        let mut b = READ_REQ;
        b[12..16].copy_from_slice(&4097u32.to_le_bytes());
        assert!(matches!(
            Message::decode(&b),
            Err(WireError::PayloadTooLong { len: 4097 })
        ));
        let m = Message::new(MsgType::Write, 0, 0, vec![0; 4097]);
        assert!(m.encode().is_err());
    }

    #[test]
    fn test_types_roundtrip() {
        for v in 0..40u32 {
            assert_eq!(MsgType::from_u32(v).to_u32(), v);
        }
        assert_eq!(MsgType::from_u32(20), MsgType::Unknown(20));
        assert_eq!(MsgType::from_u32(0xffff), MsgType::Unknown(0xffff));
    }

    #[test]
    fn test_errors() {
        assert_eq!(ErrorCode::from_payload(b"ENOENT\0"), ErrorCode::Enoent);
        assert_eq!(ErrorCode::Eagain.to_payload(), b"EAGAIN\0");
        assert_eq!(
            ErrorCode::from_payload(b""),
            ErrorCode::Other(String::new())
        );
        assert_eq!(ErrorCode::from_name("EFOO").name(), "EFOO");
    }

    #[test]
    fn test_perms() {
        assert_eq!(Perm::parse("r1"), Some(Perm::new(Access::Read, 1)));
        assert_eq!(Perm::parse("b32767").unwrap().to_string(), "b32767");
        for bad in ["", "x1", "r", "r-1", "r1a", "n99999999999"] {
            assert_eq!(Perm::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn test_split() {
        assert_eq!(split_strings(b"a\0bc\0"), vec![&b"a"[..], b"bc"]);
        assert_eq!(split_strings(b"a\0v"), vec![&b"a"[..], b"v"]);
        assert!(split_strings(b"").is_empty());
        assert_eq!(join_strings(&["a", "b"]), b"a\0b\0");
    }

    /// Fuzz-ish: random and mutated buffers never panic, and anything
    /// decoded re-encodes to the bytes consumed.
    #[test]
    fn test_decode_garbage() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if next() % 2 == 0 && buf.len() >= HEADER_LEN {
                // Plausible length field so that whole messages decode too.
                let l = (next() % 48) as u32;
                buf[12..16].copy_from_slice(&l.to_le_bytes());
            }
            if let Ok(Some((m, used))) = Message::decode(&buf) {
                assert_eq!(m.encode().unwrap(), &buf[..used]);
            }
            let _ = split_strings(&buf);
            let _ = ErrorCode::from_payload(&buf);
            let _ = Perm::parse(&String::from_utf8_lossy(&buf));
            let _ = Message::read_from(&mut &buf[..]);
        }
    }
}
