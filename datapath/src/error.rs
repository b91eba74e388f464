//! Errors of the datapath's control interface.

use crate::buffer::OfPort;

/// Errors returned by [`crate::dpif::DpHandle`] requests.
#[derive(Debug, thiserror::Error)]
pub enum DpError {
    /// A port with this number is already attached.
    #[error("port {0} already exists")]
    PortExists(OfPort),
    /// No port with this number is attached.
    #[error("no port {0}")]
    NoSuchPort(OfPort),
    /// Registering the port's event fd with epoll failed.
    #[error("epoll registration of port {ofport} failed: {source}")]
    Epoll {
        /// The port.
        ofport: OfPort,
        /// The system error.
        source: std::io::Error,
    },
    /// The forwarding thread has stopped.
    #[error("datapath thread is gone")]
    Gone,
}
