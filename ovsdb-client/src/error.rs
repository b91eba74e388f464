//! The crate's error types.

use serde_json::Value;

use crate::jsonrpc::FramingError;

/// Everything that can go wrong talking to an OVSDB server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address is neither `unix:PATH` nor `tcp:IP:PORT`.
    #[error("bad OVSDB address {0:?} (want unix:PATH or tcp:IP:PORT)")]
    BadAddress(String),
    /// Socket error.
    #[error("OVSDB socket: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that are not a JSON stream.
    #[error(transparent)]
    Framing(#[from] FramingError),
    /// The connection is closed (by the peer, by an I/O error, by an
    /// unanswered inactivity probe or by [`crate::Client::close`]).
    #[error("OVSDB connection closed")]
    Disconnected,
    /// The server answered with a JSON-RPC error (RFC 7047 §4.1: `"error"`
    /// not null), e.g. `"unknown method"` or `"unknown database"`.
    #[error("OVSDB {method} failed: {error}")]
    Rpc {
        /// Request method.
        method: String,
        /// The `error` member of the reply.
        error: Value,
    },
    /// A `transact` operation (or the commit) failed (RFC 7047 §5.2).
    #[error(transparent)]
    Transaction(#[from] TxnError),
    /// The peer sent something well-formed as JSON but not as OVSDB.
    #[error("OVSDB protocol error: {0}")]
    Protocol(String),
    /// A datum or atom does not match its column type.
    #[error(transparent)]
    Datum(#[from] DatumError),
}

impl Error {
    /// True for the JSON-RPC error a server returns for a method it does not
    /// implement (ovsdb-server replies `{"error":"unknown method"}`).
    pub fn is_unknown_method(&self) -> bool {
        matches!(self, Error::Rpc { error, .. }
            if error.as_str() == Some("unknown method")
                || error.get("error").and_then(Value::as_str) == Some("unknown method"))
    }
}

/// A failed `transact`: the first operation whose result holds an `error`
/// (RFC 7047 §5.2.1), or the extra trailing result that reports a commit
/// failure (then `index` equals the number of operations).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("transaction failed at operation {index}: {error}{}", details.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
pub struct TxnError {
    /// Index of the failing operation in the request.
    pub index: usize,
    /// The error tag, e.g. `"constraint violation"`, `"not owner"`,
    /// `"timed out"`, `"referential integrity violation"`.
    pub error: String,
    /// The optional human-readable `details`.
    pub details: Option<String>,
    /// All results as the server sent them.
    pub results: Vec<Value>,
}

/// A JSON value that is not a valid atom or datum for its type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid OVSDB {what}: {value}")]
pub struct DatumError {
    /// What was expected (`"atom"`, `"uuid"`, `"map"`, `"integer"`...).
    pub what: &'static str,
    /// The offending JSON (possibly abbreviated).
    pub value: String,
}

impl DatumError {
    pub(crate) fn new(what: &'static str, value: &Value) -> Self {
        let mut value = value.to_string();
        if value.len() > 200 {
            let mut cut = 200;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
            value.push('…');
        }
        DatumError { what, value }
    }
}
