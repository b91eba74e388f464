//! Errors of this crate.

use crate::grant::GrantError;

/// Errors connecting or attaching a vif.
#[derive(Debug, thiserror::Error)]
pub enum VifError {
    /// The frontend did not set `request-rx-copy` (flipping is unsupported,
    /// as in Linux and QEMU).
    #[error("frontend must set request-rx-copy=1 (rx-flip is not supported)")]
    RxCopyRequired,
    /// TX and RX rings would share one page.
    #[error("tx-ring-ref and rx-ring-ref are both {0}")]
    SharedRingRef(u32),
    /// Mapping a ring page failed.
    #[error("mapping a ring: {0}")]
    Grant(#[from] GrantError),
    /// An I/O error (sockets, memfds, eventfds).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A system call failed.
    #[error("system call: {0}")]
    Errno(#[from] nix::errno::Errno),
    /// Malformed attach message.
    #[error("attach message: {0}")]
    Json(#[from] serde_json::Error),
    /// An attach message carried more descriptors than any registration
    /// needs (`MSG_CTRUNC`); the ones received were closed.
    #[error("attach: too many file descriptors (control message truncated after {received}; at most {max})")]
    TooManyFds {
        /// Descriptors received before the truncation (all closed).
        received: usize,
        /// Most descriptors a message may carry.
        max: usize,
    },
    /// The attach handshake was refused or invalid.
    #[error("attach: {0}")]
    Attach(String),
}
