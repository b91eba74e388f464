//! RFC 7047 OVSDB client for xennet.
//!
//! For now this crate holds the JSON-RPC framing shared by every JSON-RPC
//! speaker in xennet ([`jsonrpc`]): OVSDB (RFC 7047 §4) and Open vSwitch's
//! unixctl protocol (what `ovs-appctl` speaks). Both send JSON values
//! back to back on a stream socket with no delimiter, so a reader must parse
//! a stream of concatenated JSON texts.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod jsonrpc;
