//! RFC 7047 OVSDB client for xennet.
//!
//! Layers, bottom up:
//!
//! * [`jsonrpc`]: JSON-RPC 1.0 framing as Open vSwitch uses it (concatenated
//!   JSON texts on a stream), shared with the unixctl protocol.
//! * [`datum`] and [`schema`]: atoms, datums and column types (RFC 7047
//!   §3.2, §5.1), with the `update2` set/map difference rules.
//! * [`replica`]: an in-memory copy of the tables xennet uses, kept current by
//!   `update`/`update2`/`update3`, with typed views ([`Replica::bridges`]...).
//! * [`transact`]: building `transact` operations ([`Txn`]) and checking
//!   results.
//! * [`client`]: one async connection ([`Client`]): request/response by id,
//!   echo replies and inactivity probes, notifications on a channel.
//! * [`session`]: a [`Session`] that reconnects with exponential backoff and
//!   keeps a [`Replica`] in sync (`monitor_cond_since` with the last
//!   transaction id, falling back to `monitor_cond` and `monitor`), and
//!   re-takes a lock such as `ovs_vswitchd` after each reconnect.
//! * `test_utils` (feature `test-utils`): a private `ovsdb-server` for
//!   tests, shared by this crate's and xennetd's integration tests.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod datum;
pub mod error;
pub mod jsonrpc;
pub mod replica;
pub mod schema;
pub mod session;
#[cfg(feature = "test-utils")]
pub mod test_utils;
pub mod transact;

pub use client::{Client, ClientOptions, MonitorReply, Notification, Notifications};
pub use datum::{Atom, Datum, Uuid};
pub use error::{DatumError, Error, TxnError};
pub use replica::{
    monitor_request, Bridge, Controller, Interface, MonitorMethod, OpenVSwitch, Port, Qos, Queue,
    Replica, Row, MONITORED,
};
pub use schema::{AtomicType, ColumnKind, ColumnType, Schema};
pub use session::{Session, SessionOptions};
pub use transact::Txn;
