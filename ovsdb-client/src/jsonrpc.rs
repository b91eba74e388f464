//! JSON-RPC 1.0 framing as Open vSwitch uses it (RFC 7047 §4): JSON objects
//! written back to back on a stream, no delimiters, no length prefix.
//!
//! [`JsonStream`] is a push decoder: feed it bytes as they arrive with
//! [`JsonStream::push`], take whole messages with [`JsonStream::next_value`].

use serde_json::Value;

/// Largest message accepted, in bytes. A peer that sends more without
/// finishing a JSON text is cut off (the OVSDB schema reply is ~26 KiB;
/// large transactions stay far below this).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Framing errors.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// The bytes are not JSON.
    #[error("invalid JSON-RPC framing: {0}")]
    Syntax(#[from] serde_json::Error),
    /// A message grew beyond [`MAX_MESSAGE_BYTES`].
    #[error("JSON-RPC message larger than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
}

/// Push decoder for a stream of concatenated JSON values.
#[derive(Debug, Default)]
pub struct JsonStream {
    buf: Vec<u8>,
}

impl JsonStream {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append bytes received from the peer.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FramingError> {
        if self.buf.len().saturating_add(bytes.len()) > MAX_MESSAGE_BYTES {
            return Err(FramingError::TooLarge);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next complete value, `Ok(None)` if more bytes are needed.
    ///
    /// A number that ends where the buffered bytes end is not complete
    /// yet: more digits may follow (`12` then `34` is the number 1234, not
    /// two values). Objects, arrays, strings and literals delimit
    /// themselves.
    ///
    /// # Errors
    /// [`FramingError::Syntax`] when the buffered bytes are not JSON.
    pub fn next_value(&mut self) -> Result<Option<Value>, FramingError> {
        let start = self
            .buf
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(self.buf.len());
        self.buf.drain(..start);
        if self.buf.is_empty() {
            return Ok(None);
        }
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
        match it.next() {
            Some(Ok(v)) => {
                let used = it.byte_offset();
                if v.is_number() && used == self.buf.len() {
                    return Ok(None);
                }
                self.buf.drain(..used);
                Ok(Some(v))
            }
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(e)) => Err(e.into()),
            None => Ok(None),
        }
    }

    /// Bytes buffered but not yet returned as a value.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_concatenated_values_fed_byte_by_byte() {
        let wire = br#"{"id":0,"method":"echo","params":[]}{"id":null,"method":"update","params":[null,{"a":"}{"}]}  "#;
        let mut s = JsonStream::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            s.push(std::slice::from_ref(b)).unwrap();
            while let Some(v) = s.next_value().unwrap() {
                got.push(v);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["method"], json!("echo"));
        assert_eq!(got[1]["params"][1]["a"], json!("}{"));
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn a_number_is_not_cut_at_a_chunk_boundary() {
        // Found by the jsonrpc fuzz target.
        let mut s = JsonStream::new();
        s.push(b"12").unwrap();
        assert_eq!(s.next_value().unwrap(), None);
        s.push(b"34 ").unwrap();
        assert_eq!(s.next_value().unwrap(), Some(json!(1234)));
        assert_eq!(s.next_value().unwrap(), None);
    }

    #[test]
    fn rejects_garbage() {
        let mut s = JsonStream::new();
        s.push(b"{\"id\":1]").unwrap();
        assert!(s.next_value().is_err());
    }

    #[test]
    fn parses_recorded_ovsdb_traffic() {
        // First messages the real ovsdb-server sent to ovs-vsctl, as recorded
        // in shared/captures (one per line there; concatenated here as on the
        // wire).
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ovs-vsctl-wait.server-to-client.jsonl"
        );
        let text = std::fs::read_to_string(path).expect("recorded OVSDB traffic in tests/data");
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut s = JsonStream::new();
        s.push(lines.concat().as_bytes()).unwrap();
        let mut n = 0;
        while let Some(v) = s.next_value().unwrap() {
            assert!(v.get("id").is_some(), "every JSON-RPC message has an id");
            n += 1;
        }
        assert_eq!(n, lines.len());
    }
}
