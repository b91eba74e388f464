//! Accepting on xennetd's listening sockets (unixctl, OpenFlow,
//! the emulated Xen registration socket) through the shared
//! [`xennet_vif::accept`] rules: a transient error (out of descriptors or
//! memory, an aborted connection) is logged at most once a second and
//! waited out for [`xennet_vif::accept::BACKOFF`]; only a broken listener
//! ends the loop.

use std::future::Future;
use std::io;

pub use xennet_vif::accept::AcceptErrors;

/// The next connection from `accept` (one call of the listener's
/// `accept`), retried through transient errors.
///
/// # Errors
/// The first error that is not transient ([`xennet_vif::accept::is_transient`]).
pub async fn next<T, F, Fut>(errors: &mut AcceptErrors, mut accept: F) -> io::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    loop {
        match accept().await {
            Ok(x) => return Ok(x),
            Err(e) => {
                let wait = errors.backoff(e)?;
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}
