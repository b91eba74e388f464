//! xenstore: the wire protocol, a blocking client and an emulated daemon.
//!
//! - [`wire`]: `xen/io/xs_wire.h` framing, message types, error names and
//!   permission strings (`"n0"`, `"r1"`, `"w2"`, `"b3"`).
//! - [`client`]: [`Client`], a blocking client over the xenstored Unix
//!   socket (`XENSTORED_PATH`) or `/dev/xen/xenbus`, with watches and
//!   retried transactions ([`Client::transaction`]).
//! - [`server`]: [`XenstoreServer`], a xenstored emulation with Xen's
//!   permission model, watches, isolated transactions and per-domain
//!   request quotas. Socket clients are dom0;
//!   [`XenstoreServer::connect_as`] gives an in-process client acting as
//!   any domain. Debian's real `xenstore-*` tools work against it.

pub mod client;
pub mod server;
pub mod wire;

pub use client::{Client, Transaction, WatchEvent};
pub use server::{
    Listener, ServeError, ServerConfig, ServerStats, XenstoreServer, PRIVILEGED_QUEUE_FACTOR,
};
pub use wire::{Access, ErrorCode, Perm};

/// Errors of xenstore clients.
#[derive(Debug, thiserror::Error)]
pub enum XsError {
    /// The daemon answered `XS_ERROR` with this errno name.
    #[error("xenstore {op:?} {path:?}: {code}")]
    Remote {
        /// The error name (`ENOENT`, `EACCES`, `EAGAIN`, `EQUOTA`, ...).
        code: ErrorCode,
        /// The request type.
        op: wire::MsgType,
        /// The request's first argument (usually a path), for messages.
        path: String,
    },
    /// Framing or I/O failure on the connection.
    #[error("xenstore connection: {0}")]
    Wire(#[from] wire::WireError),
    /// Opening the connection failed.
    #[error("xenstore connect {path}: {source}")]
    Connect {
        /// What we tried to open.
        path: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The emulated daemon refused an in-process connection
    /// ([`XenstoreServer::connect_as`]).
    #[error(transparent)]
    Serve(#[from] server::ServeError),
    /// The connection is gone (daemon exited or closed it).
    #[error("xenstore connection closed")]
    Closed,
    /// A request would not fit in [`wire::XENSTORE_PAYLOAD_MAX`].
    #[error("xenstore request of {0} bytes is too long")]
    TooLong(usize),
    /// The daemon's reply was not what the protocol promises.
    #[error("xenstore protocol: {0}")]
    Protocol(String),
}

impl XsError {
    /// The xenstore error name, if the daemon sent one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            XsError::Remote { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether this is `XS_ERROR` with `code`.
    pub fn is(&self, code: &ErrorCode) -> bool {
        self.code() == Some(code)
    }
}
